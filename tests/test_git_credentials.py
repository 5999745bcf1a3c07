"""RAGBOT_GIT_TOKEN read per host: one token for every host, or host=token pairs."""

from __future__ import annotations

import pytest

from rag_core.errors import ConfigError
from rag_core.settings import Settings
from rag_core.sources.git_credentials import GitTokens


def test_one_token_goes_to_every_https_host_and_no_ssh_one():
    tokens = GitTokens.parse(" ghp_one ")
    assert tokens.for_url("https://github.com/acme/docs.git") == "ghp_one"
    assert tokens.for_url("https://git.example.com/docs.git") == "ghp_one"
    assert tokens.for_url("git@github.com:acme/docs.git") == ""
    assert tokens.secrets == ("ghp_one",)


def test_pairs_give_each_host_its_own_token_and_others_none():
    tokens = GitTokens.parse("github.com=ghp_a, git.example.com:8443=glpat-b")
    assert tokens.for_url("https://GitHub.com/acme/docs.git") == "ghp_a"
    assert tokens.for_url("https://github.com:443/acme/docs.git") == "ghp_a"  # any port
    assert tokens.for_url("https://git.example.com:8443/docs.git") == "glpat-b"
    assert tokens.for_url("https://git.example.com/docs.git") == ""  # not that port
    assert tokens.for_url("https://evil.example.org/github.com/docs.git") == ""
    assert tokens.secrets == ("ghp_a", "glpat-b")


def test_a_token_holding_equals_signs_is_one_token():
    assert GitTokens.parse("dG9rZW4=").every_host == "dG9rZW4="
    assert GitTokens.parse("").for_url("https://github.com/a.git") == ""


def test_a_pair_without_a_token_is_refused_when_settings_load():
    with pytest.raises(ConfigError, match=r"github\.com"):
        Settings(_env_file=None, git_token="github.com=,gitlab.com=glpat-x")
    assert (
        Settings(_env_file=None, git_token="github.com=x").git_tokens.for_url(
            "https://github.com/a.git"
        )
        == "x"
    )
