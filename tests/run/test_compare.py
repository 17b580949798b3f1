"""`promptopt compare`: runs, reuse, refusal of unlike settings, and the leaderboard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.core.domain import Budget
from promptopt.evaluation.stats import binomial_tail, compare_paired
from promptopt.run.compare import START_LABEL, CompareSpec, build_leaderboard, run_compare
from tests.fakes import forbid_model_loading, plug_fake_model
from tests.report.fixtures import result_json, write_json

pytestmark = pytest.mark.usefixtures("data_dir", "isolated_cache")
runner = CliRunner()
RUN_KEYS = {
    "strategy", "seed", "run_dir", "test_score", "test_n", "baseline_test_score", "calls",
    "cache_hits",
    "tokens", "wall_s", "cost_usd", "stopped_by_budget", "improved",
}  # fmt: skip
BOARD_KEYS = {
    "strategy", "mean", "sd", "n_seeds", "calls_mean", "cache_hits_mean", "tokens_mean",
    "wall_s_mean", "cost_usd_mean", "best", "vs_best", "kind", "vs_start", "vs_start_verdict",
    "improved",
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


def strategy_rows(board: list[dict]) -> list[dict]:
    return [r for r in board if r["kind"] == "strategy"]


def test_leaderboard_ranks_and_tests_against_the_best() -> None:
    runs = [row("a", 0, 1.0), row("a", 1, 0.5), row("b", 0, 0.25), row("b", 1, 0.25)]
    per_example = {
        ("a", 0): {"1": 1, "2": 1, "3": 1, "4": 1},
        ("a", 1): {"1": 1, "2": 1, "3": 0, "4": 0},
        ("b", 0): {"1": 0, "2": 0, "3": 0, "4": 1},
        ("b", 1): {"1": 1, "2": 0, "3": 0, "4": 0},
    }
    board = build_leaderboard(runs, lambda r: per_example[(r["strategy"], r["seed"])])
    assert [r["strategy"] for r in board] == ["a", "b", START_LABEL]  # the start scored 0
    a, b, start = board
    assert set(a) == BOARD_KEYS and set(start) == BOARD_KEYS
    assert start["kind"] == "start" and not start["best"] and start["vs_start"] is None
    assert a["vs_start"] is None and a["vs_start_verdict"] is None  # no start scores given
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
    assert [r["strategy"] for r in board] == ["fast", "slow", "x", START_LABEL]
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
    best = strategy_rows(data["leaderboard"])[0]
    assert best["best"] and best["vs_best"] is None
    assert best["vs_start"]["n"] == 12  # 2 seeds x 6 test examples, against the start
    assert data["warnings"] == []  # every run scored the start prompt alike

    calls = fake.generate_calls
    again = run_compare(spec(tmp_path, ["ape"]))
    assert fake.generate_calls == calls  # nothing rerun
    assert again["runs"] == data["runs"]

    more = run_compare(spec(tmp_path, ["ape", "reflexion"]))
    assert fake.generate_calls > calls
    assert [r["strategy"] for r in more["runs"]] == ["ape", "ape", "reflexion", "reflexion"]
    assert {r["strategy"] for r in more["leaderboard"]} == {"ape", "reflexion", START_LABEL}
    other = [r for r in strategy_rows(more["leaderboard"]) if not r["best"]][0]
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
    other = [r for r in strategy_rows(grown["leaderboard"]) if not r["best"]][0]
    assert other["vs_best"]["n"] == 12  # paired only on the seeds both have
    assert board["ape"]["vs_start"]["n"] == 18 and board[START_LABEL]["n_seeds"] == 3


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
    from promptopt.core.errors import ConfigError

    plug_fake_model(monkeypatch)
    first = spec(tmp_path, ["ape"])
    first.seeds = [0]
    run_compare(first)
    other = spec(tmp_path, ["ape"], **change)
    other.seeds = [0]
    with pytest.raises(ConfigError, match=message) as error:
        run_compare(other)
    assert "another --out-dir" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(("auto_means", "continues"), [("bfloat16", True), ("float32", False)])
def test_dirs_from_before_dtype_auto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auto_means: str, continues: bool
) -> None:
    """A comparison recorded with bfloat16 (the default before `auto`) grows where
    auto means bfloat16; where it means float32 mixing the two is refused."""
    from promptopt.core.errors import ConfigError
    from promptopt.llm import hf_backend
    from promptopt.llm.dtype_choice import DtypeChoice
    from promptopt.llm.factory import ModelSpec

    plug_fake_model(monkeypatch)
    before = spec(tmp_path, ["ape"])
    before.seeds = [0]
    before.target = before.proposer = ModelSpec("hf", "embedded", dtype="bfloat16")
    run_compare(before)
    monkeypatch.setattr(hf_backend, "resolve_dtype", lambda d, device: DtypeChoice(auto_means, "x"))
    now = spec(tmp_path, ["ape"])
    assert now.target.dtype == "auto"
    if continues:
        assert [r["seed"] for r in run_compare(now)["runs"]] == [0, 1]
    else:
        with pytest.raises(ConfigError, match="'dtype': 'float32'"):
            run_compare(now)


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


# -- the starting prompt's row, on hand-made run directories ------------------------------
def example_rows(scores: list[float]) -> list[dict]:
    return [{"id": f"e{i}", "score": score} for i, score in enumerate(scores)]


def make_run_dir(
    out: Path,
    strategy: str,
    seed: int,
    best: list[float],
    start: list[float] | None,
    improved: bool | None = None,
) -> None:
    """A finished run as compare reuses it: result.json and test_examples.json (without
    start rows when `start` is None, as runs from before them were written)."""
    run_dir = out / "runs" / f"{strategy}-seed{seed}"
    export = result_json(strategy, seed, f"{strategy} prompt", sum(best) / len(best))
    base = start if start is not None else [0.5]
    export["scores"]["baseline_test"] = {"score": sum(base) / len(base), "n": len(base)}
    if improved is not None:
        export["improved"] = improved
    write_json(run_dir / "result.json", export)
    examples = {"best": example_rows(best)}
    if start is not None:
        examples["baseline"] = example_rows(start)
    write_json(run_dir / "test_examples.json", examples)


START = [1.0] * 8 + [0.0] * 2  # the start prompt gets 8 of 10 right
WORSE = [0.0] * 8 + [1.0] * 2  # wrong wherever the start is right
SAME = list(START)


def table_row(output: str, first_cell: str) -> list[str]:
    """The cells of one printed table row, with the lines rich wrapped them onto joined."""
    lines = [line.split("│")[1:-1] for line in output.splitlines() if line.startswith("│")]
    start = next(i for i, cells in enumerate(lines) if cells[0].strip() == first_cell)
    parts = [[c.strip()] for c in lines[start]]
    for cells in lines[start + 1 :]:
        if cells[0].strip():
            break
        for part, cell in zip(parts, cells, strict=True):
            part.append(cell.strip())
    return [" ".join(p for p in part if p) for part in parts]


def hand_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs: dict) -> dict:
    """run_compare over hand-made runs {(strategy, seed): (best, start[, improved])};
    no model may load, so every run is reused as written."""
    forbid_model_loading(monkeypatch)
    for (strategy, seed), scores in runs.items():
        make_run_dir(tmp_path / "cmp", strategy, seed, *scores)
    strategies = list(dict.fromkeys(strategy for strategy, _ in runs))
    return run_compare(spec(tmp_path, strategies))


def test_start_row_has_the_start_prompts_test_mean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = hand_made(
        tmp_path,
        monkeypatch,
        {
            ("ape", 0): (SAME, START, False),
            ("ape", 1): (SAME, START, True),
            ("reflexion", 0): (WORSE, START, False),
            ("reflexion", 1): (WORSE, START, False),
        },
    )
    board = {r["strategy"]: r for r in data["leaderboard"]}
    start = board[START_LABEL]
    assert start["kind"] == "start" and start["mean"] == pytest.approx(0.8)
    assert start["sd"] == 0.0 and start["n_seeds"] == 2
    assert start["calls_mean"] == 0 and start["tokens_mean"] == 0 and not start["best"]
    assert start["vs_start"] is None and start["improved"] is None
    # ties with ape, and ranks ahead of it: the start costs no search
    assert [r["strategy"] for r in data["leaderboard"]] == [START_LABEL, "ape", "reflexion"]
    assert board["ape"]["best"] and start["vs_best"]["difference"] == 0.0
    assert board["ape"]["improved"] == {"count": 1, "of": 2}
    assert board["ape"]["vs_start_verdict"] == "not significant"
    assert board["ape"]["vs_start"]["p_value"] == 1.0  # no discordant pairs
    assert data["warnings"] == []


def test_p_value_against_the_start_matches_a_direct_stats_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graded_start = [0.5, 0.25, 1.0, 0.0, 0.75, 0.5, 0.5, 1.0, 0.25, 0.0]
    graded = {0: [0.75, 0.5, 1.0, 0.25, 0.75, 0.5, 1.0, 1.0, 0.5, 0.0]}
    graded[1] = [0.5, 0.5, 0.75, 0.25, 1.0, 0.5, 0.75, 1.0, 0.25, 0.25]
    data = hand_made(
        tmp_path,
        monkeypatch,
        {("ape", seed): (graded[seed], graded_start) for seed in (0, 1)},
    )
    ape = next(r for r in data["leaderboard"] if r["strategy"] == "ape")
    pairs = sorted((seed, f"e{i}") for seed in (0, 1) for i in range(10))
    new = [graded[seed][int(example[1:])] for seed, example in pairs]
    old = [graded_start[int(example[1:])] for _, example in pairs]
    direct = compare_paired(new, old, alternative="two-sided")
    assert ape["vs_start"] == direct.to_dict()
    assert ape["vs_start"]["method"] == "paired-bootstrap" and ape["vs_start"]["n"] == 20
    assert ape["vs_start"]["difference"] == pytest.approx(0.6 - 0.475)


def test_a_strategy_significantly_worse_than_the_start_is_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = {("ape", s): (SAME, START, False) for s in (0, 1)}
    runs |= {("reflexion", s): (WORSE, START, False) for s in (0, 1)}
    data = hand_made(tmp_path, monkeypatch, runs)
    reflexion = next(r for r in data["leaderboard"] if r["strategy"] == "reflexion")
    vs = reflexion["vs_start"]
    assert vs["method"] == "mcnemar-exact" and vs["n"] == 20 and vs["significant"]
    assert vs["difference"] == pytest.approx(0.2 - 0.8)
    # per seed 8 pairs the start gets right and reflexion wrong, 2 the other way round
    assert vs["p_value"] == pytest.approx(2 * binomial_tail(16, 20))
    assert reflexion["vs_start_verdict"] == "worse"

    args = ["compare", "--task", "antonyms", "--strategies", "ape,reflexion", "--seeds", "2"]
    args += ["--budget", "30", "--dev-size", "5", "--test-size", "6", "--no-report"]
    args += ["--out-dir", str(tmp_path / "cmp"), "-p", "ape.num_subsamples=2"]
    args += ["-p", "ape.proposals_per_subsample=2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cells = table_row(result.output, "reflexion")
    assert cells[8] == "-0.600, p=0.0118 WORSE"  # vs start, with its marker
    assert table_row(result.output, "ape")[8] == "+0.000, p=1"  # no marker: not significant
    assert START_LABEL in result.output and "vs start" in result.output
    assert "No strategy is significantly better than the start prompt." in result.output
    assert "Significantly worse: reflexion." in result.output
    assert "0/2" in result.output  # improved runs, as the exports report them


def test_differing_start_scores_use_the_first_run_and_warn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drifted = [0.0] + START[1:]
    data = hand_made(
        tmp_path, monkeypatch, {("ape", 0): (SAME, START), ("ape", 1): (SAME, drifted)}
    )
    (warning,) = data["warnings"]
    assert "runs/ape-seed1 scores 1 of 10 shared test examples differently" in warning
    assert "pairs against runs/ape-seed0" in warning
    ape = next(r for r in data["leaderboard"] if r["strategy"] == "ape")
    assert ape["vs_start"]["old_mean"] == pytest.approx(0.8)  # the first run's start rows
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["warnings"] == data["warnings"]


def test_old_compare_dirs_without_start_rows_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs without per-example start scores, and a compare.json from before start rows,
    run rows with `improved` and warnings existed."""
    runs = {("ape", s): (SAME, None, s == 0) for s in (0, 1)}
    first = hand_made(tmp_path, monkeypatch, runs)
    old = {k: v for k, v in first.items() if k != "warnings"}
    for run in old["runs"]:
        del run["improved"]
    old["leaderboard"] = [
        {k: v for k, v in r.items() if k not in {"kind", "vs_start", "vs_start_verdict"}}
        for r in first["leaderboard"]
        if r["kind"] == "strategy"
    ]
    write_json(tmp_path / "cmp" / "compare.json", old)

    data = run_compare(spec(tmp_path, ["ape"]))
    start = next(r for r in data["leaderboard"] if r["kind"] == "start")
    assert start["mean"] == 0.5  # from each run's baseline_test score
    ape = next(r for r in data["leaderboard"] if r["strategy"] == "ape")
    assert ape["best"] and ape["vs_start"] is None and ape["vs_start_verdict"] is None
    assert data["warnings"] == []
    assert ape["improved"] == {"count": 1, "of": 2}  # read again from each result.json

    from promptopt.cli.compare_cmd import print_leaderboard

    print_leaderboard(data, tmp_path / "cmp")  # no start pairs, no improved: still prints


