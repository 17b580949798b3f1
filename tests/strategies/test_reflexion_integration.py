"""Reflexion on the real embedded model, at tiny sizes: a prompt search at a small
budget through the CLI, and the HumanEval loop on two problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.run.code_eval import CodeReflexionConfig, run_code_eval
from promptopt.run.store import read_events
from tests.cli_helpers import search_via_cli

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _env(data_dir: Path, isolated_cache: Path) -> None:
    pass


def test_prompt_search_at_a_tiny_budget(tmp_path: Path) -> None:
    export, run_dir = search_via_cli(
        tmp_path,
        "best",
        *["--task", "antonyms", "--strategy", "reflexion", "--dev-size", "4", "--test-size", "6"],
        *["--budget", "24", "-p", "minibatch=4"],
    )
    assert export["strategy"]["name"] == "reflexion"
    assert export["usage"]["search"]["calls"] <= 24
    assert export["scores"]["test"]["n"] == 6 and export["scores"]["dev"]["n"] == 4
    # The start's instruction can also head a pair of the demonstration stage.
    rows = {(row["instruction"], row["origin"]) for row in export["leaderboard"]}
    assert ("Write a word that means the opposite of the input word.", "start") in rows
    events = read_events(run_dir)
    kinds = [e["event"] for e in events]
    # 4 dev for the baseline, then 4 train + a reflection + 2 revisions + their dev scores.
    assert kinds.count("trial") >= 1 and "reflection" in kinds and "revision" in kinds
    reflection = next(e for e in events if e["event"] == "reflection")
    assert reflection["raw"] and reflection["memory"] == (
        [reflection["reflection"]] if reflection["reflection"] else []
    )
    assert kinds[-1] == "finished"


def test_humaneval_loop_on_two_problems() -> None:
    """The loop for real on the first two problems, with shorter replies than the
    CLI's defaults to keep the test short (the CLI path is the same function)."""
    report = run_code_eval(
        "humaneval",
        allow_code_execution=True,
        attempts=2,
        test_size=2,
        config=CodeReflexionConfig(max_tokens=96, reflection_max_tokens=32),
    )
    assert report["n"] == 2 and report["attempts"] == 2
    assert set(report["pass_at_1_by_attempts"]) == {"1", "2"}
    assert 0.0 <= report["score"] <= 1.0
    assert report["usage"]["calls"] + report["usage"]["cache_hits"] >= 2
    for problem in report["problems"]:
        assert 1 <= problem["attempts_used"] <= 2
        assert all(h in (True, False) for h in problem["hidden"])
        if problem["attempts_used"] == 2:  # failed its visible tests: it reflected
            assert problem["visible"][0] != "passed" and problem["reflections"]
    assert report["sandbox"]["separate_process"]
