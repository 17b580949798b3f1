"""CLI behaviour that needs no model: listings, help and every user-error exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptopt.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(autouse=True)
def _data(data_dir: Path, isolated_cache: Path) -> None:
    pass


def test_lists() -> None:
    code, out = run("tasks", "list")
    assert code == 0 and "gsm8k" in out and "antonyms" in out and "sst2" in out
    code, out = run("strategies", "list")
    assert code == 0 and "ape" in out
    code, out = run("strategies", "show", "ape")
    assert code == 0 and "halving_eta" in out and "resample_rounds" in out
    code, out = run("models", "list")
    assert code == 0 and "openai" in out and "embedded" in out
    code, out = run("cache", "stats")
    assert code == 0 and "0 entries" in out


def test_models_list_says_which_dtype_auto_picks_here_and_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from promptopt.llm import dtype_choice

    code, out = run("models", "list")
    here = dtype_choice.resolve_dtype("auto", "cpu")
    assert code == 0 and f"dtype auto on cpu: {here.dtype} ({here.reason})" in out
    assert "torch threads" in out

    avx2_only = dtype_choice.MachineFacts(
        "cpu", architecture="x86_64", cpu_flags=frozenset({"avx2"}), onednn_bf16=False
    )
    monkeypatch.setattr(dtype_choice, "machine_facts", lambda device: avx2_only)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code, out = run("models", "list")
    assert "dtype auto on cpu: float32 (cpu lacks native bfloat16: float32)" in out
    assert "torch threads 1 (OMP_NUM_THREADS=1 set by the user)" in out


def test_help_teaches_the_main_commands() -> None:
    code, out = run("--help")
    assert code == 0 and "promptopt search --task gsm8k" in out and "Exit codes" in out
    code, out = run("eval", "--help")
    assert code == 0 and "--min-score" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["search", "--task", "gsm8kk"], 2, "did you mean 'gsm8k'"),
        (["search", "--task", "antonyms", "--strategy", "apee"], 2, "did you mean 'ape'"),
        (["search", "--task", "antonyms", "-p", "num_subsample=2"], 2, "num_subsamples"),
        (["search", "--task", "antonyms", "-p", "oops"], 2, "key=value"),
        (["search", "--task", "antonyms", "--model", "gpt"], 2, "cannot read model 'gpt'"),
        (["search", "--task", "missing.yaml"], 2, "missing.yaml"),
        (["search"], 2, "no task given"),
        (["search", "--resume", "/nonexistent/run"], 2, "not a promptopt run directory"),
        (["eval", "--prompt", "/nonexistent.json"], 2, "prompt file not found"),
    ],
)
def test_user_errors_are_one_line_with_exit_codes(args: list[str], code: int, message: str) -> None:
    got_code, out = run(*args)
    assert got_code == code, out
    assert message in out
    assert "Traceback" not in out


def test_malformed_files(tmp_path: Path) -> None:
    bad_task = tmp_path / "bad.yaml"
    bad_task.write_text("name: [unclosed\n")
    code, out = run("search", "--task", str(bad_task))
    assert code == 2 and "bad.yaml" in out and "Traceback" not in out

    not_json = tmp_path / "p.json"
    not_json.write_text("{nope")
    code, out = run("eval", "--prompt", str(not_json))
    assert code == 2 and "not valid JSON" in out

    other_json = tmp_path / "q.json"
    other_json.write_text(json.dumps({"hello": 1}))
    code, out = run("eval", "--prompt", str(other_json))
    assert code == 2 and "not a promptopt prompt export" in out


def test_data_file_with_missing_field(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text('{"q": "1+1", "a": "2"}\n{"q": "2+2", "a": "4"}\n')
    code, out = run("search", "--data", str(data), "--input-field", "question")
    assert code == 3 and "question" in out and "Traceback" not in out


def test_missing_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMPTOPT_DATA_DIR", str(tmp_path / "nowhere"))
    code, out = run("search", "--task", "gsm8k")
    assert code == 3 and "PROMPTOPT_DATA_DIR" in out


def test_unreachable_server_is_a_model_error() -> None:
    code, out = run(
        "search",
        "--task",
        "antonyms",
        "--model",
        "openai:smol",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--dev-size",
        "2",
        "--test-size",
        "2",
        "-p",
        "num_subsamples=1",
        "-p",
        "proposals_per_subsample=1",
    )
    assert code == 4 and "127.0.0.1:9" in out and "Traceback" not in out
