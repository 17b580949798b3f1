"""`promptopt compare`: runs, reuse, refusal of unlike settings, and the leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.compare import CompareSpec, build_leaderboard, run_compare
from promptopt.types import Budget
from tests.search_fakes import plug_fake_model

pytestmark = pytest.mark.usefixtures("data_dir", "isolated_cache")
runner = CliRunner()
RUN_KEYS = {
    "strategy", "seed", "run_dir", "test_score", "test_n", "baseline_test_score", "calls",
    "cache_hits",
    "tokens", "wall_s", "cost_usd", "stopped_by_budget",
}  # fmt: skip
BOARD_KEYS = {
    "strategy", "mean", "sd", "n_seeds", "calls_mean", "cache_hits_mean", "tokens_mean",
    "wall_s_mean", "cost_usd_mean", "best", "vs_best",
}  # fmt: skip


def row(strategy: str, seed: int, score: float, calls: int = 10) -> dict:
    return {
        "strategy": strategy,
        "seed": seed,
        "run_dir": f"runs/{strategy}-seed{seed}",
        "test_score": score,
        "test_n": 4,
        "baseline_test_score": 0.0,
        "calls": calls,
        "tokens": 100 * calls,
        "wall_s": 1.0,
        "cost_usd": 0.0,
        "stopped_by_budget": False,
    }


def test_leaderboard_ranks_and_tests_against_the_best() -> None:
    runs = [row("a", 0, 1.0), row("a", 1, 0.5), row("b", 0, 0.25), row("b", 1, 0.25)]
    per_example = {
        ("a", 0): {"1": 1, "2": 1, "3": 1, "4": 1},
        ("a", 1): {"1": 1, "2": 1, "3": 0, "4": 0},
        ("b", 0): {"1": 0, "2": 0, "3": 0, "4": 1},
        ("b", 1): {"1": 1, "2": 0, "3": 0, "4": 0},
    }
    board = build_leaderboard(runs, lambda r: per_example[(r["strategy"], r["seed"])])
    assert [r["strategy"] for r in board] == ["a", "b"]
    a, b = board
    assert set(a) == BOARD_KEYS
    assert a["best"] and a["vs_best"] is None and not b["best"]
    assert a["mean"] == 0.75 and a["sd"] == pytest.approx(0.353553, abs=1e-5)
    assert b["n_seeds"] == 2 and b["calls_mean"] == 10 and b["tokens_mean"] == 1000
    vs = b["vs_best"]
    assert vs["n"] == 8 and vs["difference"] == pytest.approx(0.25 - 0.75)
    assert vs["method"] == "mcnemar-exact" and vs["alternative"] == "two-sided"
    # a right, b wrong on 4 pairs; the reverse on none: p = 2 / 2^4
    assert vs["p_value"] == pytest.approx(0.125) and vs["significant"] is False


def test_leaderboard_ties_unknown_costs_and_missing_examples() -> None:
    runs = [row("slow", 0, 0.5, calls=20), row("fast", 0, 0.5, calls=5), row("x", 0, 0.1)]
    runs[2]["cost_usd"] = None
    board = build_leaderboard(runs, lambda r: {})
    assert [r["strategy"] for r in board] == ["fast", "slow", "x"]
    assert board[1]["vs_best"] is None  # no paired examples to test
    assert board[2]["cost_usd_mean"] is None and board[0]["sd"] == 0.0
    assert build_leaderboard([], lambda r: {}) == []


def spec(tmp_path: Path, strategies: list[str], **kw: object) -> CompareSpec:
    return CompareSpec(
        task=str(kw.pop("task", "antonyms")),
        strategies=strategies,
        out_dir=tmp_path / "cmp",
        seeds=[0, 1],
        budget=kw.pop("budget", Budget(max_calls=30)),  # type: ignore[arg-type]
        params={"ape": {"num_subsamples": "2", "proposals_per_subsample": "2"}},
        sizes=dict(kw.pop("sizes", {"dev": 5, "test": 6})),  # type: ignore[arg-type]
    )


def test_compare_runs_reuses_and_adds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = plug_fake_model(monkeypatch)
    data = run_compare(spec(tmp_path, ["ape"]))
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved == data
    assert data["format"] == "promptopt.compare" and data["format_version"] == 1
    assert data["task"] == "antonyms" and data["seeds"] == [0, 1]
    assert data["budget"] == {"max_calls": 30, "max_tokens": None}
    assert data["settings"]["sizes"] == {"dev": 5, "test": 6}
    assert [(r["strategy"], r["seed"]) for r in data["runs"]] == [("ape", 0), ("ape", 1)]
    for run in data["runs"]:
        assert set(run) == RUN_KEYS
        assert (tmp_path / "cmp" / run["run_dir"] / "result.json").is_file()
        assert run["test_n"] == 6 and run["calls"] <= 30 and run["cost_usd"] == 0
    assert data["leaderboard"][0]["best"] and data["leaderboard"][0]["vs_best"] is None

    calls = fake.generate_calls
    again = run_compare(spec(tmp_path, ["ape"]))
    assert fake.generate_calls == calls  # nothing rerun
    assert again["runs"] == data["runs"]

    more = run_compare(spec(tmp_path, ["ape", "reflexion"]))
    assert fake.generate_calls > calls
    assert [r["strategy"] for r in more["runs"]] == ["ape", "ape", "reflexion", "reflexion"]
    assert {r["strategy"] for r in more["leaderboard"]} == {"ape", "reflexion"}
    other = [r for r in more["leaderboard"] if not r["best"]][0]
    assert other["vs_best"]["n"] == 12  # 2 seeds x 6 test examples
    assert more["settings"]["params"]["ape"] == {
        "num_subsamples": "2",
        "proposals_per_subsample": "2",
    }

    wider = spec(tmp_path, ["ape"])
    wider.seeds = [0, 1, 2]
    grown = run_compare(wider)  # one more seed of ape; reflexion keeps its two
    assert grown["seeds"] == [0, 1, 2]
    assert [(r["strategy"], r["seed"]) for r in grown["runs"]] == [
        ("ape", 0), ("ape", 1), ("ape", 2), ("reflexion", 0), ("reflexion", 1)
    ]  # fmt: skip
    board = {r["strategy"]: r for r in grown["leaderboard"]}
    assert board["ape"]["n_seeds"] == 3 and board["reflexion"]["n_seeds"] == 2
    other = [r for r in grown["leaderboard"] if not r["best"]][0]
    assert other["vs_best"]["n"] == 12  # paired only on the seeds both have


def test_interrupted_run_is_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plug_fake_model(monkeypatch)
    run_compare(spec(tmp_path, ["ape"]))
    run_dir = tmp_path / "cmp" / "runs" / "ape-seed1"
    first = json.loads((run_dir / "result.json").read_text())
    (run_dir / "result.json").unlink()
    compare_file = tmp_path / "cmp" / "compare.json"
    data = json.loads(compare_file.read_text())
    data["runs"] = data["runs"][:1]
    compare_file.write_text(json.dumps(data))
    again = run_compare(spec(tmp_path, ["ape"]))
    assert len(again["runs"]) == 2
    assert again["runs"][1]["test_score"] == first["scores"]["test"]["score"]
    assert again["runs"][1]["calls"] == first["usage"]["search"]["calls"]  # replayed charges


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"budget": Budget(max_calls=31)}, "budget="),
        ({"sizes": {"dev": 4, "test": 6}}, "--train-size/--dev-size/--test-size"),
        ({"task": "sst2"}, "--task"),
    ],
)
def test_unlike_settings_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict, message: str
) -> None:
    from promptopt.errors import ConfigError

    plug_fake_model(monkeypatch)
    first = spec(tmp_path, ["ape"])
    first.seeds = [0]
    run_compare(first)
    other = spec(tmp_path, ["ape"], **change)
    other.seeds = [0]
    with pytest.raises(ConfigError, match=message) as error:
        run_compare(other)
    assert "another --out-dir" in str(error.value) and "\n" not in str(error.value)


def test_cli_compare_prints_a_leaderboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plug_fake_model(monkeypatch)
    args = ["compare", "--task", "antonyms", "--strategies", "ape,reflexion", "--seeds", "1"]
    args += ["--budget", "25", "--dev-size", "5", "--test-size", "6"]
    args += ["--out-dir", str(tmp_path / "c"), "-p", "ape.num_subsamples=2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ape" in result.output and "reflexion" in result.output and "best" in result.output
    assert "compare.json" in result.output
    result = runner.invoke(app, [*args[:-6], "--budget", "26", *args[-6:]])
    assert result.exit_code == 2 and "pick another --out-dir" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-p", "num_subsamples=2"], "-p ape.num_subsamples=2"),
        (["-p", "boosted.shots=2"], "not in --strategies"),
        (["--strategies", "apee"], "did you mean 'ape'"),
        (["--seeds", "0"], "--seeds must be at least 1"),
    ],
)
def test_cli_compare_user_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    result = runner.invoke(
        app, ["compare", "--task", "antonyms", "--out-dir", str(tmp_path / "c"), *extra]
    )
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output
