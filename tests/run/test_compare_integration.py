"""compare and --dry-run on the real embedded model, at tiny sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptopt.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_dir", "isolated_cache")]
runner = CliRunner()


def test_compare_on_the_embedded_model_then_a_free_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cmp"
    args = ["compare", "--task", "antonyms", "--strategies", "ape,reflexion", "--seeds", "1"]
    args += ["--budget", "30", "--dev-size", "5", "--test-size", "6", "--out-dir", str(out)]
    args += ["-p", "ape.num_subsamples=2", "-p", "ape.proposals_per_subsample=2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "compare.json").read_text())
    assert data["format"] == "promptopt.compare" and data["budget"]["max_calls"] == 30
    assert {(r["strategy"], r["seed"]) for r in data["runs"]} == {("ape", 0), ("reflexion", 0)}
    for run in data["runs"]:
        assert run["test_n"] == 6 and 0 < run["calls"] <= 30 and run["cost_usd"] == 0
        assert (out / run["run_dir"] / "test_examples.json").is_file()
    board = [r for r in data["leaderboard"] if r["kind"] == "strategy"]
    assert len(board) == 2 and board[0]["best"] and board[0]["vs_best"] is None
    assert board[1]["vs_best"]["n"] == 6
    start = [r for r in data["leaderboard"] if r["kind"] == "start"]
    assert len(start) == 1 and all(r["vs_start"]["n"] == 6 for r in board)

    def no_model(spec):  # type: ignore[no-untyped-def]
        raise AssertionError("the rerun loaded a model")

    monkeypatch.setattr("promptopt.run.search.build_llm", no_model)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads((out / "compare.json").read_text())["runs"] == data["runs"]


def test_dry_run_on_the_embedded_model_loads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from promptopt.llm import factory, hf

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(factory, "_LOADED", {})
    monkeypatch.setattr(hf.HFLLM, "__init__", refuse)
    result = runner.invoke(
        app, ["search", "--task", "antonyms", "--dev-size", "6", "--test-size", "10", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "model calls" in result.output and "no model was loaded" in result.output
    assert factory._LOADED == {}
