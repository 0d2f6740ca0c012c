"""Cue lexicons for the builtin analyser, kept as data.

A cue is a lower-case phrase matched case-insensitively on word boundaries.
Two conventions keep the lexicon readable:

* ``...`` is a gap of a few words inside one sentence (``"either ... or"``);
* an apostrophe also matches the typographic one (``you're`` / ``you’re``).

Adding a cue here is enough; ``builtin.py`` has no per-cue code.
"""

from __future__ import annotations

_STOPWORDS_TEXT = """
    a about above after again against all also am an and any are aren't as at be
    because been before being below between both but by can can't cannot could
    couldn't did didn't do does doesn't doing don't down during each few for from
    further had hadn't has hasn't have haven't having he he'd he'll he's her here
    here's hers herself him himself his how how's i i'd i'll i'm i've if in into is
    isn't it it's its itself just let's like me more most mustn't my myself no nor
    not now of off on once only or other ought our ours ourselves out over own
    really same she she'd she'll she's should shouldn't so some such than that
    that's the their theirs them themselves then there there's these they they'd
    they'll they're they've this those through to too under until up very was
    wasn't we we'd we'll we're we've well were weren't what what's when when's where
    where's which while who who's whom why why's will with won't would wouldn't yes
    yeah you you'd you'll you're you've your yours yourself yourselves okay ok oh
    um uh think know say said going get got thing things lot
"""
#: Words ignored when scoring sentences for the extractive summary.
STOPWORDS: frozenset[str] = frozenset(_STOPWORDS_TEXT.split())

#: Discourse markers that introduce a claim.
CLAIM_CUES: tuple[str, ...] = (
    "i think",
    "i believe",
    "i feel that",
    "i would argue",
    "i'm convinced",
    "in my opinion",
    "in my view",
    "we should",
    "we must",
    "we need to",
    "should",
    "must",
    "ought to",
    "it is clear that",
    "it's clear that",
    "the point is",
    "the truth is",
    "i agree",
    "i disagree",
)

#: Markers of supporting evidence (numbers are matched separately).
EVIDENCE_CUES: tuple[str, ...] = (
    "because",
    "since",
    "for example",
    "for instance",
    "such as",
    "studies show",
    "research shows",
    "a study",
    "according to",
    "data",
    "evidence",
    "statistics",
    "survey",
    "figures",
    "the numbers",
)

#: Numbers and percentages count as evidence ("40%", "3.5 percent", "2019").
NUMBER_PATTERN: str = r"\d+(?:[.,]\d+)*\s*(?:%|percent\b)?"

#: Stance cues; "against" is checked first so that negations win.
AGAINST_CUES: tuple[str, ...] = (
    "i disagree",
    "i don't agree",
    "i do not agree",
    "i don't think",
    "that's wrong",
    "that is wrong",
    "that's not true",
    "not true",
    "should not",
    "shouldn't",
    "must not",
    "mustn't",
    "i oppose",
    "against",
    "no way",
    "bad idea",
    "not convinced",
)
FOR_CUES: tuple[str, ...] = (
    "i agree",
    "agree with",
    "exactly",
    "that's right",
    "good point",
    "good idea",
    "i support",
    "in favour of",
    "in favor of",
    "we should",
    "we must",
    "we need to",
)

#: Markers of a consequence or implication.
IMPLICATION_CUES: tuple[str, ...] = (
    "therefore",
    "thus",
    "hence",
    "consequently",
    "as a result",
    "which means",
    "this means",
    "that means",
    ", so",
    "and so",
    "so that",
    "will lead to",
    "would lead to",
    "leads to",
    "could result in",
    "would result in",
    "will result in",
    "will cause",
    "the consequence",
    "implies",
    "if ... then",
)

#: Fallacy type -> (explanation, cues).
FALLACY_CUES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ad_hominem": (
        "Attacks the person instead of their argument.",
        (
            "you're an idiot",
            "you are an idiot",
            "people like you",
            "you're stupid",
            "you don't know what you're talking about",
            "what would you know",
        ),
    ),
    "straw_man": (
        "Restates the other position in a distorted, easier-to-attack form.",
        (
            "so you're saying",
            "so what you're saying",
            "so you are saying",
            "you just want",
        ),
    ),
    "slippery_slope": (
        "Claims a small step will inevitably lead to an extreme outcome.",
        (
            "next thing you know",
            "will inevitably lead to",
            "before you know it",
            "where does it end",
            "it's a slippery slope",
        ),
    ),
    "false_dilemma": (
        "Presents only two options when more exist.",
        (
            "either ... or",
            "the only option",
            "the only choice",
            "the only way",
            "there is no alternative",
            "there's no alternative",
        ),
    ),
    "appeal_to_authority": (
        "Relies on an authority's status rather than on evidence.",
        (
            "experts agree",
            "experts say",
            "as a famous",
            "scientists say",
            "a doctor told me",
        ),
    ),
    "bandwagon": (
        "Argues something is true or good because many people believe it.",
        (
            "everyone knows",
            "everybody knows",
            "everybody",
            "everyone agrees",
            "most people think",
            "nobody believes",
        ),
    ),
    "hasty_generalization": (
        "Draws a sweeping conclusion from too little evidence.",
        ("always", "never", "all of them", "every single", "none of them"),
    ),
    "appeal_to_emotion": (
        "Uses emotion in place of a reasoned argument.",
        (
            "think of the children",
            "think about the children",
            "how would you feel",
            "imagine how",
        ),
    ),
}

#: Cognitive bias type -> (explanation, cues).
BIAS_CUES: dict[str, tuple[str, tuple[str, ...]]] = {
    "confirmation_bias": (
        "Favours information that confirms an existing belief.",
        (
            "proves my point",
            "as i always said",
            "as i said before",
            "i knew it",
            "just as i expected",
        ),
    ),
    "anchoring": (
        "Relies too heavily on the first figure or fact mentioned.",
        (
            "the first number",
            "the original figure",
            "compared to the initial",
            "starting from",
            "the first estimate",
        ),
    ),
    "availability_heuristic": (
        "Judges likelihood from a vivid or recent example.",
        (
            "i heard about a case",
            "just last week",
            "i saw on the news",
            "i know someone who",
            "the other day",
        ),
    ),
    "overconfidence": (
        "Expresses more certainty than the evidence supports.",
        (
            "definitely",
            "certainly",
            "no doubt",
            "without a doubt",
            "guaranteed",
            "100%",
        ),
    ),
    "in_group_bias": (
        "Favours one's own group over others.",
        ("people like us", "our kind", "us versus them", "us vs them", "those people"),
    ),
}
