"""The ``ragbot`` command: real models (tiny Qwen3), real Milvus Lite, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main


@pytest.fixture
def env(monkeypatch, tmp_path, tiny_embedding_path, tiny_reranker_path):
    """A clean environment pointing at the tiny models and a fresh Milvus Lite file."""
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "RAGBOT_LLM_BASE_URL", "RAGBOT_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAGBOT_EMBED_MODEL", str(tiny_embedding_path))
    monkeypatch.setenv("RAGBOT_RERANK_MODEL", str(tiny_reranker_path))
    monkeypatch.setenv("RAGBOT_MILVUS_URI", str(tmp_path / "data" / "milvus.db"))
    monkeypatch.setenv("RAGBOT_MIN_RERANK_SCORE", "0")
    monkeypatch.setenv("RAGBOT_CHUNK_TOKENS", "128")
    monkeypatch.setenv("RAGBOT_CHUNK_OVERLAP", "16")
    return monkeypatch


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "en").mkdir(parents=True)
    (root / "en" / "a.md").write_text("# Alpha\n\nAlpha is the first letter.\n", "utf-8")
    (root / "en" / "b.md").write_text("# Beta\n\nBeta comes after alpha.\n", "utf-8")
    (root / "blob.md").write_bytes(b"\x00\x01\x02binary")
    return root


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "Traceback" not in err[0]
    return err[0]


def test_index_then_ask_prints_answer_sources_and_timings(env, docs, capsys):
    assert main(["index", str(docs)]) == 0
    out = capsys.readouterr().out
    assert "Indexed 2 files" in out and "2 new" in out
    assert "Skipped 1 files" in out and "blob.md" in out

    assert main(["ask", "What comes after alpha?"]) == 0
    out = capsys.readouterr().out
    assert "Sources:" in out and "[1]" in out
    assert "embed" in out and "rerank" in out and " ms" in out


def test_unchanged_reindex_embeds_nothing(env, docs, capsys):
    assert main(["index", str(docs)]) == 0
    capsys.readouterr()
    assert main(["index", str(docs)]) == 0
    out = capsys.readouterr().out
    assert "0 new, 2 unchanged, 0 deleted" in out


def test_ask_json_has_the_answer_fields(env, docs, capsys):
    main(["index", str(docs)])
    capsys.readouterr()
    assert main(["ask", "alpha", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["kind"] == "extractive"
    assert payload["citations"][0]["number"] == 1


def test_eval_json_reports_every_mode(env, docs, tmp_path, capsys):
    main(["index", str(docs)])
    questions = tmp_path / "q.jsonl"
    rows = [
        {"question": "first letter", "relevant": ["en/a.md"]},
        {"question": "after alpha", "relevant": ["en/b.md"]},
        {"question": "how tall is the eiffel tower", "relevant": []},
    ]
    questions.write_text("\n".join(json.dumps(r) for r in rows), "utf-8")
    capsys.readouterr()
    assert main(["eval", str(questions), "--k", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 2
    assert set(report["modes"]) == {"dense", "bm25", "hybrid", "hybrid+rerank"}
    for scores in report["modes"].values():
        assert scores["recall@5"] == 1.0  # two documents: both are always in the top 5
        assert 0.5 <= scores["mrr@10"] <= 1.0
    assert "abstain_accuracy" in report["modes"]["hybrid+rerank"]
    assert report["splits"]["language"]["English"]["questions"] == 3
    assert set(report["misses"]) == set(report["modes"])
    assert [r["question"] for r in report["results"]] == [r["question"] for r in rows]


def test_eval_prints_tables_and_writes_the_html_report(env, docs, tmp_path, capsys):
    main(["index", str(docs)])
    questions = tmp_path / "q.jsonl"
    rows = [
        {"id": "a", "question": "first letter", "relevant": ["en/a.md"]},
        {"id": "z", "question": "第二个字母是什么", "relevant": ["en/b.md"]},
        {"id": "g", "question": "a page that does not exist", "relevant": ["en/c.md"]},
    ]
    questions.write_text("\n".join(json.dumps(r) for r in rows), "utf-8")
    capsys.readouterr()
    page = tmp_path / "eval.html"
    assert main(["eval", str(questions), "--report", str(page)]) == 0
    captured = capsys.readouterr()
    assert "recall@5 by language" in captured.out and "Chinese" in captured.out
    assert "missed by hybrid (1):" in captured.out and "expected en/c.md" in captured.out
    assert f"report written to {page}" in captured.err
    html = page.read_text("utf-8")
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    assert main(["eval", str(questions), "--report", str(tmp_path / "no" / "x.html")]) == 2
    assert "No such folder for the report" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["ask", "   "], "question is empty"),
        (["index", "/no/such/folder"], "No such file or directory"),
        (["eval", "/no/such/questions.jsonl"], "No such questions file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(env, capsys, argv, expected):
    assert main(argv) == 2
    assert expected in one_line_error(capsys)


def test_empty_folder_is_refused(env, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["index", str(tmp_path / "empty")]) == 2
    assert "No documents found" in one_line_error(capsys)


def test_asking_before_indexing_says_what_to_run(env, capsys):
    assert main(["ask", "anything"]) == 2
    assert "ragbot index" in one_line_error(capsys)


def test_unreachable_milvus_is_one_line(env, closed_port_uri, capsys):
    env.setenv("RAGBOT_MILVUS_URI", closed_port_uri)
    assert main(["ask", "anything"]) == 2
    assert closed_port_uri.split("//")[1] in one_line_error(capsys)


def test_missing_model_names_the_setting(env, tmp_path, capsys):
    env.setenv("RAGBOT_EMBED_MODEL", str(tmp_path / "no-model-here"))
    assert main(["ask", "anything"]) == 2
    assert "RAGBOT_EMBED_MODEL" in one_line_error(capsys)


def test_invalid_setting_is_named(env, capsys):
    env.setenv("RAGBOT_TOP_N", "zero")
    assert main(["ask", "anything"]) == 2
    assert "TOP_N" in one_line_error(capsys)


def test_console_script_runs_as_a_process(env, docs):
    result = subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; raise SystemExit(main())", "ask", ""],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: The question is empty: ask something about the docs."


def test_doc_sets_from_a_config_file(env, docs, tmp_path, capsys):
    (tmp_path / "ragbot.toml").write_text(
        '[docsets.letters]\nsource = "docs/en"\nchannels = ["C0LETTERS"]\n'
        '[docsets.broken]\nsource = "nowhere"\n',
        "utf-8",
    )
    env.setenv("RAGBOT_CONFIG", str(tmp_path / "ragbot.toml"))

    assert main(["index"]) == 2  # one doc set failed; the other is indexed
    out = capsys.readouterr().out
    assert "letters: Indexed 2 files" in out and "error: Doc set broken: the folder" in out
    assert main(["index", "--docset", "letters"]) == 0
    assert "Indexed 2 files" in capsys.readouterr().out
    assert main(["docsets"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[:2] == ["letters", str(docs / "en")]
    assert table[1].split()[-1] == "C0LETTERS" and table[2].split()[-4:] == [
        "never",
        "on",
        "demand",
        "all",
    ]
    assert main(["ask", "What comes after alpha?", "--docset", "letters"]) == 0
    assert "Sources:" in capsys.readouterr().out
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question": "What comes after alpha?", "relevant": ["b.md"]}\n')
    assert main(["eval", str(questions), "--docset", "letters", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["modes"]["bm25"]["recall@5"] == 1.0
    assert main(["ask", "alpha", "--docset", "seal"]) == 2
    assert one_line_error(capsys) == (
        "error: There is no doc set named 'seal' (doc sets: letters, broken)."
    )
    env.setenv("RAGBOT_CONFIG", str(tmp_path / "missing.toml"))
    assert main(["docsets"]) == 2
    assert "missing.toml: no such file" in one_line_error(capsys)
