"""Which script and language a question is written in, and the Latin terms inside it.

Pure functions over Unicode ranges and two short word lists: no dependency, no model.
They decide how a question is searched (see :mod:`rag_core.query_plan`): BM25 over
English docs only matches the Latin words a Chinese or Japanese question contains
(``MinIO``, ``nlist``, ``max_length``), so those are pulled out of it, and a question
not in the docs' language is rewritten into it when a chat model is at hand.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Script = Literal["latin", "cjk", "other"]
"""``latin``: mostly Latin letters (or no letters at all); ``cjk``: Chinese, Japanese or
Korean; ``other``: Cyrillic, Greek, Arabic, Hebrew, Devanagari, Thai..."""

SCRIPTS: tuple[Script, ...] = ("latin", "cjk", "other")
LANGUAGE_GROUPS = ("English", "other Latin", "Chinese", "Japanese", "Korean", "other")
"""How an evaluation groups questions by language (see :func:`language_group`)."""

_CJK_RANGES = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3130, 0x318F),  # Hangul Compatibility Jamo
    (0x31F0, 0x31FF),  # Katakana Phonetic Extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7AF),  # Hangul Syllables
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0xFF66, 0xFF9F),  # Half-width Katakana
    (0x20000, 0x3134F),  # CJK Unified Ideographs Extensions B to G
)
CJK_CHARS_PER_WORD = 2
"""A Chinese word is about two characters: CJK characters count half a word each when
a mixed question's script is decided by which words dominate."""

_LATIN_WORD = re.compile(r"[0-9A-Za-z_\u00c0-\u024f]+(?:[.\-][0-9A-Za-z_\u00c0-\u024f]+)*")
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LETTER = re.compile(r"[^\W\d_]")

# Frequent function words that are English and not also frequent words of the other
# Latin-script languages people ask in (Spanish, French, Portuguese, Italian, German).
_ENGLISH_LIST = (
    "the is are was were be been what which who whom whose why how when where does do "
    "did can could should would will shall may might must have has had not this that "
    "these those there it its it's i i'm my we our you your they their them of to and or "
    "with for from on at by into about after before if than then but any some all each "
    "get use using there's isn't doesn't don't can't won't"
)
_FOREIGN_LIST = (
    # Spanish, Portuguese
    "el la los las un una unos unas que qué cómo como por para con sin del al es está "
    "están son se su sus lo mi mis pero más muy ya o y cuando dónde cuál porque también "
    "não é são uma um dos das em para com pelo pela "
    # French
    "le les des du une est sont ce cette ces qui quoi comment pourquoi avec pour dans "
    "sur pas je nous vous ils elles mon ma mes et ou mais "
    # Italian
    "il lo gli della delle di che è sono perché quando dove non "
    # German
    "der die das ein eine einen ist sind wie was warum wann wo nicht mit für auf ich "
    "wir sie und oder aber kann können"
)
_ENGLISH_WORDS = frozenset(_ENGLISH_LIST.split())
_FOREIGN_WORDS = frozenset(_FOREIGN_LIST.split()) - _ENGLISH_WORDS
_LANGUAGE_SCRIPTS: dict[str, Script] = {
    **dict.fromkeys(("chinese", "japanese", "korean", "zh", "ja", "ko"), "cjk"),
    **dict.fromkeys(
        ("russian", "ukrainian", "greek", "arabic", "hebrew", "hindi", "thai", "persian"),
        "other",
    ),
    **dict.fromkeys(("ru", "uk", "el", "ar", "he", "hi", "th", "fa"), "other"),
}


def is_cjk(char: str) -> bool:
    """Whether ``char`` is a Chinese, Japanese or Korean character."""
    point = ord(char)
    return any(low <= point <= high for low, high in _CJK_RANGES)


