"""A git repository as a doc set source: clone once, fetch after, check out a ref, diff.

The clone lives in a cache folder this module owns. It is a partial clone
(``--filter=blob:none``) with a cone sparse checkout of ``subdir``, so a large repository
costs its history's commits and trees plus the blobs of the indexed folder only; servers
without filter support simply send everything. Every git command runs with
``GIT_TERMINAL_PROMPT=0`` and a time limit, so a sync never waits for a password.

Credentials never reach a command line or a file: an HTTPS token travels as an
``http.<origin>.extraHeader`` set through ``GIT_CONFIG_COUNT``/``KEY_n``/``VALUE_n`` in the
environment of the git process, scoped to the URL's own host, and an SSH key through
``GIT_SSH_COMMAND``. Messages and log lines show the URL without its userinfo.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rag_core.sources.errors import SourceError
from rag_core.sources.git_credentials import (
    basic_auth_header,
    http_origin,
    is_http,
    split_credentials,
    strip_userinfo,
)

log = logging.getLogger(__name__)

AUTH_HINT = "set RAGBOT_GIT_TOKEN (HTTPS) or RAGBOT_GIT_SSH_KEY (SSH) if the repository is private"
_NETWORK_MARKERS = (
    "could not resolve",
    "connection refused",
    "connection timed out",
    "network is unreachable",
    "failed to connect",
    "couldn't connect",
    "operation timed out",
)
_AUTH_MARKERS = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "terminal prompts disabled",
    "permission denied",
    "repository not found",
    "403",
    "401",
)
_MARK = "ragbot.managedclone"  # set in clones this module made, so only those are replaced
_HEX = re.compile(r"[0-9a-fA-F]{4,40}")
_INHERITED_GIT_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
_CLONE = ("clone", "--quiet", "--no-checkout", "--filter=blob:none", f"--config={_MARK}=true")
_FETCH = ("fetch", "--quiet", "--prune", "--prune-tags", "--tags", "--force", "origin")
_DIFF = ("--literal-pathspecs", "diff-tree", "-r", "-z", "--name-status", "--no-renames")


@dataclass(frozen=True, slots=True)
class GitCheckout:
    """What :meth:`GitSource.sync` checked out."""

    root: Path  # the folder to index: the worktree, with `subdir` applied
    commit: str  # full 40-hex sha that is checked out
    committed_at: datetime  # commit date, UTC aware


@dataclass(frozen=True, slots=True)
class FileChanges:
    """Files (POSIX, relative to `root`, i.e. to subdir) that differ between two commits."""

    changed: frozenset[str]  # added or modified (a rename's new path is here)
    deleted: frozenset[str]  # deleted (a rename's old path is here)


@dataclass(frozen=True, slots=True)
class _GitResult:
    returncode: int
    stdout: bytes
    stderr: str


class GitSource:
    """One repository at one ref, mirrored into ``cache_dir`` for indexing.

    ``url`` is an https://, ssh:// or ``git@host:path`` URL, a ``file://`` URL or a local
    path. ``ref`` is a branch (its remote head), a tag or a commit sha; ``""`` means the
    remote's default branch. A branch wins over a tag of the same name. ``timeout_s``
    bounds each git command.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_dir: Path,
        ref: str = "",
        subdir: str = "",
        token: str = "",
        ssh_key: Path | None = None,
        timeout_s: float = 600,
    ) -> None:
        if not url.strip():
            raise SourceError("The git source URL is empty; set `source` in the doc set.")
        self.display_url = strip_userinfo(url.strip())
        self.cache_dir = Path(cache_dir).expanduser()
        self.ref = ref.strip()
        self.subdir = _normalize_subdir(subdir, self.display_url)
        self.timeout_s = timeout_s
        self._remote, user, password = split_credentials(url.strip())
        secret = token or password
        self._secrets = tuple(s for s in (secret, password) if s)
        self._config: tuple[tuple[str, str], ...] = ()
        if secret and is_http(self._remote):
            header = basic_auth_header(user, secret)
            self._secrets += (header.removeprefix("Basic "),)
            origin = http_origin(self._remote)
            self._config = ((f"http.{origin}.extraHeader", f"Authorization: {header}"),)
        self._ssh_command = ""
        if ssh_key is not None:
            key = Path(ssh_key).expanduser()
            if not key.is_file():
                raise SourceError(
                    f"The SSH key {key} for {self.display_url} does not exist; "
                    "fix RAGBOT_GIT_SSH_KEY."
                )
            self._ssh_command = (
                f"ssh -i {shlex.quote(str(key))} -o IdentitiesOnly=yes -o BatchMode=yes"
            )

    def sync(self) -> GitCheckout:
        """Clone or fetch, then check out ``ref`` detached and clean.

        The ref and ``subdir`` are checked before the worktree is touched, so a bad
        config leaves the previous checkout in place. Network access; may take minutes.
        """
        if self._has_clone():
            log.info("Fetching %s in %s", self.display_url, self.cache_dir)
            self._network("fetch from", *_FETCH)
        else:
            self._clone()
        commit = self._resolve_ref()
        self._check_subdir(commit)
        self._set_sparse()
        self._git_checked("checkout", "--quiet", "--force", "--detach", commit)
        self._git_checked("clean", "--quiet", "-ffdx")
        self._delete_local_branches()
        seconds = int(self._git_checked("show", "-s", "--format=%ct", commit).strip())
        checkout = GitCheckout(
            root=self.cache_dir / self.subdir if self.subdir else self.cache_dir,
            commit=commit,
            committed_at=datetime.fromtimestamp(seconds, UTC),
        )
        log.info("Checked out %s at %s", self.display_url, commit[:12])
        return checkout

    def changes_since(self, old_commit: str) -> FileChanges | None:
        """Files under ``subdir`` that differ between ``old_commit`` and the checkout.

        Returns ``None`` when ``old_commit`` is not a commit of the clone (history was
        rewritten and collected), so the caller reads everything again. A rename is an
        old path deleted plus a new path changed, which is what plain add/delete pairs
        give too, so rename detection is off: it would fetch old blobs in a partial clone.
        """
        if not (self.cache_dir / ".git").is_dir():
            raise RuntimeError("GitSource.sync() must run before changes_since().")
        old = self._rev_parse(old_commit.strip()) if _HEX.fullmatch(old_commit.strip()) else None
        if old is None:
            return None
        new = self._git_checked("rev-parse", "--verify", "HEAD").decode().strip()
        pathspec = ["--", self.subdir] if self.subdir else []
        out = self._git_checked(*_DIFF, old, new, *pathspec)
        return _parse_name_status(out, self.subdir)

    def _clone(self) -> None:
        """Clone into an empty (or missing) cache folder; re-clone a folder of another URL."""
        if self.cache_dir.exists() and any(self.cache_dir.iterdir()):
            if not self._made_here():
                raise SourceError(
                    f"The cache folder {self.cache_dir} for {self.display_url} is not empty "
                    "and holds no clone made by ragbot; remove it or choose another folder."
                )
            log.info("Removing %s: it is a clone of another URL", self.cache_dir)
            shutil.rmtree(self.cache_dir)
        self.cache_dir.parent.mkdir(parents=True, exist_ok=True)
        log.info("Cloning %s into %s", self.display_url, self.cache_dir)
        target = str(self.cache_dir)
        self._network("clone", *_CLONE, "--", self._remote, target, cwd=self.cache_dir.parent)

    def _has_clone(self) -> bool:
        """Whether ``cache_dir`` holds a clone of this very URL."""
        if not (self.cache_dir / ".git").is_dir():
            return False
        result = self._git("config", "--get", "remote.origin.url")
        return result.returncode == 0 and result.stdout.decode().strip() == self._remote

    def _made_here(self) -> bool:
        """Whether ``cache_dir`` is a clone this module made (and so may delete)."""
        if not (self.cache_dir / ".git").is_dir():
            return False
        return self._git("config", "--get", _MARK).stdout.strip() == b"true"

    def _resolve_ref(self) -> str:
        """The full sha ``ref`` names after the fetch; raises when nothing has that name."""
        if not self.ref:
            commit = self._rev_parse("refs/remotes/origin/HEAD")
            if commit is None:  # the default branch was renamed since the clone
                self._network("read the default branch of", "remote", "set-head", "origin", "-a")
                commit = self._rev_parse("refs/remotes/origin/HEAD")
            if commit is None:
                raise SourceError(
                    f"Could not find the default branch of {self.display_url}; "
                    "set `ref` in the doc set's config."
                )
            return commit
        for name in (f"refs/remotes/origin/{self.ref}", f"refs/tags/{self.ref}"):
            if (commit := self._rev_parse(name)) is not None:
                return commit
        if _HEX.fullmatch(self.ref):
            commit = self._rev_parse(self.ref)
            if commit is None and len(self.ref) == 40:  # a sha no branch or tag reaches
                self._git("fetch", "--quiet", "origin", self.ref)
                commit = self._rev_parse(self.ref)
            if commit is not None:
                return commit
        raise SourceError(
            f"The ref {self.ref!r} is not a branch, tag or commit of {self.display_url}; "
            "fix `ref` in the doc set's config."
        )

    def _check_subdir(self, commit: str) -> None:
        if not self.subdir:
            return
        kind = self._git("cat-file", "-t", f"{commit}:{self.subdir}").stdout.decode().strip()
        if kind != "tree":
            raise SourceError(
                f"The folder {self.subdir!r} (subdir) does not exist in commit {commit[:12]} "
                f"of {self.display_url}; fix `subdir` in the doc set's config."
            )

    def _set_sparse(self) -> None:
        """Limit the worktree to ``subdir`` (cone mode), or lift a previous limit."""
        if self.subdir:
            self._git_checked("sparse-checkout", "set", "--cone", "--", self.subdir)
        elif self._git("config", "--get", "core.sparseCheckout").stdout.strip() == b"true":
            self._git_checked("sparse-checkout", "disable")

    def _delete_local_branches(self) -> None:
        """Drop the branch ``git clone`` made: it would keep rewritten history alive."""
        names = self._git_checked("for-each-ref", "--format=%(refname)", "refs/heads/")
        for name in names.decode().split():
            self._git_checked("update-ref", "-d", name)

    def _rev_parse(self, name: str) -> str | None:
        result = self._git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"
        )
        return result.stdout.decode().strip() if result.returncode == 0 else None

    def _network(self, action: str, *args: str, cwd: Path | None = None) -> None:
        """Run a git command that talks to the remote; explain a failure in user terms."""
        result = self._git(*args, cwd=cwd)
        if result.returncode != 0:
            detail = self._last_error_line(result.stderr)
            raise SourceError(
                f"Could not {action} {self.display_url} ({detail}); {_failure_hint(detail)}."
            )

    def _git_checked(self, *args: str) -> bytes:
        """Run a local git command in the clone; a failure means the clone is damaged."""
        result = self._git(*args)
        if result.returncode != 0:
            raise SourceError(
                f"git {args[0]} failed in {self.cache_dir} for {self.display_url} "
                f"({self._last_error_line(result.stderr)}); remove that folder to clone afresh."
            )
        return result.stdout

    def _git(self, *args: str, cwd: Path | None = None) -> _GitResult:
        """Run git with the credential environment; kill its process group on timeout."""
        env = self._environment()
        executable = shutil.which("git", path=env.get("PATH"))
        if executable is None:
            raise SourceError(
                f"git is not installed (no `git` on PATH), so {self.display_url} cannot be "
                "read; install git."
            )
        process = subprocess.Popen(
            [executable, *args],
            cwd=cwd or self.cache_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise SourceError(
                f"git {args[0]} for {self.display_url} took longer than {self.timeout_s:g} s; "
                "check the network, or raise the timeout for a large repository."
            ) from None
        return _GitResult(process.returncode, stdout, stderr.decode(errors="replace"))

    def _environment(self) -> dict[str, str]:
        """The caller's environment plus no prompts, C messages and the credentials."""
        env = {k: v for k, v in os.environ.items() if k not in _INHERITED_GIT_VARS}
        env.update(GIT_TERMINAL_PROMPT="0", GCM_INTERACTIVE="never", LC_ALL="C")
        if self._ssh_command:
            env["GIT_SSH_COMMAND"] = self._ssh_command
        count = int(env.get("GIT_CONFIG_COUNT") or 0)
        for index, (key, value) in enumerate(self._config, start=count):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        if self._config:
            env["GIT_CONFIG_COUNT"] = str(count + len(self._config))
        return env

    def _last_error_line(self, stderr: str) -> str:
        """git's most telling stderr line, one line, credentials removed."""
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
        line = (errors or lines or ["no message from git"])[-1]
        line = strip_userinfo(line)
        for secret in self._secrets:
            line = line.replace(secret, "***")
        return line[:300]


def _parse_name_status(out: bytes, subdir: str) -> FileChanges:
    """Read ``diff-tree -z --name-status`` output into paths relative to ``subdir``."""
    fields = [f.decode("utf-8", "surrogateescape") for f in out.split(b"\0")]
    prefix = f"{subdir}/" if subdir else ""
    changed: set[str] = set()
    deleted: set[str] = set()
    index = 0
    while index + 1 < len(fields) and fields[index]:
        status = fields[index][0]
        if status in "RC":
            old, new = fields[index + 1], fields[index + 2]
            index += 3
            changed.add(new.removeprefix(prefix))
            if status == "R":
                deleted.add(old.removeprefix(prefix))
            continue
        path = fields[index + 1].removeprefix(prefix)
        index += 2
        (deleted if status == "D" else changed).add(path)
    return FileChanges(changed=frozenset(changed), deleted=frozenset(deleted))


def _failure_hint(detail: str) -> str:
    lowered = detail.lower()
    if any(marker in lowered for marker in _NETWORK_MARKERS):
        return "check the host name and the network connection"
    if any(marker in lowered for marker in _AUTH_MARKERS):
        return f"check the URL, and {AUTH_HINT}"
    return f"check the URL or path, and {AUTH_HINT}"


def _normalize_subdir(subdir: str, display_url: str) -> str:
    """``subdir`` as a clean POSIX path inside the repository ("" for the whole of it)."""
    parts = [p for p in subdir.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SourceError(
            f"The subdir {subdir!r} of {display_url} leaves the repository; "
            "use a folder path inside it."
        )
    return "/".join(parts)
