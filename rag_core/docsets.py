"""Doc sets: named documentation sources, each indexed into a collection of its own.

A TOML file (``RAGBOT_CONFIG``) declares them under ``[docsets.NAME]``::

    [docsets.milvus]
    source = "https://github.com/milvus-io/milvus-docs.git"  # git, folder or sitemap URL
    ref = "v2.4.x"            # git: branch, tag or commit
    subdir = "site/en"        # only this part of the source
    include = ["**/*.md"]     # exclude = [...]
    url = "https://milvus.io/docs/{stem}.md#{anchor}"
    url_style = "docusaurus"  # plain, docusaurus, mkdocs or sphinx
    channels = ["C0123ABCD"]  # where it answers; absent: everywhere
    refresh = "1h"            # git and sitemap: how often workers look for changes

Without a file, the settings of a single-folder install (``RAGBOT_DOCS_PATH``,
``RAGBOT_SOURCE_BASE_URL``, ``RAGBOT_COLLECTION``) make one doc set named ``docs``,
served from the collection those installs already have. Every problem is a
:class:`~rag_core.errors.ConfigError` naming the file, the doc set, the key and the fix.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from rag_core.errors import ConfigError, InputError

SourceKind = Literal["folder", "git", "sitemap"]
DEFAULT_DOCSET = "docs"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
CHANNEL_PATTERN = re.compile(r"[A-Z0-9]{2,32}")
MIN_REFRESH_S = 60.0
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_KEYS = frozenset(
    {"source", "type", "ref", "subdir", "include", "exclude", "url", "url_style"}
    | {"channels", "refresh"}
)
_URL_STYLES = ("plain", "docusaurus", "mkdocs", "sphinx")
_DECLARED_TWICE = re.compile(r"Cannot declare \('docsets', '([^']+)'\) twice")


@dataclass(frozen=True, slots=True)
class DocSet:
    """One documentation source and where its index lives.

    ``source`` is a folder path (absolute, or as given when it came from the
    environment), a git URL or path, or a sitemap URL. ``base_url`` is the legacy
    ``RAGBOT_SOURCE_BASE_URL`` (``{base}/{path}#{anchor}`` links) of the default doc set;
    ``url`` a link template. ``refresh_s`` is None when the doc set is only indexed on
    demand; ``channels`` empty means it answers everywhere.
    """

    name: str
    kind: SourceKind
    source: str
    collection: str
    ref: str = ""
    subdir: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    url: str = ""
    url_style: str = "plain"
    base_url: str = ""
    channels: tuple[str, ...] = ()
    refresh_s: float | None = None

    @property
    def everywhere(self) -> bool:
        return not self.channels

    def describe_source(self) -> str:
        """The source without credentials, for tables and messages."""
        return redact_url(self.source)


def default_docset(*, docs_path: Path, source_base_url: str, collection: str) -> DocSet:
    """The one doc set of an install without a config file: today's folder and collection."""
    return DocSet(
        name=DEFAULT_DOCSET,
        kind="folder",
        source=str(docs_path),
        collection=collection,
        base_url=source_base_url,
    )


def load_docsets(path: Path, *, collection: str) -> tuple[DocSet, ...]:
    """Read and check the doc sets of the TOML file at ``path``.

    Each doc set's collection is ``{collection}_{name}`` (``-`` becomes ``_``); folder
    sources are relative to the file's folder.
    """
    where = str(path)
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"RAGBOT_CONFIG {where}: no such file.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"RAGBOT_CONFIG {where} cannot be read: {error}.") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        twice = _DECLARED_TWICE.search(str(error))
        if twice:
            raise ConfigError(
                f"{where} declares two doc sets named {twice.group(1)!r}; rename or merge one."
            ) from None
        raise ConfigError(f"{where} is not valid TOML: {error}.") from None
    return parse_docsets(
        data, file=where, base=Path(path).expanduser().parent, collection=collection
    )


def parse_docsets(
    data: Mapping[str, Any], *, file: str, base: Path, collection: str
) -> tuple[DocSet, ...]:
    """The doc sets of a parsed config file (see :func:`load_docsets`)."""
    unknown = sorted(set(data) - {"docsets"})
    if unknown:
        raise ConfigError(
            f"{file}: unknown section {unknown[0]!r}; doc sets go under [docsets.NAME]."
        )
    tables = data.get("docsets")
    if not isinstance(tables, Mapping) or not tables:
        raise ConfigError(f"{file} declares no doc set; add a [docsets.NAME] table with a source.")
    docsets = [
        _parse_one(name, table, file=file, base=base, collection=collection)
        for name, table in tables.items()
    ]
    by_collection: dict[str, str] = {}
    for docset in docsets:
        other = by_collection.setdefault(docset.collection, docset.name)
        if other != docset.name:
            raise ConfigError(
                f"{file}: doc sets {other!r} and {docset.name!r} would share collection "
                f"{docset.collection}; rename one."
            )
    return tuple(docsets)


def select_docsets(docsets: Sequence[DocSet], names: Iterable[str]) -> tuple[DocSet, ...]:
    """The doc sets named, in the order given; an unknown name is an :class:`InputError`
    that lists the known ones."""
    by_name = {d.name: d for d in docsets}
    chosen = []
    for name in names:
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise InputError(f"There is no doc set named {name!r} (doc sets: {known}).")
        chosen.append(by_name[name])
    return tuple(chosen)


def docsets_for_channel(
    docsets: Sequence[DocSet],
    channel: str,
    *,
    direct: bool,
    dm_docsets: Sequence[str] = (),
) -> tuple[str, ...]:
    """Names of the doc sets a question in ``channel`` searches.

    A channel gets the doc sets that list it, plus those that answer everywhere. A direct
    conversation (DM, assistant pane) gets ``dm_docsets`` when set, else every doc set.
    """
    if direct:
        if dm_docsets:
            return tuple(d.name for d in select_docsets(docsets, dm_docsets))
        return tuple(d.name for d in docsets)
    return tuple(d.name for d in docsets if d.everywhere or channel in d.channels)


def parse_duration(value: str | int | float, *, what: str) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"2d"`` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ConfigError(f'{what} must be a duration like "1h" or "30m", not {value!r}.')
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.fullmatch(value.strip().lower())
        if match is None:
            raise ConfigError(f'{what} must be a duration like "1h" or "30m", not {value!r}.')
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds < MIN_REFRESH_S:
        raise ConfigError(f"{what} must be at least {MIN_REFRESH_S:.0f} s, not {value!r}.")
    return seconds


def redact_url(source: str) -> str:
    """``https://user:token@host/x`` -> ``https://host/x``; anything else unchanged."""
    parsed = urlparse(source)
    if parsed.scheme and "@" in parsed.netloc:
        host = parsed.netloc.rsplit("@", 1)[1]
        return parsed._replace(netloc=host).geturl()
    return source


def _parse_one(name: object, table: object, *, file: str, base: Path, collection: str) -> DocSet:
    where = f"{file}: [docsets.{name}]"
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{where}: a doc set name is 1-40 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table with at least a source.")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})."
        )
    source = _string(table, "source", where, required=True)
    ref = _string(table, "ref", where)
    kind = _kind(table, source, ref, where)
    if kind == "folder":
        folder = Path(source).expanduser()
        source = str(folder if folder.is_absolute() else (base / folder).resolve())
        if ref:
            raise ConfigError(f"{where}: ref applies to git sources, and {source} is a folder.")
    refresh = table.get("refresh")
    if refresh is not None and kind == "folder":
        raise ConfigError(f"{where}: refresh applies to git and sitemap sources, not folders.")
    style = _string(table, "url_style", where) or "plain"
    if style not in _URL_STYLES:
        raise ConfigError(
            f"{where}: url_style must be one of {', '.join(_URL_STYLES)}, not {style!r}."
        )
    channels = _strings(table, "channels", where)
    for channel in channels:
        if not CHANNEL_PATTERN.fullmatch(channel):
            raise ConfigError(
                f"{where}: channels holds {channel!r}; use Slack channel ids like C0123ABCD "
                "(in Slack: channel details, at the bottom)."
            )
    subdir = _string(table, "subdir", where).strip("/")
    if ".." in Path(subdir).parts:
        raise ConfigError(f"{where}: subdir must stay inside the source, not {subdir!r}.")
    return DocSet(
        name=name,
        kind=kind,
        source=source,
        collection=f"{collection}_{name.replace('-', '_')}",
        ref=ref,
        subdir=subdir,
        include=_strings(table, "include", where),
        exclude=_strings(table, "exclude", where),
        url=_string(table, "url", where),
        url_style=style,
        channels=channels,
        refresh_s=None if refresh is None else parse_duration(refresh, what=f"{where}: refresh"),
    )


