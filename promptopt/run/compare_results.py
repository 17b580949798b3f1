"""compare.json as typed records: the settings, one `RunRow` per strategy x seed,
the warnings and the leaderboard.

`to_dict` writes the keys in the order compare.json has always had, and
`from_dict` reads files older versions wrote (a run row without `cache_hits` or
`improved` predates them), so a rerun of `compare` in an old directory goes on
where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptopt.core.errors import ConfigError
from promptopt.core.files import read_utf8
from promptopt.core.versioned import format_version

COMPARE_FILE = "compare.json"
FORMAT = "promptopt.compare"
FORMAT_VERSION = 1


@dataclass
class RunRow:
    """One strategy x seed: its test scores and what its search cost."""

    strategy: str
    seed: int
    run_dir: str
    """Relative to the compare directory."""
    test_score: float
    test_n: int
    baseline_test_score: float
    calls: int
    cache_hits: int
    tokens: int
    wall_s: float
    cost_usd: float | None
    stopped_by_budget: bool
    improved: bool | None
    """Whether the search beat its starting prompt on dev (None: its export predates it)."""

    @classmethod
    def from_export(cls, export: dict[str, Any], strategy: str, seed: int, run_dir: str) -> RunRow:
        """The row of a search's export (checked by `compare_files.read_result`)."""
        usage = export["usage"]
        search = usage["search"]
        scores = export["scores"]
        cost = usage.get("cost") or {}
        timings = export.get("timings", {})
        improved = export.get("improved")
        return cls(
            strategy=strategy,
            seed=seed,
            run_dir=run_dir,
            test_score=float(scores["test"]["score"]),
            test_n=int(scores["test"]["n"]),
            baseline_test_score=float(scores["baseline_test"]["score"]),
            calls=int(search["calls"]),
            cache_hits=int(search.get("cache_hits", 0)),
            tokens=int(search["prompt_tokens"] + search["completion_tokens"]),
            wall_s=round(
                float(timings.get("search_s", 0)) + float(timings.get("test_eval_s", 0)), 2
            ),
            cost_usd=cost.get("total_usd"),
            stopped_by_budget=bool(export.get("stopped_by_budget", False)),
            improved=improved if isinstance(improved, bool) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRow:
        improved = data.get("improved")
        return cls(
            strategy=data["strategy"],
            seed=data["seed"],
            run_dir=str(data.get("run_dir", "")),
            test_score=data["test_score"],
            test_n=data.get("test_n", 0),
            baseline_test_score=data.get("baseline_test_score", 0.0),
            calls=data["calls"],
            cache_hits=data.get("cache_hits", 0),
            tokens=data["tokens"],
            wall_s=data.get("wall_s", 0.0),
            cost_usd=data.get("cost_usd"),
            stopped_by_budget=bool(data.get("stopped_by_budget", False)),
            improved=improved if isinstance(improved, bool) else None,
        )


@dataclass
class CompareResult:
    """What DIR/compare.json holds. The settings and the leaderboard rows stay JSON
    objects: `CompareSpec.settings` and `leaderboard.LeaderboardRow` own their keys."""

    task: str
    budget: dict[str, int | None]
    seeds: list[int]
    settings: dict[str, Any]
    runs: list[RunRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "task": self.task,
            "budget": self.budget,
            "seeds": self.seeds,
            "settings": self.settings,
            "runs": [run.to_dict() for run in self.runs],
            "warnings": self.warnings,
            "leaderboard": self.leaderboard,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompareResult:
        return cls(
            task=data.get("task", ""),
            budget=dict(data.get("budget") or {}),
            seeds=list(data.get("seeds") or []),
            settings=dict(data.get("settings") or {}),
            runs=[RunRow.from_dict(r) for r in data.get("runs") or [] if isinstance(r, dict)],
            warnings=list(data.get("warnings") or []),
            leaderboard=list(data.get("leaderboard") or []),
            format_version=int(data.get("format_version", 0)),
        )


def read_compare(out_dir: Path) -> CompareResult | None:
    """DIR/compare.json, or None when the directory holds none yet."""
    path = out_dir / COMPARE_FILE
    if not path.is_file():
        return None
    fix = "delete it (runs are kept) and rerun"
    try:
        data = json.loads(read_utf8(path, "comparison", fix))
    except json.JSONDecodeError:
        raise ConfigError(f"{path} is corrupt: {fix}") from None
    format_version(
        path,
        data,
        name=FORMAT,
        newest=FORMAT_VERSION,
        what="a promptopt comparison",
        fix="pick another --out-dir",
    )
    try:
        return CompareResult.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path} has a malformed run row ({exc}): {fix}") from None
