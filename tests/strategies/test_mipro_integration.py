"""The joint optimizer end to end on the real embedded model, at a tiny budget:
search through the CLI, the export re-scored by eval, and resume after an
interruption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.run.store import read_events
from tests.cli_helpers import search_via_cli

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("data_dir", "isolated_cache")]
runner = CliRunner()

TINY = [
    "--task", "first_word_letter", "--strategy", "mipro", "--train-size", "12",
    "--dev-size", "4", "--test-size", "6", "--budget", "40",
    "-p", "num_instructions=3", "-p", "proposals=4", "-p", "num_demo_sets=3",
    "-p", "bootstrap_pool=4", "-p", "minibatch=2", "-p", "init_trials=2",
    "-p", "confirm_every=3",
]  # fmt: skip


def test_mipro_on_the_embedded_model_then_eval(tmp_path: Path) -> None:
    export, _ = search_via_cli(tmp_path, "run", *TINY)
    assert export["strategy"]["name"] == "mipro"
    assert export["usage"]["search"]["calls"] <= 40
    assert export["scores"]["test"]["n"] == 6 and export["scores"]["baseline_test"]["n"] == 6
    assert isinstance(export["improved"], bool)
    if not export["improved"]:
        assert export["prompt"] == export["start"]["prompt"]
    trials = [e for e in read_events(tmp_path / "run") if e["event"] == "trial"]
    assert len(trials) >= 3 and trials[0]["how"] == "start"
    result = runner.invoke(app, ["eval", "--prompt", str(tmp_path / "run.json"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["score"] == pytest.approx(export["scores"]["test"]["score"])


def test_mipro_resumes_after_an_interruption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptopt.strategies.mipro import Trials

    original = Trials.confirm
    calls = {"n": 0}

    def interrupted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trials, "confirm", interrupted)
    run_dir = tmp_path / "resumable"
    result = runner.invoke(app, ["search", *TINY, "--run-dir", str(run_dir)])
    assert result.exit_code != 0 and calls["n"] == 1
    assert not (run_dir / "result.json").exists()
    monkeypatch.setattr(Trials, "confirm", original)
    out = tmp_path / "resumed.json"
    resumed = runner.invoke(app, ["search", "--resume", str(run_dir), "--out", str(out)])
    assert resumed.exit_code == 0, resumed.output
    export = json.loads(out.read_text())
    # One shared cache: the resumed run takes nothing from it (its journal replays
    # what ran before), and the uninterrupted run finds every request there.
    assert export["usage"]["search"]["cache_hits"] == 0
    straight, _ = search_via_cli(tmp_path, "straight", *TINY)
    assert straight["usage"]["search"]["new_calls"] == 0
    assert export["prompt"] == straight["prompt"]
    assert export["usage"]["search"]["calls"] == straight["usage"]["search"]["calls"]


def test_calibration_on_a_label_log_probability_task_reaches_eval(tmp_path: Path) -> None:
    from promptopt.data.task import load_task

    export, run_dir = search_via_cli(
        tmp_path,
        "sst2",
        *["--task", "sst2", "--strategy", "mipro", "--dev-size", "4", "--test-size", "6"],
        *["--budget", "40", "-p", "num_instructions=2", "-p", "proposals=0"],
        *["-p", "num_demo_sets=2", "-p", "minibatch=2", "-p", "calibration_inputs=2"],
    )
    trials = [e for e in read_events(run_dir) if e["event"] == "trial"]
    assert {e["calibrated"] for e in trials} == {True, False}
    result = runner.invoke(app, ["eval", "--prompt", str(tmp_path / "sst2.json"), "--json"])
    assert json.loads(result.stdout)["score"] == pytest.approx(export["scores"]["test"]["score"])
    # A prior that all but forbids 'positive' makes every answer 'negative': eval
    # applies the prompt's calibration, it does not just carry it.
    export["prompt"]["calibration"] = [0.0, 50.0]
    forced = tmp_path / "forced.json"
    forced.write_text(json.dumps(export))
    result = runner.invoke(app, ["eval", "--prompt", str(forced), "--json"])
    assert result.exit_code == 0, result.output
    test = load_task("sst2", sizes={"dev": 4, "test": 6}).examples("test")
    negative = sum(e.target == "negative" for e in test) / len(test)
    assert json.loads(result.stdout)["score"] == pytest.approx(negative)
