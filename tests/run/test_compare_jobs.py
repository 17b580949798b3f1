"""`compare --jobs N` and `--ray`: cells in other processes give the sequential compare.json,
and a cell whose worker is killed resumes from its journal."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.core.domain import Budget
from promptopt.core.errors import ConfigError
from promptopt.llm.backend import register_backend, unregister_backend
from promptopt.llm.factory import parse_model_spec
from promptopt.run.compare import CompareSpec, run_compare
from promptopt.run.compare_jobs import run_local
from promptopt.strategies.base import Reporter, SilentReporter
from tests.plugin_backend import ParrotBackend

pytestmark = pytest.mark.usefixtures("data_dir", "isolated_cache")
TIMED = {"wall_s", "wall_s_mean"}
"""Wall times legitimately differ between runs; everything else must not."""


@pytest.fixture(autouse=True)
def parrot() -> Iterator[None]:
    register_backend(ParrotBackend)  # the workers register it again (compare_jobs.py)
    yield
    unregister_backend("parrot")


def grid(out_dir: Path) -> CompareSpec:
    """4 cells, no shared cache: every cell does its own calls wherever it runs."""
    return CompareSpec(
        task="antonyms",
        strategies=["ape", "reflexion"],
        out_dir=out_dir,
        seeds=[0, 1],
        budget=Budget(max_calls=40),
        params={"ape": {"num_subsamples": "2", "proposals_per_subsample": "2"}},
        target=parse_model_spec("parrot:plain"),
        proposer=parse_model_spec("parrot:upper"),
        sizes={"dev": 5, "test": 6},
        use_cache=False,
    )


def untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMED}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def test_jobs_2_writes_the_sequential_compare_json(tmp_path: Path) -> None:
    one = run_compare(grid(tmp_path / "one"))
    two = run_compare(grid(tmp_path / "two"), jobs=2)
    assert [(r["strategy"], r["seed"]) for r in two["runs"]] == [
        ("ape", 0), ("ape", 1), ("reflexion", 0), ("reflexion", 1)
    ]  # fmt: skip
    assert untimed(two) == untimed(one)
    assert json.loads((tmp_path / "two" / "compare.json").read_text()) == two


def test_a_killed_cell_resumes_from_its_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PARROT_CALLS_LOG", str(log))
    whole = run_compare(grid(tmp_path / "whole"), jobs=2)
    uninterrupted = sum(int(n) for n in log.read_text().split())
    log.unlink()
    die_at = 20
    monkeypatch.setenv("PARROT_DIE_AT", f"{die_at}:{tmp_path / 'died'}")
    killed = run_compare(grid(tmp_path / "killed"), jobs=2)
    assert (tmp_path / "died").is_file()  # one worker was killed mid-cell
    assert untimed(killed) == untimed(whole)
    # The rerun answered from the journal what the dead worker had done: without it
    # the calls before the kill would all be made twice.
    assert sum(int(n) for n in log.read_text().split()) < uninterrupted + die_at
    events = [
        (d / "events.jsonl").read_text()
        for d in (tmp_path / "killed" / "runs").iterdir()
        if d.is_dir()
    ]
    assert sum('"resumed"' in text for text in events) == 1


def test_a_cell_that_dies_twice_fails_naming_its_run_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = grid(tmp_path / "cmp")
    spec.strategies, spec.seeds = ["ape"], [0]
    monkeypatch.setenv("PARROT_DIE_AT", "1:/nonexistent-dir/marker")  # cannot mark: dies always
    with pytest.raises(ConfigError, match=r"cell ape-seed0 died twice .*ape-seed0/ and rerun"):
        run_compare(spec, jobs=2)


@pytest.fixture
def local_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """A local Ray instance of 2 CPUs for each run_compare(ray=True)."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    monkeypatch.setenv("PROMPTOPT_RAY_NUM_CPUS", "2")


@pytest.mark.usefixtures("local_ray")
def test_ray_writes_the_sequential_compare_json(tmp_path: Path) -> None:
    one = run_compare(grid(tmp_path / "one"))
    on_ray = run_compare(grid(tmp_path / "ray"), ray=True)
    assert untimed(on_ray) == untimed(one)


@pytest.mark.usefixtures("local_ray")
def test_ray_reruns_a_cell_whose_worker_died_and_it_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = run_compare(grid(tmp_path / "whole"))
    monkeypatch.setenv("PARROT_DIE_AT", f"20:{tmp_path / 'died'}")
    on_ray = run_compare(grid(tmp_path / "ray"), ray=True)
    assert (tmp_path / "died").is_file()  # a Ray worker process exited mid-cell
    assert untimed(on_ray) == untimed(whole)
    events = [(d / "events.jsonl").read_text() for d in (tmp_path / "ray" / "runs").iterdir()
              if d.is_dir()]  # fmt: skip
    assert sum('"resumed"' in text for text in events) == 1


def quick_or_stuck(spec: CompareSpec, strategy: str, seed: int, reporter: Reporter) -> dict:
    """A cell runner for spawned workers: cell "quick" ends at once, any other hangs."""
    if strategy != "quick":
        time.sleep(600)
    return {}


def test_ctrl_c_during_jobs_stops_every_worker(tmp_path: Path) -> None:
    spec = grid(tmp_path / "cmp")

    def interrupt(cell: tuple[str, int]) -> None:
        raise KeyboardInterrupt  # as if Ctrl-C arrived while the other cells ran

    cells = [("stuck", 0), ("quick", 0), ("stuck", 1)]
    with pytest.raises(KeyboardInterrupt):
        run_local(spec, cells, 2, SilentReporter(), quick_or_stuck, interrupt)
    assert multiprocessing.active_children() == []  # the stuck worker was ended, not left
