"""GitSource against real repositories made with the git command in tmp_path.

Remotes are local paths, file:// URLs, a loopback HTTP server speaking git's dumb HTTP
protocol (static files, with Basic auth) and a loopback socket that never answers.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from rag_core.settings import Settings
from rag_core.sources.errors import SourceError
from rag_core.sources.git_source import FileChanges, GitSource

TOKEN = "ghp_SeCrEt0123456789tokenvalue"
V1_DATE = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
V2_DATE = datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)
REAL_GIT = shutil.which("git") or "git"


def git(repo: Path, *args: str, date: datetime = V1_DATE) -> str:
    """Run git in ``repo`` as a fixed author, away from this machine's git config."""
    stamp = f"{int(date.timestamp())} +0000"
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
    }
    done = subprocess.run(
        [REAL_GIT, *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


class Origin:
    """A repository with v1 (tag), a `feature` branch off v1, and v2 on main."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        write(
            root,
            {
                "README.md": "readme\n",
                "docs/a.md": "# A\n",
                "docs/b.md": "# B\n",
                "docs/old.md": "# Old name\n" + "same text\n" * 20,
                "other/x.md": "# X\n",
            },
        )
        self.v1 = self.commit("v1")
        git(root, "tag", "-a", "v1", "-m", "release 1")
        git(root, "switch", "-q", "-c", "feature")
        write(root, {"docs/feature.md": "# Feature\n"})
        self.feature = self.commit("feature")
        git(root, "switch", "-q", "main")
        write(root, {"docs/a.md": "# A changed\n", "docs/sub/c.md": "# C\n", "other/x.md": "x\n"})
        git(root, "mv", "docs/old.md", "docs/new.md")
        git(root, "rm", "-q", "docs/b.md")
        self.v2 = self.commit("v2", date=V2_DATE)

    def commit(self, message: str, date: datetime = V1_DATE) -> str:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "-m", message, date=date)
        return git(self.root, "rev-parse", "HEAD")


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    return Origin(tmp_path / "origin")


def files_under(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


# --- checkouts ----------------------------------------------------------------------------


def test_default_branch_is_checked_out_with_its_date(origin: Origin, tmp_path: Path) -> None:
    checkout = GitSource(str(origin.root), cache_dir=tmp_path / "cache" / "milvus").sync()

    assert checkout.commit == origin.v2
    assert checkout.committed_at == V2_DATE
    assert checkout.root == tmp_path / "cache" / "milvus"
    assert files_under(checkout.root) == {
        "README.md",
        "docs/a.md",
        "docs/new.md",
        "docs/sub/c.md",
        "other/x.md",
    }
    assert git(checkout.root, "status", "--porcelain") == ""
    assert git(checkout.root, "for-each-ref", "refs/heads/") == ""  # nothing pins old history


@pytest.mark.parametrize("ref", ["v1", "feature", "sha", "short sha"])
def test_sync_at_tag_branch_or_commit(origin: Origin, tmp_path: Path, ref: str) -> None:
    expected = origin.feature if ref == "feature" else origin.v1
    name = {"sha": origin.v1, "short sha": origin.v1[:10]}.get(ref, ref)

    checkout = GitSource(f"file://{origin.root}", cache_dir=tmp_path / "c", ref=name).sync()

    assert checkout.commit == expected
    assert checkout.committed_at == V1_DATE
    assert (checkout.root / "docs/a.md").read_text() == "# A\n"
    assert (checkout.root / "docs/feature.md").exists() == (ref == "feature")


def test_subdir_is_the_root_and_the_only_folder_checked_out(origin: Origin, tmp_path: Path) -> None:
    checkout = GitSource(str(origin.root), cache_dir=tmp_path / "c", subdir="/docs/").sync()

    assert checkout.root == tmp_path / "c" / "docs"
    assert files_under(checkout.root) == {"a.md", "new.md", "sub/c.md"}
    assert not (tmp_path / "c" / "other").exists()


def test_second_sync_fetches_and_leaves_no_leftovers(origin: Origin, tmp_path: Path) -> None:
    source = GitSource(str(origin.root), cache_dir=tmp_path / "c")
    first = source.sync()
    (first.root / "docs/a.md").write_text("edited by hand\n")
    (first.root / "docs/stray.md").write_text("not in git\n")
    (first.root / "build").mkdir()
    (first.root / "build/out.html").write_text("x")
    write(origin.root, {"docs/d.md": "# D\n"})
    v3 = origin.commit("v3")

    second = source.sync()

    assert second.commit == v3
    assert (second.root / "docs/a.md").read_text() == "# A changed\n"
    assert (second.root / "docs/d.md").exists()
    assert not (second.root / "docs/stray.md").exists()
    assert not (second.root / "build").exists()


def test_moved_tag_and_deleted_branch_follow_the_remote(origin: Origin, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    assert GitSource(str(origin.root), cache_dir=cache, ref="v1").sync().commit == origin.v1
    git(origin.root, "tag", "-f", "-a", "v1", "-m", "moved", origin.v2)
    git(origin.root, "branch", "-D", "feature")

    assert GitSource(str(origin.root), cache_dir=cache, ref="v1").sync().commit == origin.v2
    with pytest.raises(SourceError, match="'feature'"):
        GitSource(str(origin.root), cache_dir=cache, ref="feature").sync()


def test_renamed_default_branch_is_found_again(origin: Origin, tmp_path: Path) -> None:
    source = GitSource(str(origin.root), cache_dir=tmp_path / "c")
    source.sync()
    git(origin.root, "branch", "-m", "main", "trunk")
    write(origin.root, {"docs/e.md": "# E\n"})
    on_trunk = origin.commit("on trunk")

    assert source.sync().commit == on_trunk


def test_partial_clone_fetches_blobs_of_the_subdir_only(origin: Origin, tmp_path: Path) -> None:
    git(origin.root, "config", "uploadpack.allowFilter", "true")
    cache = tmp_path / "c"
    source = GitSource(f"file://{origin.root}", cache_dir=cache, ref="v1", subdir="docs")
    old = source.sync().commit

    assert git(cache, "config", "remote.origin.promisor") == "true"
    missing = git(cache, "rev-list", "--objects", "--missing=print", "--all")
    assert "?" in missing  # other/x.md's blobs were never downloaded
    new = GitSource(f"file://{origin.root}", cache_dir=cache, subdir="docs").sync()
    assert new.commit == origin.v2
    assert source.changes_since(old) == FileChanges(
        changed=frozenset({"a.md", "new.md", "sub/c.md"}),
        deleted=frozenset({"b.md", "old.md"}),
    )


def test_a_clone_of_another_url_is_replaced(origin: Origin, tmp_path: Path) -> None:
    other = Origin(tmp_path / "other")
    write(other.root, {"only-here.md": "x"})
    other.commit("marker")
    cache = tmp_path / "c"
    GitSource(str(other.root), cache_dir=cache).sync()

    checkout = GitSource(str(origin.root), cache_dir=cache).sync()

    assert checkout.commit == origin.v2
    assert not (cache / "only-here.md").exists()


# --- changes ------------------------------------------------------------------------------


def test_changes_since_reports_rename_delete_modify_within_subdir(
    origin: Origin, tmp_path: Path
) -> None:
    cache = tmp_path / "c"
    old = GitSource(str(origin.root), cache_dir=cache, ref="v1", subdir="docs").sync().commit
    source = GitSource(str(origin.root), cache_dir=cache, subdir="docs")
    source.sync()

    assert source.changes_since(old) == FileChanges(
        changed=frozenset({"a.md", "new.md", "sub/c.md"}),
        deleted=frozenset({"b.md", "old.md"}),
    )
    assert source.changes_since(origin.v2) == FileChanges(frozenset(), frozenset())


def test_changes_since_without_subdir_uses_repository_paths(origin: Origin, tmp_path: Path) -> None:
    source = GitSource(str(origin.root), cache_dir=tmp_path / "c")
    source.sync()

    changes = source.changes_since(origin.v1)

    assert changes is not None
    assert changes.changed == {"docs/a.md", "docs/new.md", "docs/sub/c.md", "other/x.md"}
    assert changes.deleted == {"docs/b.md", "docs/old.md"}


@pytest.mark.parametrize("old", ["0123456789abcdef0123456789abcdef01234567", "not a sha", ""])
def test_unknown_old_commit_gives_none(origin: Origin, tmp_path: Path, old: str) -> None:
    source = GitSource(str(origin.root), cache_dir=tmp_path / "c")
    source.sync()

    assert source.changes_since(old) is None


def test_force_pushed_away_commit_gives_none(origin: Origin, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    source = GitSource(str(origin.root), cache_dir=cache)
    old = source.sync().commit
    git(origin.root, "reset", "-q", "--hard", "v1")
    write(origin.root, {"docs/rewritten.md": "new history\n"})
    rewritten = origin.commit("rewritten")
    assert source.sync().commit == rewritten
    assert source.changes_since(old) is not None  # the clone still holds the old commit
    git(origin.root, "reflog", "expire", "--expire=now", "--all")
    git(origin.root, "gc", "-q", "--prune=now")
    shutil.rmtree(cache)  # a new clone: the old commit is neither here nor on the remote
    assert source.sync().commit == rewritten

    assert source.changes_since(old) is None


# --- errors -------------------------------------------------------------------------------


def test_missing_ref_is_named_and_keeps_the_old_checkout(origin: Origin, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    GitSource(str(origin.root), cache_dir=cache, ref="v1").sync()

    with pytest.raises(SourceError) as caught:
        GitSource(str(origin.root), cache_dir=cache, ref="v9.9").sync()

    message = str(caught.value)
    assert message == (
        f"The ref 'v9.9' is not a branch, tag or commit of {origin.root}; "
        "fix `ref` in the doc set's config."
    )
    assert (cache / "docs/b.md").exists()  # v1 is still checked out


def test_missing_subdir_is_named(origin: Origin, tmp_path: Path) -> None:
    source = GitSource(str(origin.root), cache_dir=tmp_path / "c", ref="v1", subdir="site/en")

    with pytest.raises(SourceError) as caught:
        source.sync()

    assert str(caught.value) == (
        f"The folder 'site/en' (subdir) does not exist in commit {origin.v1[:12]} of "
        f"{origin.root}; fix `subdir` in the doc set's config."
    )


def test_missing_repository_says_what_to_check(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        GitSource(str(tmp_path / "nope"), cache_dir=tmp_path / "c").sync()

    message = str(caught.value)
    assert message.startswith(f"Could not clone {tmp_path / 'nope'} (fatal: ")
    assert "RAGBOT_GIT_TOKEN" in message and "RAGBOT_GIT_SSH_KEY" in message
    assert "\n" not in message and message.endswith(".")
    assert not (tmp_path / "c").exists()


def test_unreachable_host_hides_the_password(tmp_path: Path) -> None:
    port = free_port()
    url = f"https://alice:hunter2pw@127.0.0.1:{port}/repo.git"

    with pytest.raises(SourceError) as caught:
        GitSource(url, cache_dir=tmp_path / "c", timeout_s=20).sync()

    message = str(caught.value)
    assert message.startswith(f"Could not clone https://127.0.0.1:{port}/repo.git (fatal: ")
    assert "network connection" in message
    assert "hunter2pw" not in message and "alice" not in message


def test_silent_server_times_out(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        source = GitSource(f"http://127.0.0.1:{port}/r.git", cache_dir=tmp_path / "c", timeout_s=1)
        started = time.monotonic()
        with pytest.raises(SourceError) as caught:
            source.sync()

    assert time.monotonic() - started < 10
    assert str(caught.value) == (
        f"git clone for http://127.0.0.1:{port}/r.git took longer than 1 s; "
        "check the network, or raise the timeout for a large repository."
    )


def test_git_not_installed(origin: Origin, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))

    with pytest.raises(SourceError, match=r"^git is not installed \(no `git` on PATH\)"):
        GitSource(str(origin.root), cache_dir=tmp_path / "c").sync()


def test_foreign_cache_folder_is_not_deleted(origin: Origin, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    cache.mkdir()
    (cache / "notes.txt").write_text("mine")

    with pytest.raises(SourceError, match="is not empty and holds no clone made by ragbot"):
        GitSource(str(origin.root), cache_dir=cache).sync()
    with pytest.raises(SourceError, match="is not empty and holds no clone made by ragbot"):
        GitSource(str(tmp_path / "other"), cache_dir=origin.root).sync()

    assert (cache / "notes.txt").read_text() == "mine"
    assert git(origin.root, "rev-parse", "HEAD") == origin.v2


def test_bad_settings_are_refused_up_front(origin: Origin, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="leaves the repository"):
        GitSource(str(origin.root), cache_dir=tmp_path / "c", subdir="docs/../..")
    with pytest.raises(SourceError, match="fix RAGBOT_GIT_SSH_KEY"):
        GitSource(str(origin.root), cache_dir=tmp_path / "c", ssh_key=tmp_path / "no_key")
    with pytest.raises(SourceError, match="URL is empty"):
        GitSource(" ", cache_dir=tmp_path / "c")


# --- credentials --------------------------------------------------------------------------


class DumbGitHandler(SimpleHTTPRequestHandler):
    """Static files of a bare repository, behind Basic auth; records what it was sent."""

    def __init__(self, *args, expected: str, seen: list[str], **kwargs) -> None:
        self.expected = expected
        self.seen = seen
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        header = self.headers.get("Authorization", "")
        self.seen.append(header)
        if header != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture
def private_server(origin: Origin, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A dumb-HTTP git server for the origin that wants TOKEN; yields (URL, headers seen)."""
    served = tmp_path / "served"
    served.mkdir()
    git(served, "clone", "-q", "--bare", str(origin.root), "repo.git")
    git(served / "repo.git", "update-server-info")
    seen: list[str] = []
    expected = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    handler = partial(DumbGitHandler, expected=expected, seen=seen, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/repo.git", seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def argv_log(tmp_path: Path, monkeypatch) -> Path:
    """Put a `git` on PATH that appends its argv to a file, then runs the real git."""
    bin_dir = tmp_path / "recording-bin"
    bin_dir.mkdir()
    log_file = tmp_path / "argv.log"
    wrapper = bin_dir / "git"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log_file}"\nexec "{REAL_GIT}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log_file


def secret_forms() -> tuple[str, ...]:
    return TOKEN, base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()


def test_token_reaches_the_server_but_no_argv_config_or_log(
    private_server: tuple[str, list[str]],
    origin: Origin,
    argv_log: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, seen = private_server
    cache = tmp_path / "c"
    caplog.set_level(logging.DEBUG)
    source = GitSource(url, cache_dir=cache, token=TOKEN, subdir="docs")

    checkout = source.sync()
    source.sync()
    changes = source.changes_since(origin.v1)

    assert checkout.commit == origin.v2
    assert (checkout.root / "a.md").read_text() == "# A changed\n"
    assert changes is not None and "new.md" in changes.changed
    assert seen and all(header.startswith("Basic ") for header in seen)
    recorded = argv_log.read_text()
    assert "clone" in recorded and "fetch" in recorded
    config = (cache / ".git" / "config").read_text()
    assert url in config
    for secret in secret_forms():
        assert secret not in recorded
        assert secret not in config
        assert secret not in caplog.text


def test_refused_token_is_explained_without_the_token(
    private_server: tuple[str, list[str]], argv_log: Path, tmp_path: Path
) -> None:
    url, seen = private_server

    with pytest.raises(SourceError) as caught:
        GitSource(url, cache_dir=tmp_path / "c", token="wrong-" + TOKEN).sync()

    message = str(caught.value)
    assert message.startswith(f"Could not clone {url} (fatal: ")
    assert "set RAGBOT_GIT_TOKEN (HTTPS) or RAGBOT_GIT_SSH_KEY (SSH)" in message
    assert seen  # the server was asked, and said no
    for secret in (*secret_forms(), "wrong-"):
        assert secret not in message
        assert secret not in argv_log.read_text()


def test_a_token_per_host_reaches_its_host_only(
    private_server: tuple[str, list[str]], origin: Origin, tmp_path: Path
) -> None:
    url, seen = private_server
    port = urlsplit(url).port
    other = "glpat-OtherHostsToken"
    mine = Settings(
        _env_file=None, git_token=f"gitlab.example.com={other},127.0.0.1:{port}={TOKEN}"
    )

    checkout = GitSource(url, cache_dir=tmp_path / "c", token=mine.git_tokens.for_url(url)).sync()
    assert checkout.commit == origin.v2

    seen.clear()
    theirs = Settings(_env_file=None, git_token=f"gitlab.example.com={other}")
    assert theirs.git_tokens.for_url(url) == ""
    with pytest.raises(SourceError, match="RAGBOT_GIT_TOKEN"):
        GitSource(url, cache_dir=tmp_path / "d", token=theirs.git_tokens.for_url(url)).sync()
    assert seen and all(header == "" for header in seen)  # no other host's token was sent


def test_password_in_url_is_sent_as_header_not_stored(
    private_server: tuple[str, list[str]], origin: Origin, argv_log: Path, tmp_path: Path
) -> None:
    url, _ = private_server
    with_password = url.replace("http://", f"http://x-access-token:{TOKEN}@")

    checkout = GitSource(with_password, cache_dir=tmp_path / "c").sync()

    assert checkout.commit == origin.v2
    for secret in secret_forms():
        assert secret not in (tmp_path / "c" / ".git" / "config").read_text()
        assert secret not in argv_log.read_text().replace(with_password, "")


def test_ssh_key_goes_to_ssh_with_batch_mode(tmp_path: Path, monkeypatch) -> None:
    """A stand-in `ssh` on PATH records how git called it and refuses the key."""
    key = tmp_path / "id ed25519"
    key.write_text("not a real key")
    bin_dir = tmp_path / "ssh-bin"
    bin_dir.mkdir()
    called = tmp_path / "ssh-argv"
    fake_ssh = bin_dir / "ssh"
    fake_ssh.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > "{called}"\n'
        'echo "git@example.invalid: Permission denied (publickey)." >&2\nexit 255\n'
    )
    fake_ssh.chmod(fake_ssh.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    with pytest.raises(SourceError) as caught:
        GitSource("git@example.invalid:org/docs.git", cache_dir=tmp_path / "c", ssh_key=key).sync()

    argv = called.read_text().splitlines()
    assert argv[:6] == ["-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]
    assert "git@example.invalid" in argv
    assert str(caught.value).startswith("Could not clone git@example.invalid:org/docs.git (")
    assert "set RAGBOT_GIT_TOKEN (HTTPS) or RAGBOT_GIT_SSH_KEY (SSH)" in str(caught.value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
