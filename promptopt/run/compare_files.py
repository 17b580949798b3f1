"""Reading what the runs of a comparison left on disk: result.json and test_examples.json.

A run directory may be half-copied, truncated by a full disk or edited by hand;
each damaged file is one line naming it and how to redo that run (delete its
directory and rerun the compare), never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from promptopt.core.errors import ConfigError
from promptopt.core.files import read_utf8
from promptopt.core.versioned import refuse_newer
from promptopt.run.export import FORMAT_VERSION
from promptopt.run.search import TEST_EXAMPLES_FILE


def is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def rerun_fix(out_dir: Path, run: dict[str, Any]) -> str:
    """How to get past a damaged file of a run: a compare runs a cell whose run
    directory is gone again (from the call cache, if it still holds the calls)."""
    strategy, seed = run["strategy"], run["seed"]
    return (
        f"delete {out_dir / run['run_dir']} and rerun this compare "
        f"(with {strategy} in --strategies and seed {seed}): that run is made again"
    )


def read_run_file(path: Path, fix: str) -> Any:
    """The JSON of a file a run wrote: a truncated, non-UTF-8 or garbled one (a disk
    that filled, a copy that stopped) is one line naming it and `fix`, not a traceback."""
    text = read_utf8(path, "run file", fix)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is damaged (not valid JSON: {exc.msg}, line {exc.lineno}): {fix}"
        ) from None


RESULT_NUMBERS = (
    "usage.search.calls",
    "usage.search.prompt_tokens",
    "usage.search.completion_tokens",
    "scores.test.score",
    "scores.test.n",
    "scores.baseline_test.score",
)
"""What a compare row needs of a run's result.json (`run_row`), all numbers."""
OPTIONAL_NUMBERS = ("usage.search.cache_hits", "timings.search_s", "timings.test_eval_s")


def read_result(path: Path, fix: str) -> dict[str, Any]:
    """A run's result.json with the fields `run_row` reads, of the types it needs."""
    export = read_run_file(path, fix)
    if not isinstance(export, dict):
        raise ConfigError(f"{path} is damaged (not a JSON object): {fix}")
    refuse_newer(path, export, FORMAT_VERSION)
    for dotted in RESULT_NUMBERS + OPTIONAL_NUMBERS:
        value = _field(export, dotted)
        if not is_num(value) and not (value is None and dotted in OPTIONAL_NUMBERS):
            raise _wrong_field(path, dotted, "a number", value, fix)
    cost = _field(export, "usage.cost")
    if cost is not None and not isinstance(cost, dict):
        raise _wrong_field(path, "usage.cost", "an object", cost, fix)
    total = (cost or {}).get("total_usd")
    if total is not None and not is_num(total):
        raise _wrong_field(path, "usage.cost.total_usd", "a number", total, fix)
    return export


def _field(data: dict[str, Any], dotted: str) -> Any:
    """`data` at a dotted path; None where a level is missing or not an object."""
    value: Any = data
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _wrong_field(path: Path, dotted: str, expected: str, value: Any, fix: str) -> ConfigError:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return ConfigError(f"{path} is damaged ({dotted} must be {expected}, got {shown}): {fix}")


def _example_rows(out_dir: Path, run: dict[str, Any], which: str) -> dict[str, float]:
    path = out_dir / run["run_dir"] / TEST_EXAMPLES_FILE
    if not path.is_file():
        return {}
    fix = rerun_fix(out_dir, run)
    data = read_run_file(path, fix)
    rows = data.get(which) if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(rows, list | None):
        raise _wrong_field(path, which, "a list of test examples", rows, fix)
    scores: dict[str, float] = {}
    for i, row in enumerate(rows or []):
        if not isinstance(row, dict) or "id" not in row or not is_num(row.get("score")):
            raise _wrong_field(path, f"{which}[{i}]", 'an object with "id" and "score"', row, fix)
        scores[str(row["id"])] = float(row["score"])
    return scores


def example_scores(out_dir: Path, run: dict[str, Any]) -> dict[str, float]:
    """Per test example scores of a run's best prompt, keyed by example id."""
    return _example_rows(out_dir, run, "best")


def start_example_scores(out_dir: Path, run: dict[str, Any]) -> dict[str, float]:
    """Per test example scores of a run's starting prompt ({} for runs that predate them)."""
    return _example_rows(out_dir, run, "baseline")