def detect_script(text: str) -> Script:
    """The script most of ``text``'s words are written in.

    Latin and other letters count by word, CJK characters by :data:`CJK_CHARS_PER_WORD`,
    so a Chinese question full of English identifiers is still ``cjk``. Text without
    letters is ``latin``.
    """
    cjk = latin = other = 0
    for word in re.findall(r"\w+", text):
        cjk_chars = sum(1 for char in word if is_cjk(char))
        cjk += cjk_chars
        rest = [c for c in word if not is_cjk(c) and _LETTER.match(c)]
        if rest:
            if any(_is_latin(c) for c in rest):
                latin += 1
            else:
                other += 1
    weights: dict[Script, float] = {
        "latin": latin,
        "cjk": cjk / CJK_CHARS_PER_WORD,
        "other": other,
    }
    best = max(SCRIPTS, key=lambda script: weights[script])
    return best if weights[best] > 0 else "latin"


def latin_terms(text: str) -> list[str]:
    """The Latin-script words of ``text`` that hold a letter, each once, in order.

    Identifiers stay whole (``max_length``, ``MilvusClient``, ``collection.ttl.seconds``,
    ``uint64``); case is kept (the analyzer lower-cases). Bare numbers are left out.
    """
    seen: dict[str, None] = {}
    for match in _LATIN_WORD.finditer(text):
        term = match.group()
        if any(c.isalpha() for c in term):
            seen.setdefault(term, None)
    return list(seen)


def script_of_language(language: str) -> Script:
    """The script a language (an English name or an ISO 639-1 code) is written in;
    ``latin`` for languages not in the short table."""
    return _LANGUAGE_SCRIPTS.get(language.strip().lower(), "latin")


def looks_english(text: str) -> bool:
    """Whether Latin-script ``text`` reads as English rather than Spanish, French,
    Portuguese, Italian or German: at least as many English function words as theirs
    (code spans ignored). A question too short to tell counts as English."""
    words = re.findall(r"[^\W\d_]+(?:'[a-z]+)?", _CODE_SPAN.sub(" ", text).lower())
    english = sum(1 for word in words if word in _ENGLISH_WORDS)
    foreign = sum(1 for word in words if word in _FOREIGN_WORDS)
    foreign += sum(1 for char in text if char in "¿¡ñãõçœß")
    return english >= foreign


def in_language(text: str, language: str) -> bool:
    """Whether ``text`` is written in ``language`` as far as its script (and, for
    English, its function words) can tell; a different language in the same script
    (e.g. German questions over French docs) is not detected."""
    script = detect_script(text)
    if script != script_of_language(language):
        return False
    if language.strip().lower() in ("english", "en"):
        return looks_english(text)
    return True


def _is_latin(char: str) -> bool:
    if char.isascii():
        return char.isalpha()
    return unicodedata.name(char, "").startswith("LATIN")


def language_group(text: str) -> str:
    """The language group of a question (one of :data:`LANGUAGE_GROUPS`), from its
    script as the search decides it (:func:`detect_script`): a CJK question is
    ``Japanese`` when it has kana, ``Korean`` with Hangul, else ``Chinese``; a
    Latin-script one is ``English`` or ``other Latin`` (Spanish, French, German...) by
    its function words. Latin terms inside a CJK question (``MinIO``, ``nlist``) do not
    change its group."""
    script = detect_script(text)
    if script == "cjk":
        if any(_is_kana(char) for char in text):
            return "Japanese"
        return "Korean" if any(_is_hangul(char) for char in text) else "Chinese"
    if script == "other":
        return "other"
    return "English" if looks_english(text) else "other Latin"


def _is_kana(char: str) -> bool:
    point = ord(char)
    return 0x3041 <= point <= 0x30FA or 0x31F0 <= point <= 0x31FF or 0xFF66 <= point <= 0xFF9D


def _is_hangul(char: str) -> bool:
    point = ord(char)
    return 0xAC00 <= point <= 0xD7AF or 0x1100 <= point <= 0x11FF or 0x3131 <= point <= 0x318E
