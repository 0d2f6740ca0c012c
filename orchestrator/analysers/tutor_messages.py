"""What the builtin tutor says, in English and Vietnamese, kept as data.

Explanations are keyed by ERRANT error type: first the full type
(``"R:VERB:SVA"``), then the type without its operation (``"VERB:SVA"``),
then the operation alone (``"R"``, ``"M"``, ``"U"``). A few special keys
(``"DET:AN"``, ``"ADJ:ING_ED"``) cover common learner errors that deserve a
more specific message than their type. ``{o}`` is the learner's words and
``{c}`` the correction. Every English message has a Vietnamese twin.
"""

from __future__ import annotations

#: English explanations: one short sentence a learner understands.
EXPLANATIONS_EN: dict[str, str] = {
    "R:VERB:SVA": 'The verb must agree with its subject: use "{c}", not "{o}".',
    "R:VERB:TENSE": 'Use the right tense here: "{c}", not "{o}".',
    "U:VERB:TENSE": 'Remove "{o}": a finished time in the past needs the simple past.',
    "M:VERB:TENSE": 'Add "{c}" to make the tense right.',
    "R:VERB:FORM": 'After this word, use the verb form "{c}", not "{o}".',
    "U:VERB:FORM": 'Remove "{o}": after "can", "must" or "should", use the verb without "to".',
    "M:VERB:FORM": 'Add "{c}" before this verb.',
    "VERB:INFL": '"{o}" is not a correct verb form: write "{c}".',
    "VERB": 'Use the verb "{c}" here, not "{o}".',
    "U:VERB": 'Remove "{o}": this sentence already has a main verb.',
    "M:DET": 'Add "{c}" here: a singular countable noun needs an article.',
    "U:DET": 'Remove "{o}": no article is needed here.',
    "R:DET": 'Use "{c}" here, not "{o}".',
    "DET:AN": 'Use "an" before a vowel sound and "a" before a consonant sound: "{c}".',
    "NOUN:NUM": 'The noun must match the number: write "{c}", not "{o}".',
    "NOUN:INFL": '"{c}" is uncountable: it has no plural form.',
    "NOUN": 'Use the word "{c}" here, not "{o}".',
    "R:PREP": 'Use the preposition "{c}" here, not "{o}".',
    "M:PREP": 'Add the preposition "{c}" here.',
    "U:PREP": 'Remove "{o}": no preposition is needed here.',
    "SPELL": 'Check the spelling: "{c}", not "{o}".',
    "ORTH": 'Check the capital letters and spaces: "{c}".',
    "WO": 'Change the word order: "{c}".',
    "ADJ": 'Use the adjective "{c}" here, not "{o}".',
    "ADJ:FORM": 'Use the form "{c}" here, not "{o}".',
    "ADJ:ING_ED": 'Use "-ed" for how a person feels and "-ing" for what causes the feeling: "{c}".',
    "MORPH": 'Use the word form "{c}" here, not "{o}".',
    "ADV": 'Use "{c}" here, not "{o}".',
    "ADV:VERY": 'Use "really", not "very", before a verb: "{c}".',
    "PRON": 'Use the pronoun "{c}" here, not "{o}".',
    "R": 'Write "{c}" instead of "{o}".',
    "M": 'Add "{c}" here.',
    "U": 'Remove "{o}".',
}

#: Vietnamese twins of EXPLANATIONS_EN (same keys).
EXPLANATIONS_VI: dict[str, str] = {
    "R:VERB:SVA": 'Động từ phải hợp với chủ ngữ: dùng "{c}", không dùng "{o}".',
    "R:VERB:TENSE": 'Cần dùng đúng thì ở đây: "{c}", không phải "{o}".',
    "U:VERB:TENSE": 'Bỏ "{o}": hành động đã kết thúc trong quá khứ dùng thì quá khứ đơn.',
    "M:VERB:TENSE": 'Thêm "{c}" để dùng đúng thì.',
    "R:VERB:FORM": 'Sau từ này, động từ phải ở dạng "{c}", không phải "{o}".',
    "U:VERB:FORM": 'Bỏ "{o}": sau "can", "must", "should" dùng động từ nguyên mẫu không có "to".',
    "M:VERB:FORM": 'Thêm "{c}" trước động từ này.',
    "VERB:INFL": '"{o}" không phải dạng đúng của động từ: viết "{c}".',
    "VERB": 'Dùng động từ "{c}" ở đây, không dùng "{o}".',
    "U:VERB": 'Bỏ "{o}": câu này đã có động từ chính.',
    "M:DET": 'Thêm "{c}" ở đây: danh từ đếm được số ít cần có mạo từ.',
    "U:DET": 'Bỏ "{o}": ở đây không cần mạo từ.',
    "R:DET": 'Dùng "{c}" ở đây, không dùng "{o}".',
    "DET:AN": 'Dùng "an" trước âm nguyên âm và "a" trước âm phụ âm: "{c}".',
    "NOUN:NUM": 'Danh từ phải hợp với số lượng: viết "{c}", không viết "{o}".',
    "NOUN:INFL": '"{c}" là danh từ không đếm được, không có dạng số nhiều.',
    "NOUN": 'Dùng từ "{c}" ở đây, không dùng "{o}".',
    "R:PREP": 'Dùng giới từ "{c}" ở đây, không dùng "{o}".',
    "M:PREP": 'Thêm giới từ "{c}" ở đây.',
    "U:PREP": 'Bỏ "{o}": ở đây không cần giới từ.',
    "SPELL": 'Sai chính tả: viết "{c}", không viết "{o}".',
    "ORTH": 'Kiểm tra chữ hoa và khoảng trắng: "{c}".',
    "WO": 'Đổi trật tự từ: "{c}".',
    "ADJ": 'Dùng tính từ "{c}" ở đây, không dùng "{o}".',
    "ADJ:FORM": 'Dùng dạng "{c}" ở đây, không dùng "{o}".',
    "ADJ:ING_ED": 'Dùng "-ed" để nói cảm xúc của người, "-ing" để nói điều gây ra cảm xúc: "{c}".',
    "MORPH": 'Dùng dạng từ "{c}" ở đây, không dùng "{o}".',
    "ADV": 'Dùng "{c}" ở đây, không dùng "{o}".',
    "ADV:VERY": 'Dùng "really", không dùng "very", trước động từ: "{c}".',
    "PRON": 'Dùng đại từ "{c}" ở đây, không dùng "{o}".',
    "R": 'Viết "{c}" thay cho "{o}".',
    "M": 'Thêm "{c}" ở đây.',
    "U": 'Bỏ "{o}".',
}


