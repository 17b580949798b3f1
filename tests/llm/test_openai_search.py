"""The search command against a real OpenAI-compatible server (llama.cpp on loopback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptopt.cli import app

pytestmark = [pytest.mark.server, pytest.mark.integration]


def test_search_and_eval_with_openai_target(
    llama_server: str, data_dir: Path, isolated_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "best.json"
    args = [
        "search",
        "--task",
        "antonyms",
        "--model",
        "openai:smollm2",
        "--base-url",
        llama_server,
        "--dev-size",
        "4",
        "--test-size",
        "6",
        "-p",
        "num_subsamples=1",
        "-p",
        "proposals_per_subsample=2",
        "--out",
        str(out),
        "--run-dir",
        str(tmp_path / "run"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    export = json.loads(out.read_text())
    assert export["models"]["target"] == {
        "kind": "openai",
        "model": "smollm2",
        "spec": export["models"]["target"]["spec"],
    }
    assert export["models"]["target"]["spec"]["base_url"] == llama_server
    assert export["models"]["proposer"]["kind"] == "hf"
    assert export["scores"]["test"]["n"] == 6
    assert export["usage"]["search"]["calls"] > 0

    # eval rebuilds the same target from the export and gets the same score.
    report = CliRunner().invoke(app, ["eval", "--prompt", str(out), "--json"])
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["score"] == pytest.approx(export["scores"]["test"]["score"])
