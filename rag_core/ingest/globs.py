"""Include/exclude globs on POSIX paths relative to a doc set's root (``**/*.md``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field


def glob_pattern(glob: str) -> re.Pattern[str]:
    """``**`` spans folders (``**/`` also matches no folder), ``*`` and ``?`` stay within
    one path segment; a glob without ``/`` matches the file name at any depth."""
    glob = glob.strip().lstrip("/")
    if "/" not in glob:
        glob = "**/" + glob
    out: list[str] = []
    index = 0
    while index < len(glob):
        if glob.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif glob.startswith("**", index):
            out.append(".*")
            index += 2
        elif glob[index] == "*":
            out.append("[^/]*")
            index += 1
        elif glob[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(glob[index]))
            index += 1
    return re.compile("".join(out))


@dataclass(frozen=True, slots=True)
class PathFilter:
    """Keeps a path when it matches an ``include`` glob (or there are none) and no
    ``exclude`` glob."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    _include: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _exclude: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_include", tuple(glob_pattern(g) for g in self.include))
        object.__setattr__(self, "_exclude", tuple(glob_pattern(g) for g in self.exclude))

    @classmethod
    def of(cls, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> PathFilter:
        return cls(tuple(include), tuple(exclude))

    def __call__(self, path: str) -> bool:
        if self._include and not any(p.fullmatch(path) for p in self._include):
            return False
        return not any(p.fullmatch(path) for p in self._exclude)

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude)
