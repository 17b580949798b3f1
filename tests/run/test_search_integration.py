"""End to end on the real embedded model, at small sizes: search, export, eval,
cached rerun, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.run.store import read_events
from tests.cli_helpers import eval_json, search_via_cli

pytestmark = pytest.mark.integration
runner = CliRunner()

SMALL = [
    "--task",
    "antonyms",
    "--dev-size",
    "6",
    "--test-size",
    "10",
    "-p",
    "num_subsamples=2",
    "-p",
    "proposals_per_subsample=2",
]


@pytest.fixture(autouse=True)
def _env(data_dir: Path, isolated_cache: Path) -> None:
    pass


def search(tmp_path: Path, name: str, *extra: str) -> dict:
    return search_via_cli(tmp_path, name, *SMALL, *extra)[0]


def test_search_export_eval_and_cached_rerun(tmp_path: Path) -> None:
    first = search(tmp_path, "first")
    assert first["format"] == "promptopt.prompt"
    assert first["scores"]["test"]["n"] == 10
    assert first["scores"]["baseline_test"]["n"] == 10
    assert first["scores"]["dev"]["n"] == 6
    assert 0.0 <= first["scores"]["test"]["score"] <= 1.0
    assert first["usage"]["search"]["calls"] > 0
    assert first["models"]["target"]["model"] == "SmolLM2-135M-Instruct"
    assert first["leaderboard"][0]["instruction"] == first["prompt"]["instruction"]
    assert "api_key" not in json.dumps(first).lower()
    # The demonstration stage ran after APE, with demonstrations from train only
    # (antonyms' train comes from the induce file; dev and test from execute).
    staged = [row for row in first["leaderboard"] if row["demonstrations"] > 0]
    assert staged and all(" + " in row["origin"] for row in staged)
    events = read_events(tmp_path / "first")
    stage = next(e for e in events if e["event"] == "demo_stage")
    assert all(i.startswith("induce-") for s in stage["demo_sets"] for i in s)

    # Same search again: the same work, all of it from the cache (no new model call),
    # same answer. (A request repeated within a run is answered by its journal, free.)
    again = search(tmp_path, "again")
    first_search, again_search = first["usage"]["search"], again["usage"]["search"]
    assert again_search["new_calls"] == 0 and again["usage"]["test_eval"]["new_calls"] == 0
    assert again_search["calls"] == again_search["cache_hits"] == first_search["calls"]
    assert first_search["new_calls"] == first_search["calls"]
    assert again["prompt"] == first["prompt"]
    assert again["scores"] == first["scores"]

    # eval re-scores the export on the same test split.
    result = runner.invoke(app, ["eval", "--prompt", str(tmp_path / "first.json"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["score"] == pytest.approx(first["scores"]["test"]["score"])
    assert report["n"] == 10

    # The gate: exit 10 below the threshold, 0 at or above it.
    gate = runner.invoke(
        app, ["eval", "--prompt", str(tmp_path / "first.json"), "--min-score", "1.01"]
    )
    assert gate.exit_code == 10 and "below --min-score" in gate.output
    ok = runner.invoke(app, ["eval", "--prompt", str(tmp_path / "first.json"), "--min-score", "0"])
    assert ok.exit_code == 0


def test_budget_stop_keeps_best_so_far(tmp_path: Path) -> None:
    # 4 proposals + room for a first halving round only.
    export = search(tmp_path, "budget", "--budget", "12", "--no-cache")
    assert export["stopped_by_budget"] is True
    assert export["usage"]["search"]["calls"] <= 12
    assert export["scores"]["test"]["n"] == 10


def test_resume_repeats_no_model_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupt a search mid-selection, resume it, and compare with an uninterrupted run.

    All three runs share one call cache. The resumed run must take nothing from it
    (what ran before the interruption comes from its journal, what is new was never
    asked), and the uninterrupted run must find every request it makes there (the
    resumed run asked the same ones) without calling the model."""
    from promptopt.strategies import ape

    original = ape.APE._halving
    calls = {"n": 0}

    def interrupted(self, ctx, config, board, pool, dev):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        ctx.evaluator.evaluate_many(
            [ape.Prompt(instruction=pool[0], template=ctx.task.template)], dev[:2]
        )
        raise KeyboardInterrupt

    monkeypatch.setattr(ape.APE, "_halving", interrupted)
    run_dir = tmp_path / "resumable"
    result = runner.invoke(app, ["search", *SMALL, "--run-dir", str(run_dir)])
    assert result.exit_code != 0 and calls["n"] == 1
    assert not (run_dir / "result.json").exists()

    monkeypatch.setattr(ape.APE, "_halving", original)
    out = tmp_path / "resumed.json"
    resumed = runner.invoke(app, ["search", "--resume", str(run_dir), "--out", str(out)])
    assert resumed.exit_code == 0, resumed.output
    export = json.loads(out.read_text())
    kinds = [e["event"] for e in read_events(run_dir)]
    assert kinds[0] == "started" and "resumed" in kinds and kinds[-1] == "finished"
    assert kinds.count("proposed") == 1  # written before the interruption, not again

    assert export["usage"]["search"]["cache_hits"] == 0
    # The uninterrupted run charges the same calls: the resumed run replayed the
    # journal (charged as before) rather than calling the model again.
    straight = search(tmp_path, "straight")
    assert straight["usage"]["search"]["new_calls"] == 0
    assert export["usage"]["search"]["calls"] == straight["usage"]["search"]["calls"]

    # Replayed target calls are the target's share, as in the uninterrupted run.
    def charged(usage: dict) -> dict:
        return {
            role: {
                k: v
                for k, v in share.items()
                if k == "calls" or k.endswith("_tokens") and not k.startswith("new_")
            }
            for role, share in usage["search_by_model"].items()
        }

    assert charged(export["usage"]) == charged(straight["usage"])
    assert export["prompt"] == straight["prompt"]


