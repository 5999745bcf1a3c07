"""What each leg of a search reads for a question, and how the legs are weighed.

A question in the docs' language is searched as it is. One in another language is
searched with its translation into the docs' language when a chat model made one
(both legs read it; the answer is still written for the original question). Without a
translation, the dense leg reads the question as it is (a multilingual embedder maps it
near the docs' words) and BM25, whose words mostly miss the docs', reads only the
Latin-script terms of a question in another script, with its own weight
(:func:`foreign_weight`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rag_core.languages import Script, detect_script, in_language, latin_terms, script_of_language
from rag_core.settings import Settings
from rag_core.store_search import Fusion


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """The texts a question is searched with and the fusion of its legs."""

    dense_text: str  # what the embedder reads
    bm25_text: str  # what BM25 matches; "" when nothing of the question can match the docs
    fusion: Fusion
    script: Script  # the question's, see rag_core.languages.detect_script
    translated: bool = False  # the texts come from a translation into the docs' language
    foreign: bool = False  # the question is not in the docs' language

    def how_searched(self) -> str:
        """For a question not in the docs' language, how it was searched, in words (""
        for one in the docs' language): what explains a miss an embedder cannot."""
        if not self.foreign:
            return ""
        if self.translated:
            return f"searched as its translation {self.dense_text!r}"
        if not self.bm25_text.strip():
            return "not translated; no word of it BM25 could match"
        if self.bm25_text != self.dense_text:
            return f"not translated; BM25 read only {self.bm25_text!r}"
        return "not translated"


def fusion_of(settings: Settings) -> Fusion:
    """The fusion the settings ask for (a question in the docs' language)."""
    return Fusion(
        k=settings.rrf_k,
        dense_weight=settings.dense_weight,
        bm25_weight=settings.bm25_weight,
        depth=settings.fusion_depth,
    )


ENGLISH_ONLY_FOREIGN_WEIGHT = 10.0
"""BM25's weight for an untranslated foreign question when the embedder reads one
language: the dense leg finds little for such a question and its Latin terms find the
most, so BM25 ranks and dense only breaks its ties and fills its tail. Chosen with
``bench/sweep_fusion.py`` on ``questions.jsonl`` (MiniLM, ``english_stop``): 5 and below
rank the Chinese questions' documents lower (MRR@10 0.500 against 0.625), 10 and 100 alike."""
MULTILINGUAL_FOREIGN_SHARE = 0.5
"""With a multilingual embedder the dense leg carries the question, and BM25, which reads
only part of it, weighs this share of its usual weight."""


def foreign_weight(setting: float | None, *, bm25_weight: float, multilingual: bool) -> float:
    """The BM25 weight of an untranslated question not in the docs' language: the
    setting when there is one, else (auto) a down-weighted BM25 for a multilingual
    embedder and :data:`ENGLISH_ONLY_FOREIGN_WEIGHT` for one that is not."""
    if setting is not None:
        return setting
    if multilingual:
        return bm25_weight * MULTILINGUAL_FOREIGN_SHARE
    return ENGLISH_ONLY_FOREIGN_WEIGHT


def needs_translation(question: str, docs_language: str) -> bool:
    """Whether ``question`` is in another language than the docs (see
    :func:`~rag_core.languages.in_language`)."""
    return not in_language(question, docs_language)


def bm25_words(question: str, docs_language: str) -> str:
    """What BM25 can match of an untranslated question: all of it in the docs' script,
    only its Latin-script terms (``MinIO``, ``max_length``) when the docs are in a Latin
    script and the question is not."""
    if script_of_language(docs_language) == "latin" and detect_script(question) != "latin":
        return " ".join(latin_terms(question))
    return question


def plan_query(
    question: str,
    *,
    docs_language: str,
    fusion: Fusion,
    foreign_bm25_weight: float,
    translation: str | None = None,
) -> SearchQuery:
    """How to search ``question`` (``translation``: its rewrite into ``docs_language``,
    for a question in another language, when there is one)."""
    script = detect_script(question)
    if not needs_translation(question, docs_language):
        return SearchQuery(question, question, fusion, script)
    if translation and translation.strip():
        known = translation.casefold()
        extra = [term for term in latin_terms(question) if term.casefold() not in known]
        bm25 = " ".join([translation, *extra])
        return SearchQuery(translation, bm25, fusion, script, translated=True, foreign=True)
    return SearchQuery(
        question,
        bm25_words(question, docs_language),
        dataclasses.replace(fusion, bm25_weight=foreign_bm25_weight),
        script,
        foreign=True,
    )