def _kind(table: Mapping[str, Any], source: str, ref: str, where: str) -> SourceKind:
    """The ``type`` key, else a guess: a ``.xml`` web URL is a sitemap, another URL (or a
    path with a ``ref`` or a ``refresh``) a git repository, a plain path a folder."""
    declared = _string(table, "type", where)
    if declared:
        if declared not in ("folder", "git", "sitemap"):
            raise ConfigError(f"{where}: type must be folder, git or sitemap, not {declared!r}.")
        return declared  # type: ignore[return-value]
    parsed = urlparse(source)
    if parsed.scheme in ("http", "https") and parsed.path.lower().endswith(".xml"):
        return "sitemap"
    if parsed.scheme in ("http", "https", "ssh", "git", "file") or re.match(
        r"[\w.-]+@[\w.-]+:", source
    ):
        return "git"
    # A path with a ref or a refresh interval only makes sense as a repository.
    return "git" if ref or "refresh" in table or source.endswith(".git") else "folder"


def _string(table: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = table.get(key)
    if value is None:
        if required:
            raise ConfigError(
                f"{where}: {key} is missing; set it to a git URL, a folder or a sitemap URL."
            )
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigError(f"{where}: {key} must be a non-empty string, not {value!r}.")
    return value.strip()


def _strings(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: {key} must be a list of strings, not {value!r}.")
    return tuple(v.strip() for v in value)