def test_resume_refuses_a_different_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run directory that holds a run (here one stopped by Ctrl-C as its search
    began) is never reused by a new search."""
    from promptopt.strategies import ape

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ape.APE, "search", interrupted)
    run_dir = tmp_path / "stopped"
    first = runner.invoke(app, ["search", *SMALL, "--run-dir", str(run_dir)])
    assert first.exit_code == 130 and (run_dir / "config.json").is_file(), first.output
    result = runner.invoke(app, ["search", *SMALL, "--seed", "3", "--run-dir", str(run_dir)])
    assert result.exit_code == 2 and "already holds a run" in result.output


def test_quick_task_from_a_data_file(tmp_path: Path) -> None:
    """--data: a JSONL file written here, split by seed, searched and re-scored."""
    words = [
        "cat",
        "dog",
        "sun",
        "tree",
        "book",
        "milk",
        "rain",
        "ship",
        "lamp",
        "rose",
        "fish",
        "door",
        "star",
        "wind",
        "sand",
        "bell",
        "road",
        "leaf",
        "coin",
        "frog",
    ]
    data = tmp_path / "upper.jsonl"
    data.write_text("".join(json.dumps({"word": w, "upper": w.upper()}) + "\n" for w in words))
    export, _ = search_via_cli(
        tmp_path,
        "upper",
        *f"--data {data} --input-field word --target-field upper --metric exact".split(),
        *[
            "--dev-size",
            "4",
            "--test-size",
            "6",
            "-p",
            "num_subsamples=1",
            "-p",
            "proposals_per_subsample=2",
        ],
    )
    assert export["task"]["data_file"]["input_field"] == "word"
    assert export["scores"]["test"]["n"] == 6
    report = eval_json(tmp_path / "upper.json")
    assert report["score"] == pytest.approx(export["scores"]["test"]["score"])


def test_instructzero_on_the_embedded_model(tmp_path: Path) -> None:
    """Soft prompts through the real writer, BO round included, then eval of the export."""
    iz_params = [
        "intrinsic_dim=4",
        "initial_points=2",
        "rounds=1",
        "batch_per_round=1",
        "acq_restarts=2",
        "acq_raw_samples=32",
        "max_instruction_tokens=24",
    ]
    args = [
        *["--task", "antonyms", "--strategy", "instructzero", "--dev-size", "3"],
        *["--test-size", "4", "--no-report"],
        *[arg for p in iz_params for arg in ("-p", p)],
    ]
    export, run_dir = search_via_cli(tmp_path, "iz", *args)
    assert export["strategy"]["name"] == "instructzero"
    assert export["scores"]["test"]["n"] == 4
    observed = [e for e in read_events(run_dir) if e["event"] == "observed"]
    assert len(observed) == 3 and all(len(e["z"]) == 4 for e in observed)
    if export["improved"]:
        assert export["prompt"]["instruction"] in {e["instruction"] for e in observed}
    else:  # never worse: no written instruction beat the start on dev
        assert export["prompt"] == export["start"]["prompt"]
    eval_json(tmp_path / "iz.json")

    # Rerun in a new run directory: the writer's soft-prompt generations come from
    # the shared cache too, so no model call is new and the search is the same.
    again, _ = search_via_cli(tmp_path, "iz-again", *args)
    assert again["usage"]["search"]["new_calls"] == 0, again["usage"]
    assert again["usage"]["search"]["calls"] == export["usage"]["search"]["calls"]
    assert again["usage"]["search_by_model"]["proposer"]["cache_hits"] == 3  # the writer's
    assert again["leaderboard"] == export["leaderboard"] and again["prompt"] == export["prompt"]


def test_rlprompt_on_the_embedded_model(tmp_path: Path) -> None:
    """A few policy-gradient steps with the real model as policy and target (sst2)."""
    rl_params = ["steps=2", "prompts_per_step=2", "examples_per_step=2", "eval_every=2"]
    export, run_dir = search_via_cli(
        tmp_path,
        "rl",
        *["--task", "sst2", "--strategy", "rlprompt", "--dev-size", "4", "--test-size", "6"],
        *[arg for p in [*rl_params, "mlp_hidden=64"] for arg in ("-p", p)],
    )
    steps = [e for e in read_events(run_dir) if e["event"] == "rl_step"]
    assert len(steps) == 2
    assert (run_dir / "policy.pt").is_file()
    assert export["scores"]["test"]["n"] == 6
    assert export["usage"]["search"]["calls"] >= 2 * 2 * 2
