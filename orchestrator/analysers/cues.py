"""Cue lexicons for the builtin analyser, kept as data.

A cue is a lower-case phrase matched case-insensitively on word boundaries.
Two conventions keep the lexicon readable:

* ``...`` is a gap of a few words inside one sentence (``"either ... or"``);
* an apostrophe also matches the typographic one (``you're`` / ``you’re``).

The fallacy, bias and implication rules in ``argument_patterns.py`` combine
these words with the sentence's dependency parse.
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
    "i'm against",
    "i am against",
    "we're against",
    "against it",
    "against this",
    "against that",
    "no way",
    "bad idea",
    "not convinced",
    "i doubt",
    "would not work",
    "wouldn't work",
    "won't work",
    "will not work",
    "not solve",
    "not the answer",
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
#: Cues of agreeing with what was said before (unlike "we should", they side with the
#: main claim even when another speaker says them).
AGREEMENT_CUES: tuple[str, ...] = (
    "i agree",
    "agree with",
    "exactly",
    "that's right",
    "that is right",
    "good point",
    "good idea",
    "i support",
    "in favour of",
    "in favor of",
    "absolutely",
    "definitely",
    "right call",
    "well said",
    "spot on",
)
#: Words that open a reply against what was said ("But ...", "No, ...").
CONTRAST_OPENERS: frozenset[str] = frozenset({"but", "however", "no", "actually", "nonsense", "rubbish"})

#: Words that mark a conditional ("if X, Y will ...") when they introduce a clause.
CONDITIONAL_MARKS: frozenset[str] = frozenset({"if", "unless", "provided", "providing", "once"})
#: Modal auxiliaries of a consequence clause ("... Y will happen").
CONSEQUENCE_MODALS: frozenset[str] = frozenset(
    {"will", "'ll", "wo", "would", "'d", "could", "might", "may", "must", "going", "gon"}
)
#: Verbs that state a cause-effect link ("X leads to Y").
CAUSAL_VERBS: frozenset[str] = frozenset(
    {"cause", "lead", "result", "drive", "trigger", "produce", "force", "push", "spark", "fuel", "create", "mean"}
)
#: Sentence adverbs and phrases that introduce a consequence.
CONSEQUENCE_CUES: tuple[str, ...] = (
    "thanks to",
    "therefore",
    "thus",
    "hence",
    "consequently",
    "as a result",
    "as a consequence",
    "which means",
    "this means",
    "that means",
    "it means",
    "that is why",
    "that's why",
    "this is why",
    "due to",
    "because of",
    "the upshot",
    "in turn",
)
#: Nouns for an action or decision: as the subject of "will ..." they make a consequence.
EVENT_NOUNS: frozenset[str] = frozenset(
    {
        "decision", "policy", "change", "plan", "move", "law", "rule", "cut", "ban", "tax", "increase",
        "rise", "delay", "shortage", "closure", "reform", "merger", "strike", "drop", "fall", "this", "that",
    }
)  # fmt: skip

# --- fallacies and biases: the words the patterns in argument_patterns.py look for ---

#: People one knows: "my neighbour does" is a single case.
ACQUAINTANCES: frozenset[str] = frozenset(
    {
        "neighbour", "neighbor", "cousin", "friend", "uncle", "aunt", "brother", "sister", "colleague",
        "boss", "mum", "mom", "dad", "mother", "father", "wife", "husband", "roommate", "flatmate",
        "coworker", "son", "daughter", "grandma", "grandmother", "grandpa", "grandfather", "nephew",
        "niece", "classmate", "landlord", "partner", "kid", "girlfriend", "boyfriend",
    }
)  # fmt: skip
#: Words of a sweeping claim ("they all", "never", "everybody").
UNIVERSALS: frozenset[str] = frozenset(
    {"everyone", "everybody", "all", "every", "nobody", "never", "always", "none", "anyone", "anybody"}
)
#: Words that say a judgment rests on a small sample ("one bad meal", "the last contractor").
FEW: frozenset[str] = frozenset({"one", "two", "single", "once", "last", "a", "an", "that"})

#: Insults and derogatory labels for a person or their way of thinking.
INSULTS: frozenset[str] = frozenset(
    {
        "idiot", "stupid", "lazy", "greedy", "liar", "hypocrite", "clueless", "naive", "incompetent",
        "moron", "fool", "foolish", "ignorant", "corrupt", "amateur", "dumb", "arrogant", "crook",
        "loser", "snowflake", "dinosaur", "hack", "shill", "crank", "nutter", "lunatic", "dishonest",
        "biased", "bitter", "spoiled", "entitled", "silly", "pathetic", "brainwashed", "gullible",
        "selfish", "careless", "sloppy", "useless",
    }
)  # fmt: skip
#: Nouns for a way of thinking: an insult about it is about the person ("lazy thinking").
MINDSET_NOUNS: frozenset[str] = frozenset({"thinking", "mindset", "attitude", "logic", "reasoning", "brain", "mind"})
#: Personal traits used to disqualify a speaker ("too young to have an opinion").
DISQUALIFYING_TRAITS: frozenset[str] = frozenset(
    {"young", "old", "rich", "poor", "inexperienced", "new", "emotional", "junior", "privileged"}
)
#: Verbs of taking someone seriously ("why would we listen to you").
CREDENCE_VERBS: frozenset[str] = frozenset({"trust", "listen", "believe", "take", "heed", "respect"})
#: Phrases that attack the speaker's standing or motives.
AD_HOMINEM_CUES: tuple[str, ...] = (
    "what would you know",
    "what would he know",
    "what would she know",
    "what do you know",
    "who are you to",
    "coming from someone",
    "from someone who",
    "from a person who",
    "people like you",
    "you would say that",
    "of course you would",
    "of course he would",
    "of course she would",
    "of course they would",
    "you only say that",
    "he only says that",
    "she only says that",
    "of course she supports",
    "of course he supports",
    "of course they support",
)

#: Verbs a straw man puts in the other side's mouth.
REPHRASE_VERBS: frozenset[str] = frozenset(
    {"say", "want", "think", "mean", "suggest", "believe", "claim", "propose", "expect", "imply", "tell"}
)
#: Words that present a restatement of the other side ("so you're saying", "in other words").
REPHRASE_MARKERS: tuple[str, ...] = (
    "what he really",
    "what she really",
    "what they really",
    "what he's really",
    "what she's really",
    "what they're really",
    "so you",
    "so what you",
    "so basically",
    "in other words",
    "what you're really",
    "what you are really",
    "what you really",
    "apparently",
    "basically",
    "essentially",
    "so your",
)
#: People whose position a straw man restates.
OPPONENTS: frozenset[str] = frozenset(
    {"you", "he", "she", "they", "opponent", "colleague", "friend", "side", "critics", "rival", "member"}
)

#: Outcomes extreme enough to end a slippery slope.
EXTREME_OUTCOMES: frozenset[str] = frozenset(
    {
        "fail", "collapse", "die", "ruin", "ruined", "nothing", "nobody", "everything", "whole", "every",
        "bankrupt", "chaos", "destroy", "end", "disappear", "empty", "anarchy", "disaster", "crumble",
        "lose", "never", "all", "total", "entire", "everyone", "doom", "doomed", "finished", "wreck",
    }
)  # fmt: skip
#: Words of escalation between consequences ("soon", "next", "eventually").
ESCALATION: frozenset[str] = frozenset({"soon", "next", "eventually", "later", "ultimately", "finally", "tomorrow"})
SLIPPERY_SLOPE_CUES: tuple[str, ...] = (
    "next thing you know",
    "before you know it",
    "before long",
    "where does it end",
    "where will it end",
    "thin end of the wedge",
    "open the floodgates",
    "opens the floodgates",
    "what's next",
    "it's only a matter of time",
    "will inevitably lead to",
)

FALSE_DILEMMA_CUES: tuple[str, ...] = (
    "or no",
    "or nothing",
    "only two options",
    "only two choices",
    "only two ways",
    "only two possibilities",
    "only two paths",
    "only two outcomes",
    "no middle ground",
    "no third option",
    "no third way",
    "no other option",
    "no other choice",
    "there is no alternative",
    "there's no alternative",
    "one or the other",
    "it's that simple",
    "it is that simple",
    "simple as that",
    "with us or against us",
)

#: People whose word is taken as proof.
AUTHORITIES: frozenset[str] = frozenset(
    {
        "expert", "scientist", "doctor", "professor", "ceo", "celebrity", "actor", "actress", "star",
        "president", "minister", "pope", "priest", "guru", "dr.", "dr", "prof.", "prof", "physician",
        "economist", "director", "boss", "chairman", "founder", "influencer", "singer", "athlete",
        "footballer", "winner", "laureate", "authority", "specialist", "genius", "billionaire",
    }
)  # fmt: skip
#: Vague authorities that "agree" with no evidence ("experts agree").
ANONYMOUS_AUTHORITIES: frozenset[str] = frozenset({"experts", "scientists", "doctors", "specialists", "economists"})
#: A conclusion drawn from someone's word or from popularity ("so it must be", "that settles it").
DEFERENCE_CUES: tuple[str, ...] = (
    "can't be",
    "cannot be",
    "can't be questioned",
    "be fools not to",
    "mad not to",
    "follow suit",
    "knows what he's talking about",
    "knows what she's talking about",
    "know what they're talking about",
    "so it must",
    "it must be",
    "must be true",
    "must be right",
    "must be correct",
    "must be good",
    "must be safe",
    "must be the best",
    "can't be wrong",
    "cannot be wrong",
    "can't all be wrong",
    "cannot all be wrong",
    "can't be bad",
    "that settles it",
    "settles it",
    "case closed",
    "who are we to",
    "who am i to",
    "no need to check",
    "no need to question",
    "good enough for",
    "if he says so",
    "if she says so",
    "if they say so",
    "that's enough for me",
    "knows best",
    "know best",
    "so it's true",
    "so it is true",
    "so it works",
    "so it was fine",
    "so it was right",
    "so it is right",
    "so it's right",
    "must work",
    "should trust",
    "we should too",
    "so should we",
    "we should as well",
    "get on board",
    "jump on",
    "don't be left behind",
    "don't get left behind",
    "be the only ones",
    "join them",
    "join the",
)
#: Subjects that stand for many people ("millions of people", "the whole office").
CROWDS: frozenset[str] = frozenset(
    {
        "everyone", "everybody", "millions", "thousands", "majority", "most", "whole", "all", "nobody",
        "competitors", "crowds", "world", "country", "nation", "internet", "generation", "half", "many",
        "popular", "fashionable", "trendy",
    }
)  # fmt: skip
BANDWAGON_CUES: tuple[str, ...] = (
    "everyone knows",
    "everybody knows",
    "everyone's doing it",
    "everybody's doing it",
    "everyone is doing it",
    "everybody is doing it",
    "everyone agrees",
    "everybody agrees",
    "nobody believes that anymore",
    "all the cool",
    "the popular choice",
    "trending",
)

#: Words that stir feelings rather than give reasons.
EMOTIVE_WORDS: frozenset[str] = frozenset(
    {
        "children", "child", "kids", "families", "family", "tears", "suffer", "suffering", "pain",
        "die", "dying", "poor", "innocent", "victims", "mother", "grandmother", "grandma", "homes",
        "hungry", "starving", "cry", "crying", "heart", "heartbroken", "lonely", "alone", "animals",
        "puppies", "babies", "baby", "elderly", "orphans", "frightened", "terrified", "devastated",
        "grief", "shame", "ashamed", "conscience", "souls", "misery", "helpless",
    }
)  # fmt: skip
#: Verbs that ask the listener to picture something ("imagine", "think of").
PICTURE_VERBS: frozenset[str] = frozenset({"imagine", "think", "picture", "consider", "remember", "look"})
APPEAL_TO_EMOTION_CUES: tuple[str, ...] = (
    "think of the children",
    "think about the children",
    "how would you feel",
    "how would you like it",
    "how would it feel",
    "if you had any heart",
    "if you had a heart",
    "have a heart",
    "if you cared",
    "if you really cared",
    "if you care about",
    "blood on your hands",
    "counting on you",
    "on your conscience",
    "shame on you",
    "for the sake of",
    "don't you care",
    "do you even care",
    "if you had any decency",
    "if you had any compassion",
)

#: What tradition is appealed to ("for centuries", "my grandparents").
TRADITION_CUES: tuple[str, ...] = (
    "passed down",
    "time-tested",
    "time-honoured",
    "time-honored",
    "tried and tested",
    "heritage",
    "the old way",
    "the old ways",
    "since ... founded",
    "since ... was built",
    "since ... day",
    "since ... days",
    "always done",
    "always been done",
    "always been",
    "always worked",
    "always had",
    "always used",
    "always run",
    "always held",
    "for centuries",
    "for generations",
    "for decades",
    "for hundreds of years",
    "for a hundred years",
    "since forever",
    "since the beginning",
    "tradition",
    "traditional",
    "grandparents",
    "grandfather",
    "grandmother",
    "ancestors",
    "forefathers",
    "our parents",
    "my parents",
    "the old way",
    "the way it's always",
    "the way it has always",
    "the way we've always",
    "how it's always",
    "how we've always",
)
#: What tradition is said to justify ("no reason to change", "that's how it should stay").
CONSERVE_CUES: tuple[str, ...] = (
    "would be a mistake",
    "would feel wrong",
    "would be wrong",
    "out of the question",
    "no point",
    "not about to",
    "no reason to change",
    "no need to change",
    "why change",
    "why should we change",
    "shouldn't change",
    "should not change",
    "shouldn't modernise",
    "shouldn't modernize",
    "should not modernise",
    "should not modernize",
    "should stay",
    "should remain",
    "stay that way",
    "keep it that way",
    "keep doing",
    "worked fine",
    "worked well",
    "worked for them",
    "worked for us",
    "good enough",
    "don't fix",
    "ain't broke",
    "isn't broken",
    "how it should stay",
    "how it should be",
    "must stay",
    "must remain",
    "must be right",
    "must be the right",
    "so it's right",
    "so it is right",
    "we shouldn't",
    "we should not",
    "no reason to",
    "leave it",
)

#: Words that put one event after another ("after", "ever since").
SEQUENCE_CUES: tuple[str, ...] = (
    "after",
    "ever since",
    "right after",
    "just after",
    "soon after",
    "since we",
    "since they",
    "since he",
    "since she",
    "since i",
    "as soon as",
    "the year",
    "the day",
    "the week",
    "the month",
    "and then",
    "the moment",
    "when we",
    "when i",
    "when they",
)
#: A causal conclusion drawn from that sequence ("so the logo caused it").
CAUSAL_CONCLUSION_CUES: tuple[str, ...] = (
    "caused",
    "causes",
    "cause of",
    "proves",
    "proof that",
    "so the ... work",
    "so the ... works",
    "so the ... worked",
    "so it works",
    "so it worked",
    "must be doing",
    "must have",
    "must be why",
    "must be the reason",
    "that's why",
    "that is why",
    "is what broke",
    "is what fixed",
    "is what caused",
    "did the trick",
    "thanks to",
    "because of",
    "the reason",
    "clearly worked",
    "obviously worked",
    "is to blame",
    "to blame for",
    "responsible for",
    "brought us",
    "brings us",
    "brings bad luck",
    "bring luck",
    "brought luck",
)

#: Reasons that are the claim itself or its source's own word.
CIRCULAR_CUES: tuple[str, ...] = (
    "because it says so",
    "because it says it",
    "because i said so",
    "because i say so",
    "because they say so",
    "because it is true",
    "because it's true",
    "by definition",
    "because it is the rule",
    "because it's the rule",
    "because that's the rule",
    "because that's how it is",
    "because it just is",
)

CONFIRMATION_BIAS_CUES: tuple[str, ...] = (
    "backs up my",
    "back up my",
    "backed up my",
    "the ones that don't",
    "those that don't",
    "the ones which don't",
    "proves my point",
    "proves i was right",
    "proves i'm right",
    "proves me right",
    "as i always said",
    "as i said before",
    "i knew it",
    "just as i expected",
    "just as i thought",
    "told you so",
    "confirms what i",
    "confirms my",
    "what i always believed",
    "what i always thought",
    "what i've always",
    "i don't need to read",
    "i don't need to look",
    "i don't need to see",
    "don't need to read the other",
    "don't fit my",
    "doesn't fit my",
    "don't match my",
    "who agree with me",
    "that agree with me",
    "that agrees with me",
    "who agrees with me",
    "which agree with me",
    "that support my",
    "that supports my",
    "only listen to",
    "only read",
    "only follow",
    "only trust",
    "only watch",
)
#: Evidence one may ignore; ignoring its contrary part is confirmation bias.
CONTRARY_EVIDENCE: tuple[str, ...] = (
    "negative reviews",
    "bad reviews",
    "critical reviews",
    "other studies",
    "studies that disagree",
    "the critics",
    "contrary",
    "opposing",
    "counterexamples",
    "data that",
    "results that",
    "numbers that",
    "evidence against",
)
#: Verbs of setting evidence aside.
DISMISS_VERBS: frozenset[str] = frozenset({"ignore", "dismiss", "disregard", "discard", "skip", "overlook"})

#: The first figure a judgment leans on ("their opening offer was 40 percent").
ANCHOR_WORDS: frozenset[str] = frozenset(
    {"first", "original", "originally", "initial", "initially", "opening", "listed", "list", "asking", "started",
     "starting", "sticker", "usual", "normally", "full", "retail", "was", "were"}
)  # fmt: skip
#: A judgment relative to that figure ("a bargain", "isn't that bad").
RELATIVE_JUDGMENTS: tuple[str, ...] = (
    "fair",
    "modest",
    "great price",
    "good value",
    "great value",
    "small price",
    "bargain",
    "a steal",
    "cheap",
    "reasonable",
    "not that bad",
    "isn't that bad",
    "not so bad",
    "not bad",
    "good deal",
    "great deal",
    "a deal",
    "looks cheap",
    "feels cheap",
    "generous",
    "a lot less",
    "much less",
    "much better",
    "sounds fair",
    "fair enough",
    "only",
    "a discount",
    "a relief",
    "quite good",
    "pretty good",
    "good price",
    "affordable",
)

#: A vivid or recent case one has seen or heard about.
EXPOSURE_CUES: tuple[str, ...] = (
    "documentary",
    "stories about",
    "keep seeing",
    "keep hearing",
    "keep reading",
    "headlines",
    "this month",
    "this week",
    "last month",
    "recently",
    "on the news",
    "in the news",
    "i saw",
    "i read about",
    "i heard about",
    "i heard of",
    "saw a video",
    "a video of",
    "a story about",
    "read a story",
    "all over social media",
    "on tv",
    "just yesterday",
    "last week",
    "the other day",
    "last night",
)
#: A judgment of how likely or risky something is.
LIKELIHOOD_JUDGMENTS: tuple[str, ...] = (
    "chances",
    "chance of",
    "odds",
    "out of control",
    "getting worse",
    "bound to happen",
    "dangerous",
    "risky",
    "unsafe",
    "common",
    "likely",
    "all the time",
    "happens a lot",
    "everywhere",
    "rare",
    "safe",
    "too risky",
    "deadly",
    "epidemic",
    "on the rise",
    "skyrocketing",
    "never going to",
)

OVERCONFIDENCE_CUES: tuple[str, ...] = (
    "cannot possibly",
    "can't possibly",
    "bet my house",
    "bet my life",
    "zero doubt",
    "no doubt in my mind",
    "not a shred of doubt",
    "absolutely certain",
    "absolutely sure",
    "completely certain",
    "100% sure",
    "100% certain",
    "100 percent sure",
    "hundred percent sure",
    "guaranteed",
    "guarantee it",
    "i guarantee",
    "no way this can",
    "no way this will",
    "no way we can",
    "no way we will",
    "no way it can",
    "no way it will",
    "no way we'll",
    "can't possibly fail",
    "cannot possibly fail",
    "can't possibly go wrong",
    "can't go wrong",
    "cannot go wrong",
    "can't fail",
    "cannot fail",
    "zero chance",
    "zero risk",
    "not a chance",
    "without a doubt",
    "there's no chance",
    "there is no chance",
    "nothing can go wrong",
    "nothing could go wrong",
    "i'm never wrong",
    "i am never wrong",
    "trust me",
)

IN_GROUP_CUES: tuple[str, ...] = (
    "people like us",
    "those people",
    "our kind",
    "their kind",
    "us versus them",
    "us vs them",
    "us against them",
    "one of us",
    "not one of us",
    "outsiders",
    "our own people",
    "our own kind",
    "our own university",
    "our own school",
    "our own town",
    "our own country",
    "people from our",
    "people from outside",
    "unlike them",
    "unlike those",
    "unlike the",
    "not like us",
    "real locals",
)
#: Words of superiority of one's own group ("our team would never", "we just work harder").
SUPERIORITY_WORDS: frozenset[str] = frozenset(
    {"better", "harder", "smarter", "never", "superior", "best", "always", "only", "more", "stronger"}
)

# --- words the generalised rules read (classes, not phrases) ---

#: A conclusion drawn from what came before in the sentence ("..., so", "which shows").
CONCLUSION_MARKERS: tuple[str, ...] = (
    "so",
    "which shows",
    "which proves",
    "which means",
    "that shows",
    "that proves",
    "therefore",
    "thus",
    "hence",
    "clearly",
    "obviously",
    "end of discussion",
    "end of story",
)
#: Words of a normative or evaluative conclusion ("so we should", "so it's fine").
NORMATIVE_WORDS: frozenset[str] = frozenset(
    {
        "should", "must", "ought", "need", "needs", "fine", "good", "best", "right", "wrong", "healthy",
        "safe", "okay", "ok", "true", "correct", "great", "better", "worth", "too", "fools", "follow",
        "obviously", "clearly", "choice",
    }
)  # fmt: skip
#: Verbs and nouns of an effect: after a sequence of events, "so X cured / ruined / is the problem".
EFFECT_WORDS: frozenset[str] = frozenset(
    {
        "cure", "fix", "ruin", "break", "cause", "make", "boost", "work", "pay", "help", "improve",
        "hurt", "damage", "kill", "save", "solve", "raise", "lower", "drive", "bring", "trigger",
        "problem", "reason", "culprit", "blame", "jinx", "curse", "spoil", "heal",
    }
)  # fmt: skip
#: Verbs of someone's word or endorsement ("a famous footballer recommends ...").
ENDORSE_VERBS: frozenset[str] = frozenset(
    {
        "say", "recommend", "endorse", "claim", "believe", "tell", "think", "insist", "swear", "state",
        "declare", "confirm", "approve", "suggest", "use", "praise", "back", "support", "advise",
    }
)  # fmt: skip
#: Credentials offered instead of evidence ("thirty years of experience").
CREDENTIALS: frozenset[str] = frozenset({"experience", "degree", "phd", "qualified", "award", "prize", "credentials"})
#: Adjectives of prestige that make a person an authority ("a well-known influencer").
PRESTIGE: frozenset[str] = frozenset(
    {"famous", "well-known", "renowned", "leading", "top", "celebrated", "eminent", "award-winning", "nobel"}
)
#: People named by a role or a label (for attacks on the speaker and single cases).
PERSON_NOUNS: frozenset[str] = frozenset(
    {
        "man", "woman", "guy", "person", "someone", "somebody", "coach", "politician", "lawyer", "teacher",
        "senator", "mp", "banker", "activist", "journalist", "manager", "kid", "student", "girl", "boy",
        "lady", "fellow", "candidate", "player", "anyone",
    }
)  # fmt: skip
#: Nouns for an argument or proposal, judged in an attack on its author.
ARGUMENT_NOUNS: frozenset[str] = frozenset(
    {"plan", "proposal", "idea", "argument", "view", "opinion", "point", "claim", "theory", "advice", "policy"}
)
#: Dismissive judgments of an argument ("worthless", "nonsense").
DISMISSIVE_WORDS: frozenset[str] = frozenset(
    {"nonsense", "worthless", "rubbish", "garbage", "ridiculous", "absurd", "meaningless", "joke", "laughable"}
)
#: Verbs and nouns of changing what is done (kept from change by tradition).
CHANGE_WORDS: frozenset[str] = frozenset(
    {
        "change", "switch", "replace", "abolish", "modernise", "modernize", "stop", "update", "drop", "scrap",
        "ditch", "alter", "abandon", "reform", "touch",
    }
)  # fmt: skip
#: Groups one belongs to ("our school's students", "engineers like us").
GROUP_NOUNS: frozenset[str] = frozenset(
    {
        "people", "students", "kids", "children", "team", "fans", "athletes", "players", "country", "school",
        "engineers", "staff", "department", "office", "town", "village", "members", "workers", "nation",
        "city", "club", "family", "class", "company", "side", "folks", "employees", "teachers", "kind",
        "generation", "group", "neighbourhood", "neighborhood", "region", "party", "supporters", "community",
    }
)  # fmt: skip
#: Words for the other group ("theirs", "outsiders", "other teams").
OUTGROUP_WORDS: frozenset[str] = frozenset(
    {"other", "others", "outsiders", "strangers", "foreigners", "theirs", "newcomers", "those"}
)
#: Rhetorical small first steps ("just one exception") that a slippery slope grows from.
SMALL_STEP_WORDS: frozenset[str] = frozenset({"one", "single", "just", "little", "tiny", "small", "bit"})
#: Words that introduce a condition as a verb or phrase ("assuming the grant comes through").
CONDITION_VERBS: frozenset[str] = frozenset({"assuming", "supposing", "suppose", "provided", "providing"})
