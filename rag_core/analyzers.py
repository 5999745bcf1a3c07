"""Which analyzer BM25 reads the docs with: the docs' language's where Milvus has it.

Milvus >= 2.5 has an ``english`` analyzer (lower-casing, Snowball stemming, English stop
words), so "partitions" finds "partition" and "the" stops counting. Milvus Lite 3.x
has only the ``standard`` tokenizer (``\\w+``, lower-cased) and ``jieba``, and refuses
``english``; it does take a stop-word filter, so English docs there get ``english_stop``:
the standard tokenizer with ``english``'s stop words, without stemming (on
``questions.jsonl``, BM25 recall@5 0.913 against 0.870 for ``standard``). A build asks
the server once (:func:`probe_english`), chooses with the pure :func:`choose_analyzer`,
and records the choice on the collection (``ragbot.analyzer``) so it can be read back
with the index. A question is analysed by the same analyzer, inside Milvus, so nothing
changes at query time.
"""

from __future__ import annotations

import logging
import secrets
from enum import StrEnum
from typing import Literal

from pymilvus import MilvusClient, MilvusException

from rag_core.errors import ConfigError
from rag_core.log_filters import dropped
from rag_core.store_schema import build_schema

log = logging.getLogger(__name__)

AnalyzerName = Literal["english", "english_stop", "standard"]
AnalyzerSetting = Literal["auto", "english", "english_stop", "standard"]
PROBE_PREFIX = "ragbot_probe_"


class Support(StrEnum):
    """What the server answered when asked for an analyzer."""

    SUPPORTED = "supported"  # it built a collection with it
    REFUSED = "refused"  # it refused it


def choose_analyzer(
    setting: AnalyzerSetting, *, docs_language: str, english: Support | None
) -> AnalyzerName:
    """The analyzer a build uses. ``auto``: for English docs ``english`` where the server
    supports it, else ``english_stop``; ``standard`` for docs in other languages.
    ``english`` where it is not supported is a :class:`ConfigError`. ``english`` is None
    when the server was not asked."""
    if setting in ("standard", "english_stop"):
        return setting
    if setting == "english":
        if english is not Support.SUPPORTED:
            raise ConfigError(
                "RAGBOT_BM25_ANALYZER=english, but this Milvus has no english analyzer "
                "(Milvus Lite offers standard only; Milvus >= 2.5 has it); "
                "set it to auto or standard."
            )
        return "english"
    if setting != "auto":
        raise ConfigError(
            f"Unknown BM25 analyzer {setting!r}; use auto, english, english_stop or standard."
        )
    if docs_language.strip().lower() not in ("english", "en"):
        return "standard"
    return "english" if english is Support.SUPPORTED else "english_stop"


def probe_english(client: MilvusClient, *, timeout: float) -> Support:
    """Ask the server whether it has the ``english`` analyzer: create a throwaway
    collection of the index's own schema using it (some servers check an analyzer only
    where a BM25 function reads the field), then drop it. This works on every Milvus,
    where ``run_analyzer`` exists only from 2.5.11 and Milvus Lite answers it with a
    server-side traceback. A refusal counts only once the server answers a plain call,
    so a server that is down raises instead of being taken for one without it.
    """
    name = f"{PROBE_PREFIX}{secrets.token_hex(4)}"
    schema = build_schema(2, analyzer="english")
    try:
        # pymilvus logs every failed call with a traceback; this one is an answer.
        with dropped("pymilvus.decorators"):
            client.create_collection(name, schema=schema, timeout=timeout)
    except MilvusException as error:
        log.info("Milvus refused the english analyzer: %s", error)
        return _refused(client, timeout)
    try:
        client.drop_collection(name, timeout=timeout)
    except MilvusException as error:  # the probe still answered; only tidying failed
        log.warning("could not drop the analyzer probe collection %s: %s", name, error)
    return Support.SUPPORTED


def _refused(client: MilvusClient, timeout: float) -> Support:
    """:attr:`Support.REFUSED`, once a plain call shows the server is up (else it raises)."""
    client.list_collections(timeout=timeout)
    return Support.REFUSED


class AnalyzerChooser:
    """Chooses each build's analyzer on one Milvus client, asking the server at most
    once (the answer is kept for the client's life; builds are serialised by their
    lock, so no locking is needed here)."""

    def __init__(self, client: MilvusClient, *, timeout: float) -> None:
        self._client = client
        self._timeout = timeout
        self._english: Support | None = None

    def english(self) -> Support:
        """Whether the server has the english analyzer (probed on first use)."""
        if self._english is None:
            self._english = probe_english(self._client, timeout=self._timeout)
            log.info("Milvus english analyzer: %s", self._english.value)
        return self._english

    def choose(self, setting: AnalyzerSetting, *, docs_language: str) -> AnalyzerName:
        """:func:`choose_analyzer`, probing only when the setting depends on the answer."""
        english = None if setting in ("standard", "english_stop") else self.english()
        return choose_analyzer(setting, docs_language=docs_language, english=english)