def explanation_key(error_type: str, original: str, correction: str) -> str:
    """The most specific key of the tables that fits this error."""
    o, c = original.strip().lower(), correction.strip().lower()
    if {o, c} == {"a", "an"}:
        return "DET:AN"
    if o.endswith("ing") and c.endswith("ed") or o.endswith("ed") and c.endswith("ing"):
        if error_type.split(":", 1)[-1] in ("ADJ", "ADJ:FORM", "MORPH"):
            return "ADJ:ING_ED"
    if o == "very" and c == "really":
        return "ADV:VERY"
    operation, _, category = error_type.partition(":")
    for key in (error_type, category):
        if key in EXPLANATIONS_EN:
            return key
    return operation if operation in EXPLANATIONS_EN else "R"


def explain(error_type: str, original: str, correction: str, *, vietnamese: bool = False) -> str:
    """One short sentence explaining this error to a learner."""
    table = EXPLANATIONS_VI if vietnamese else EXPLANATIONS_EN
    key = explanation_key(error_type, original, correction)
    return table[key].format(o=original.strip(), c=correction.strip())


# --- the tutor's reply -------------------------------------------------------

#: Reply templates by language and by band of CEFR level ("basic" is A1-A2:
#: short, simple sentences; "independent" B1-B2; "proficient" C1-C2).
REPLIES: dict[str, dict[str, dict[str, str]]] = {
    "en": {
        "basic": {
            "correct": "Great job! Your sentence is correct.",
            "one_error": "Good try! There is one mistake.",
            "errors": "Good try! There are {n} mistakes.",
            "main": "{explanation}",
            "corrected": 'The correct sentence is: "{corrected}"',
        },
        "independent": {
            "correct": "Well done: your sentence is grammatically correct.",
            "one_error": "Nice effort. There is one thing to fix.",
            "errors": "Nice effort. There are {n} things to fix.",
            "main": "The main one: {explanation}",
            "corrected": 'Corrected sentence: "{corrected}"',
        },
        "proficient": {
            "correct": "Excellent: your sentence is accurate.",
            "one_error": "Almost perfect: one point needs attention.",
            "errors": "Almost there: {n} points need attention.",
            "main": "Most importantly: {explanation}",
            "corrected": 'Suggested version: "{corrected}"',
        },
    },
    "vi": {
        "basic": {
            "correct": "Giỏi lắm! Câu của bạn đúng rồi.",
            "one_error": "Cố gắng tốt! Có một lỗi.",
            "errors": "Cố gắng tốt! Có {n} lỗi.",
            "main": "{explanation}",
            "corrected": 'Câu đúng là: "{corrected}"',
        },
        "independent": {
            "correct": "Làm tốt lắm: câu của bạn đúng ngữ pháp.",
            "one_error": "Bạn đã cố gắng. Có một chỗ cần sửa.",
            "errors": "Bạn đã cố gắng. Có {n} chỗ cần sửa.",
            "main": "Lỗi chính: {explanation}",
            "corrected": 'Câu đã sửa: "{corrected}"',
        },
        "proficient": {
            "correct": "Xuất sắc: câu của bạn chính xác.",
            "one_error": "Gần như hoàn hảo: có một điểm cần chú ý.",
            "errors": "Gần hoàn chỉnh rồi: có {n} điểm cần chú ý.",
            "main": "Quan trọng nhất: {explanation}",
            "corrected": 'Gợi ý: "{corrected}"',
        },
    },
}

#: Suggestions for a correct sentence, by language.
TIPS: dict[str, dict[str, str]] = {
    "en": {
        "longer": 'Try a longer sentence: join two ideas with "and", "but" or "because".',
        "variety": "Try not to repeat the same words: use a synonym.",
        "advanced": "Nice vocabulary: {words}.",
        "richer": "Try one or two less common words to make your sentence richer.",
    },
    "vi": {
        "longer": 'Hãy thử viết câu dài hơn: nối hai ý bằng "and", "but" hoặc "because".',
        "variety": "Cố gắng không lặp lại cùng một từ: hãy dùng từ đồng nghĩa.",
        "advanced": "Từ vựng hay: {words}.",
        "richer": "Hãy thử dùng một hai từ ít phổ biến hơn để câu văn phong phú hơn.",
    },
}

#: Bands of CEFR levels for the reply templates.
LEVEL_BANDS: dict[str, str] = {
    "A1": "basic",
    "A2": "basic",
    "B1": "independent",
    "B2": "independent",
    "C1": "proficient",
    "C2": "proficient",
}

#: The reply to an empty text, by language.
EMPTY_REPLY: dict[str, str] = {
    "en": "Write a sentence in English and I will check it.",
    "vi": "Hãy viết một câu tiếng Anh, mình sẽ kiểm tra giúp bạn.",
}
