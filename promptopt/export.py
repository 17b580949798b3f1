"""The versioned JSON a search writes and `eval` reads back.

It carries everything needed to re-score the prompt and to judge the number:
the prompt, the task and its split sizes, dev and test scores with their sample
sizes, models, strategy config, seed, usage and timings. Never credentials.

An ensemble (boosted prompt ensembles) is exported in the same format with
`"kind": "ensemble"` and an `"ensemble"` entry (members, vote rule, samples,
temperature, weights, seed) in place of `"prompt"`; an export without "kind"
is a single prompt, as every format 1 export before ensembles.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from promptopt import __version__
from promptopt.errors import ConfigError
from promptopt.task import Task
from promptopt.types import Ensemble, EvalResult, Prompt

FORMAT = "promptopt.prompt"
FORMAT_VERSION = 1


def prompt_export(
    *,
    prompt: Prompt,
    task: Task,
    task_ref: str,
    sizes: dict[str, int],
    data_seed: int,
    data_file: dict[str, str] | None,
    dev: tuple[float, int],
    test: EvalResult,
    baseline_test: EvalResult,
    models: dict[str, Any],
    strategy: dict[str, Any],
    seed: int,
    usage: dict[str, Any],
    timings: dict[str, float],
    run_dir: str,
    stopped_by_budget: bool,
    leaderboard: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "promptopt_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "prompt": prompt.to_dict(),
        "task": {
            "name": task.name,
            "ref": task_ref,
            "sizes": sizes,
            "data_seed": data_seed,
            "data_file": data_file,
        },
        "scores": {
            "dev": {"score": dev[0], "n": dev[1]},
            "test": test.to_dict(),
            "baseline_test": baseline_test.to_dict(),
        },
        "models": models,
        "strategy": strategy,
        "seed": seed,
        "usage": usage,
        "timings": timings,
        "run_dir": run_dir,
        "stopped_by_budget": stopped_by_budget,
        "leaderboard": leaderboard,
    }


def ensemble_export(
    *,
    ensemble: Ensemble,
    pool: tuple[float, int] | None,
    test: EvalResult,
    member_tests: list[EvalResult],
    **fields: Any,
) -> dict[str, Any]:
    """An ensemble's export: `prompt_export`'s fields (but `prompt` and `dev`), with
    the ensemble, its vote's score on the strategy's train pool, and each member's
    test score (its own vote over its samples)."""
    base = prompt_export(prompt=ensemble.members[0], dev=(0.0, 0), test=test, **fields)
    data: dict[str, Any] = {}
    for key, value in base.items():
        if key == "prompt":
            data["kind"] = "ensemble"
            data["ensemble"] = ensemble.to_dict()
        elif key == "scores":
            data["scores"] = {
                "pool": {"score": pool[0], "n": pool[1]} if pool else None,
                "test": value["test"],
                "baseline_test": value["baseline_test"],
                "members_test": [r.to_dict() for r in member_tests],
            }
        else:
            data[key] = value
    return data


def write_export(path: Path, export: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(export, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_export(path: Path) -> dict[str, Any]:
    """Load and validate an exported prompt; every failure is one clear line."""
    if not path.is_file():
        raise ConfigError(f"prompt file not found: {path}: pass the JSON `promptopt search` wrote")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f'{path} is not a promptopt prompt export (no "format": "{FORMAT}")')
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise ConfigError(
            f"{path} was written by a newer promptopt (format {data['format_version']}): upgrade"
        )
    kind = data.get("kind", "prompt")
    if kind == "ensemble":
        try:
            Ensemble.from_dict(data["ensemble"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path} has a malformed ensemble ({exc})") from None
        return data
    if kind != "prompt":
        raise ConfigError(
            f'{path} holds an export of kind "{kind}", which this promptopt cannot read: upgrade'
        )
    try:
        Prompt.from_dict(data["prompt"])
    except KeyError as exc:
        raise ConfigError(f"{path} has a malformed prompt (missing {exc})") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path} has a malformed prompt ({exc}): re-export it with `promptopt search`"
        ) from None
    return data