# -- damaged files of a run ---------------------------------------------------------------
def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _latin1(data: bytes) -> bytes:
    return data.replace(b'"prompt"', b'"pr\xf6mpt"', 1)


def _retype(field: str, value: object) -> object:
    def damage(data: bytes) -> bytes:
        parsed = json.loads(data)
        *path, last = field.split(".")
        target = parsed
        for key in path:
            target = target[key]
        target[last] = value
        return json.dumps(parsed).encode()

    return damage


@pytest.mark.parametrize(
    ("file", "damage", "problem"),
    [
        ("result.json", _truncate, "is damaged (not valid JSON: "),
        ("result.json", _latin1, "is not UTF-8 text (byte 0xf6 on line "),
        ("result.json", _retype("scores.test.score", "high"), "scores.test.score must be a number"),
        ("result.json", _retype("usage", [1]), "usage.search.calls must be a number, got None"),
        ("test_examples.json", _truncate, "is damaged (not valid JSON: "),
        ("test_examples.json", _retype("best", {"e0": 1}), "best must be a list of test examples"),
        ("test_examples.json", _retype("best", [{"id": "e0", "score": "1"}]), "best[0] must be"),
    ],
)
def test_a_damaged_run_file_is_one_line_naming_it_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file: str, damage: Any, problem: str
) -> None:
    """A truncated, non-UTF-8 or wrong-typed result.json or test_examples.json stops
    compare with exit 2 and one line naming the file and the fix; following the fix
    (delete the run, rerun) makes that run again, from the cache."""
    fake = plug_fake_model(monkeypatch)
    args = ["compare", "--task", "antonyms", "--strategies", "ape", "--seeds", "2"]
    args += ["--budget", "25", "--dev-size", "5", "--test-size", "6", "--no-report"]
    args += ["--out-dir", str(tmp_path / "c"), "-p", "ape.num_subsamples=2"]
    assert runner.invoke(app, args).exit_code == 0
    compare_file = tmp_path / "c" / "compare.json"
    saved = json.loads(compare_file.read_text())
    if file == "result.json":  # read when compare reuses a run it has no row for
        compare_file.write_text(json.dumps({**saved, "runs": saved["runs"][:1]}))
    run_dir = tmp_path / "c" / "runs" / "ape-seed1"
    path = run_dir / file
    path.write_bytes(damage(path.read_bytes()))

    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("error: ")]
    flat = " ".join(result.output.split())  # the one line, should rich have wrapped it
    assert str(path) in flat
    assert problem in flat, flat
    assert f"delete {run_dir} and rerun this compare (with ape in --strategies and seed 1)" in flat

    calls = fake.generate_calls
    shutil.rmtree(run_dir)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert fake.generate_calls == calls  # the run is made again from the cache
    rows = json.loads(compare_file.read_text())["runs"]
    assert [r["test_score"] for r in rows] == [r["test_score"] for r in saved["runs"]]
    assert rows[1]["cache_hits"] == rows[1]["calls"]
