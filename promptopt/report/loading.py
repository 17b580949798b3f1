"""Read what a report shows from a run directory or a compare directory.

Reading is forgiving on purpose: a report is most wanted for runs that went
wrong (interrupted, written by an older promptopt, half-copied), so every file
but the one that says what the folder is may be missing or torn. Each gap
becomes a note the report prints where the missing part would be; only a path
that is neither kind of folder is an error.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.core.errors import ConfigError
from promptopt.core.versioned import format_version, refuse_newer
from promptopt.run.compare_results import COMPARE_FILE
from promptopt.run.compare_results import FORMAT as COMPARE_FORMAT
from promptopt.run.compare_results import FORMAT_VERSION as COMPARE_FORMAT_VERSION
from promptopt.run.export import FORMAT_VERSION as EXPORT_FORMAT_VERSION
from promptopt.run.store import load_events

logger = logging.getLogger(__name__)

RESULT_FILE = "result.json"
TEST_EXAMPLES_FILE = "test_examples.json"
RUN_MARKERS = ("config.json", "events.jsonl", RESULT_FILE)


@dataclass(frozen=True)
class CandidatePoint:
    """One "candidate" event: a prompt's dev score, known after `calls` model calls."""

    calls: int
    dev_score: float
    dev_n: int
    origin: str
    instruction: str


@dataclass
class RunData:
    path: Path
    config: dict[str, Any]
    result: dict[str, Any] | None
    test_examples: dict[str, list[dict[str, Any]]] | None
    candidates: list[CandidatePoint]
    notes: list[str] = field(default_factory=list)
    """Why a part of the report is missing, one sentence each."""

    @property
    def label(self) -> str:
        strategy = self.config.get("strategy") or _get(self.result, "strategy", "name") or "?"
        return f"{strategy} seed {self.config.get('seed', _get(self.result, 'seed'))}"


@dataclass
class CompareData:
    path: Path
    compare: dict[str, Any]
    runs: list[tuple[dict[str, Any], RunData | None]]
    """Each compare.json run entry with its loaded run directory (None: missing)."""
    notes: list[str] = field(default_factory=list)


def load(path: Path) -> RunData | CompareData:
    """A run or a compare directory; a file inside one (result.json,
    compare.json) stands for its folder."""
    if path.is_file() and path.name in (COMPARE_FILE, *RUN_MARKERS):
        path = path.parent
    if not path.exists():
        raise ConfigError(
            f"{path} does not exist: pass a run directory a search printed, "
            "or a directory `promptopt compare` wrote"
        )
    if (path / COMPARE_FILE).is_file():
        return load_compare(path)
    if any((path / name).is_file() for name in RUN_MARKERS):
        return load_run(path)
    raise ConfigError(
        f"{path} is neither a search run directory (no config.json, events.jsonl or "
        f"result.json) nor a compare directory (no {COMPARE_FILE}): pass the run directory "
        "a search printed, or a directory `promptopt compare` wrote"
    )


def load_run(path: Path) -> RunData:
    notes: list[str] = []
    config = _read_json(path / "config.json", notes, "the run's configuration") or {}
    result = _read_json(path / RESULT_FILE, notes, "final result (the search did not finish)")
    if isinstance(result, dict):
        refuse_newer(path / RESULT_FILE, result, EXPORT_FORMAT_VERSION)
    examples = _read_json(path / TEST_EXAMPLES_FILE, notes, "per-example test results")
    if examples is not None and not _valid_examples(examples):
        notes.append(f"{TEST_EXAMPLES_FILE} is not in the expected shape; it was ignored.")
        examples = None
    log = load_events(path)
    if log.unreadable:
        note = log.describe(path / "events.jsonl")
        logger.warning("warning: %s", note)
        notes.append(note[0].upper() + note[1:] + ".")
    candidates, skipped = _candidate_points(log.events)
    if skipped:
        notes.append(f"{skipped} candidate event(s) carry no call count and are not plotted.")
    return RunData(
        path=path,
        config=config if isinstance(config, dict) else {},
        result=result if isinstance(result, dict) else None,
        test_examples=examples,
        candidates=candidates,
        notes=notes,
    )


def load_compare(path: Path) -> CompareData:
    file = path / COMPARE_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{file} is unreadable ({exc}): rerun `promptopt compare`") from None
    format_version(
        file,
        data,
        name=COMPARE_FORMAT,
        newest=COMPARE_FORMAT_VERSION,
        what="a promptopt comparison",
        fix="pass a directory `promptopt compare` wrote",
    )
    notes: list[str] = []
    runs: list[tuple[dict[str, Any], RunData | None]] = []
    for entry in data.get("runs") or []:
        if not isinstance(entry, dict):
            continue
        run_dir = path / str(entry.get("run_dir", ""))
        if entry.get("run_dir") and run_dir.is_dir():
            runs.append((entry, load_run(run_dir)))
        else:
            notes.append(
                f"run directory of {entry.get('strategy')} seed {entry.get('seed')} "
                f"({entry.get('run_dir')}) is missing; its search curve is not shown."
            )
            runs.append((entry, None))
    return CompareData(path=path, compare=data, runs=runs, notes=notes)


def failed_examples(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Test examples without full credit (partial F1 counts as failed, as in boosting)."""
    return [r for r in rows if _number(r.get("score"), 0.0) < 1.0 - 1e-9]


def _candidate_points(events: list[dict[str, Any]]) -> tuple[list[CandidatePoint], int]:
    points, skipped = [], 0
    for event in events:
        if event.get("event") != "candidate":
            continue
        calls = event.get("calls")
        score = event.get("dev_score")
        if not _finite(calls) or not _finite(score):
            skipped += 1
            continue
        points.append(
            CandidatePoint(
                calls=int(calls),
                dev_score=float(score),
                dev_n=int(_number(event.get("dev_n"), 0)),
                origin=str(event.get("origin", "")),
                instruction=str(event.get("instruction", "")),
            )
        )
    return points, skipped


def _read_json(file: Path, notes: list[str], what: str) -> Any:
    if not file.is_file():
        notes.append(f"No {file.name}: the {what} cannot be shown.")
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        notes.append(f"{file.name} is unreadable or torn: the {what} cannot be shown.")
        return None


def _valid_examples(data: Any) -> bool:
    return isinstance(data, dict) and all(
        isinstance(data.get(k, []), list) and all(isinstance(r, dict) for r in data.get(k, []))
        for k in ("best", "baseline")
    )


def _finite(value: Any) -> bool:
    """A number JSON can hold that int() and float() take (not NaN, not Infinity)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any, default: float) -> float:
    return float(value) if _finite(value) else default


def _get(data: dict[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
