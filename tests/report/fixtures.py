"""Hand-made run and compare directories, in the shapes search and compare write.

Built by hand (no model, no search) so report tests are fast and can leave out
exactly the file a test is about.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TASK = "antonyms"
NASTY = "<script>alert('x')</script> & \"quotes\""
"""Text a model could write: it must reach the page escaped, never as markup."""


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def candidate_events(strategy: str, seed: int, count: int = 8) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"t": 1.0, "event": "started"}]
    for k in range(count):
        score = round(((k * 37 + seed * 11 + len(strategy) * 3) % 10) / 10, 2)
        events.append(
            {
                "t": 2.0 + k,
                "event": "candidate",
                "calls": 5 * (k + 1),
                "tokens": 400 * (k + 1),
                "instruction": f"{strategy} instruction {k}",
                "dev_score": score,
                "dev_n": 10,
                "origin": "proposed",
            }
        )
    events.append({"t": 20.0, "event": "finished", "calls": 5 * count, "tokens": 400 * count})
    return events


def test_rows(n: int, right_every: int, nasty: bool = False) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        right = i % right_every == 0
        rows.append(
            {
                "id": f"t{i}",
                "input": NASTY if nasty and i == 1 else f"word {i}",
                "target": f"opposite {i}",
                "output": f"opposite {i}" if right else f"guess {i}",
                "prediction": f"opposite {i}" if right else f"guess {i}",
                "score": 1.0 if right else 0.0,
            }
        )
    return rows


def result_json(strategy: str, seed: int, instruction: str, test: float) -> dict[str, Any]:
    return {
        "format": "promptopt.prompt",
        "format_version": 1,
        "prompt": {"instruction": instruction, "template": "Input: {input}\nOutput:"},
        "task": {"name": TASK, "ref": TASK, "sizes": {"test": 10}, "data_seed": 0},
        "scores": {
            "dev": {"score": 0.7, "n": 10},
            "test": {"score": test, "n": 10},
            "baseline_test": {"score": 0.2, "n": 10},
        },
        "models": {"target": {"spec": {"model": "embedded"}}},
        "strategy": {"name": strategy, "config": {}},
        "seed": seed,
        "usage": {
            "search": {
                "calls": 40,
                "prompt_tokens": 3000,
                "completion_tokens": 200,
                "cache_hits": 3,
            },
            "test_eval": {
                "calls": 20,
                "prompt_tokens": 900,
                "completion_tokens": 60,
                "cache_hits": 0,
            },
        },
        "timings": {"search_s": 12.5, "test_eval_s": 3.1},
        "stopped_by_budget": True,
        "leaderboard": [
            {"instruction": instruction, "dev_score": 0.7, "dev_n": 10, "origin": "proposed"},
            {"instruction": "Do the task.", "dev_score": 0.2, "dev_n": 10, "origin": "baseline"},
        ],
    }


def make_run(
    path: Path,
    strategy: str = "ape",
    seed: int = 0,
    *,
    candidates: bool = True,
    result: bool = True,
    examples: bool = True,
    nasty: bool = False,
    test: float = 0.6,
) -> Path:
    """A finished run directory; switch parts off to imitate older or broken runs."""
    path.mkdir(parents=True, exist_ok=True)
    write_json(
        path / "config.json",
        {
            "task": TASK,
            "strategy": strategy,
            "seed": seed,
            "target": {"backend": "hf", "model": "embedded"},
            "proposer": {"backend": "hf", "model": "embedded"},
            "budget": {"max_calls": 40, "max_tokens": None},
        },
    )
    events = candidate_events(strategy, seed) if candidates else [{"t": 1.0, "event": "started"}]
    (path / "events.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in events), encoding="utf-8"
    )
    instruction = NASTY if nasty else f"Write the opposite ({strategy})."
    if result:
        write_json(path / "result.json", result_json(strategy, seed, instruction, test))
    if examples:
        write_json(
            path / "test_examples.json",
            {"best": test_rows(10, 2, nasty), "baseline": test_rows(10, 5)},
        )
    return path


def vs_best(difference: float, significant: bool) -> dict[str, Any]:
    return {
        "method": "bootstrap",
        "n": 30,
        "new_mean": 0.4,
        "old_mean": 0.4 - difference,
        "difference": difference,
        "ci_low": difference - 0.1,
        "ci_high": difference + 0.1,
        "p_value": 0.012 if significant else 0.4,
        "alternative": "two-sided",
        "alpha": 0.05,
        "significant": significant,
    }


def make_compare(
    path: Path,
    strategies: tuple[str, ...] = ("ape", "reflexion", "rlprompt"),
    seeds: tuple[int, ...] = (0, 1, 2),
    *,
    missing_runs: tuple[str, ...] = (),
    candidates: bool = True,
) -> Path:
    """A compare directory: compare.json and runs/<strategy>-seed<k>/ run directories
    (those named in `missing_runs` are listed but not written)."""
    runs, board = [], []
    for index, strategy in enumerate(strategies):
        scores = []
        for seed in seeds:
            name = f"{strategy}-seed{seed}"
            test = round(0.7 - 0.2 * index + 0.05 * seed, 3)
            scores.append(test)
            if name not in missing_runs:
                make_run(path / "runs" / name, strategy, seed, candidates=candidates, test=test)
            runs.append(
                {
                    "strategy": strategy,
                    "seed": seed,
                    "run_dir": f"runs/{name}",
                    "test_score": test,
                    "test_n": 10,
                    "baseline_test_score": 0.2,
                    "calls": 40,
                    "tokens": 3200,
                    "wall_s": 12.5,
                    "cost_usd": None,
                    "stopped_by_budget": True,
                }
            )
        mean = sum(scores) / len(scores)
        board.append(
            {
                "strategy": strategy,
                "mean": mean,
                "sd": 0.05,
                "n_seeds": len(seeds),
                "calls_mean": 40.0,
                "tokens_mean": 3200.0,
                "wall_s_mean": 12.5,
                "cost_usd_mean": None,
                "best": index == 0,
                "vs_best": None if index == 0 else vs_best(-0.2 * index, significant=index > 1),
            }
        )
    write_json(
        path / "compare.json",
        {
            "format": "promptopt.compare",
            "format_version": 1,
            "task": TASK,
            "budget": {"max_calls": 40, "max_tokens": None},
            "seeds": list(seeds),
            "settings": {"test_size": 10, "model": "embedded"},
            "runs": runs,
            "leaderboard": board,
        },
    )
    return path


def add_start_row(path: Path, warnings: tuple[str, ...] = ()) -> Path:
    """Rewrite a make_compare directory's leaderboard the way compare now writes it:
    with the starting prompt's row and each strategy's test against it."""
    from promptopt.run.compare import (
        build_leaderboard,
        example_scores,
        pick_start_scores,
        start_example_scores,
    )

    data = json.loads((path / "compare.json").read_text(encoding="utf-8"))
    start, found = pick_start_scores(data["runs"], lambda r: start_example_scores(path, r))
    data["warnings"] = [*found, *warnings]
    data["leaderboard"] = build_leaderboard(data["runs"], lambda r: example_scores(path, r), start)
    write_json(path / "compare.json", data)
    return path
