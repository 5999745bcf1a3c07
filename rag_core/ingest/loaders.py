"""Files on disk -> :class:`~rag_core.types.Document`, one per supported source file.

A folder is walked recursively in sorted order; hidden files and folders (``.git``,
``.venv``) are not entered and symbolic links to folders are not followed. Files that
cannot be used (binary, not UTF-8, empty) are reported as skipped rather than raised, so
one bad file never stops an indexing run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rag_core.errors import InputError
from rag_core.ingest.formats import FORMAT_BY_SUFFIX, convert_source
from rag_core.ingest.globs import PathFilter
from rag_core.types import Document

SUPPORTED_SUFFIXES = frozenset(FORMAT_BY_SUFFIX)
"""Lower-case file suffixes that are read: .md .mdx .markdown .txt .rst .html .htm."""
Progress = Callable[[int, int], None]
"""Called with (files read, files to read): before the first and after each."""


@dataclass(slots=True)
class SkippedFile:
    """A supported file that could not be used; ``path`` is relative like ``Document.path``."""

    path: str
    reason: str


@dataclass(slots=True)
class LoadReport:
    """Everything found under a root: usable documents, skipped files, ignored file count."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    ignored: int = 0  # files with unsupported suffixes


@dataclass(frozen=True, slots=True)
class SourceFiles:
    """The supported files under a root, sorted by relative path, before any is read."""

    base: Path  # document paths are made relative to this folder
    paths: tuple[Path, ...]
    ignored: int


def find_source_files(root: Path) -> SourceFiles:
    """List the supported files under ``root`` (a folder, or one supported file).

    Raises :class:`InputError` when ``root`` does not exist or is a single file with an
    unsupported suffix. Reads no file contents, so callers can size a progress bar.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(f"No such file or directory: {root}")
    if root.is_file():
        if root.suffix.lower() not in SUPPORTED_SUFFIXES:
            supported = " ".join(sorted(SUPPORTED_SUFFIXES))
            raise InputError(f"Unsupported file type {root.suffix!r}: {root} (use {supported})")
        return SourceFiles(base=root.parent, paths=(root,), ignored=0)
    found: list[Path] = []
    ignored = 0
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in SUPPORTED_SUFFIXES:
                found.append(Path(folder, name))
            else:
                ignored += 1
    found.sort(key=lambda path: path.relative_to(root).as_posix())
    return SourceFiles(base=root, paths=tuple(found), ignored=ignored)


def read_document(path: Path, base: Path) -> Document | SkippedFile:
    """Read, decode and convert one file; a :class:`SkippedFile` says why it is unusable."""
    relative = path.relative_to(base).as_posix()
    try:
        data = path.read_bytes()
    except OSError as error:
        return SkippedFile(relative, f"unreadable: {error.strerror or error}")
    if not data.strip():
        return SkippedFile(relative, "empty file")
    if b"\x00" in data:
        return SkippedFile(relative, "binary file (contains NUL bytes)")
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = data[error.start]
        return SkippedFile(relative, f"not UTF-8 text (byte 0x{byte:02x} at offset {error.start})")
    converted = convert_source(raw, path.suffix)
    if not converted.text.strip():
        return SkippedFile(relative, "no text after removing front matter and markup")
    return Document(
        path=relative,
        title=converted.title or humanise_file_name(path),
        text=converted.text,
        format=converted.format,
        doc_id=converted.doc_id,
        slug=converted.slug,
    )


def load_documents(root: Path) -> LoadReport:
    """Read every supported file under ``root`` (a folder or one file) into a report.

    Raises :class:`InputError` for a missing path; an empty folder gives an empty report.
    """
    sources = find_source_files(root)
    return read_documents(sources.paths, sources.base, ignored=sources.ignored)


def read_documents(
    paths: Sequence[Path],
    base: Path,
    *,
    ignored: int = 0,
    each: Progress | None = None,
) -> LoadReport:
    """Read ``paths`` (files under ``base``) in order into a report; ``each(done, total)``
    is called before the first file and after every one, for progress."""
    report = LoadReport(ignored=ignored)
    if each is not None:
        each(0, len(paths))
    for done, path in enumerate(paths, start=1):
        result = read_document(path, base)
        if isinstance(result, SkippedFile):
            report.skipped.append(result)
        else:
            report.documents.append(result)
        if each is not None:
            each(done, len(paths))
    return report


def load_filtered(
    root: Path, path_filter: PathFilter | None = None, *, each: Progress | None = None
) -> LoadReport:
    """:func:`load_documents`, keeping the files ``path_filter`` admits (``each``: see
    :func:`read_documents`)."""
    sources = find_source_files(root)
    keep = path_filter or PathFilter()
    paths = [p for p in sources.paths if keep(p.relative_to(sources.base).as_posix())]
    return read_documents(paths, sources.base, ignored=sources.ignored, each=each)


def load_paths(
    root: Path, relative: Collection[str], path_filter: PathFilter, *, each: Progress | None = None
) -> LoadReport:
    """Read the files ``relative`` (POSIX paths under ``root``) that exist, are of a
    supported type and pass ``path_filter``."""
    root = Path(root)
    paths = [
        root / name
        for name in sorted(relative)
        if path_filter(name)
        and Path(name).suffix.lower() in SUPPORTED_SUFFIXES
        and (root / name).is_file()
    ]
    return read_documents(paths, root, each=each)


def nothing_found(root: Path, report: LoadReport, path_filter: PathFilter | None = None) -> str:
    """Why ``report`` of ``root`` holds no document, in words, with what is supported."""
    supported = " ".join(sorted(SUPPORTED_SUFFIXES))
    skipped = ""
    if report.skipped:
        first = report.skipped[0]
        skipped = f"; {len(report.skipped)} skipped, e.g. {first.path}: {first.reason}"
    if path_filter is not None and path_filter.active:
        globs = ", ".join([*path_filter.include, *(f"not {g}" for g in path_filter.exclude)])
        return f"No documents in {root} match {globs} (supported: {supported}{skipped})."
    return f"No documents found in {root} (supported: {supported}{skipped})."


def humanise_file_name(path: Path) -> str:
    """``operational_faq.md`` -> ``Operational faq``: the title of last resort."""
    words = path.stem.replace("_", " ").replace("-", " ").split()
    text = " ".join(words) or path.name
    return text[:1].upper() + text[1:]
