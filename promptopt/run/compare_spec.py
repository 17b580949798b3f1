"""What a comparison runs (strategies x seeds at one budget, task split and models),
and the check that a later compare in the same directory runs like runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.core.domain import Budget
from promptopt.core.errors import ConfigError
from promptopt.llm.factory import ModelSpec, default_model_spec, model_identity
from promptopt.run.search import SearchSpec
from promptopt.strategies.demo_stage import DEFAULT_DEMO_SETS

FIXED_SETTINGS = (
    "task",
    "budget",
    "sizes",
    "data_seed",
    "target",
    "proposer",
    "start",
    "demo_format",
    "demo_sets",
)
"""What must match for a later compare in the same DIR (params are checked per strategy).
Seeds may grow: `--seeds 5` after `--seeds 3` runs seeds 3 and 4 of the strategies given."""


@dataclass
class CompareSpec:
    task: str
    strategies: list[str]
    out_dir: Path
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budget: Budget = field(default_factory=Budget)
    params: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per-strategy parameters: {"ape": {"num_subsamples": "2"}}."""
    target: ModelSpec = field(default_factory=default_model_spec)
    proposer: ModelSpec = field(default_factory=default_model_spec)
    sizes: dict[str, int] = field(default_factory=dict)
    data_seed: int = 0
    use_cache: bool = True
    prices: str | None = None
    start: str | None = None
    """`--start` for every run: an export, a text file or an instruction."""
    demo_format: str | None = None
    demo_sets: int = DEFAULT_DEMO_SETS

    def settings(self) -> dict[str, Any]:
        return {
            "sizes": dict(sorted(self.sizes.items())),
            "data_seed": self.data_seed,
            "target": self.target.resolved().to_dict(),
            "proposer": self.proposer.resolved().to_dict(),
            "params": {s: dict(sorted(p.items())) for s, p in sorted(self.params.items())},
            "use_cache": self.use_cache,
            "start": self.start,
            "demo_format": self.demo_format,
            "demo_sets": self.demo_sets,
        }

    def search_spec(self, strategy: str, seed: int, run_dir: Path) -> SearchSpec:
        return SearchSpec(
            task=self.task,
            strategy=strategy,
            params=dict(self.params.get(strategy, {})),
            seed=seed,
            target=self.target,
            proposer=self.proposer,
            sizes=dict(self.sizes),
            data_seed=self.data_seed,
            budget=self.budget,
            run_dir=run_dir,
            use_cache=self.use_cache,
            prices=self.prices,
            start=self.start,
            demo_format=self.demo_format,
            demo_sets=self.demo_sets,
        )


def parse_strategy_params(values: dict[str, str], strategies: list[str]) -> dict[str, dict]:
    """`-p strategy.key=value` pairs (already split at '=') into per-strategy params."""
    out: dict[str, dict[str, str]] = {}
    for key, value in values.items():
        strategy, dot, name = key.partition(".")
        if not dot or not name:
            raise ConfigError(
                f"compare parameters name their strategy: write -p ape.{key}={value}, "
                f"not -p {key}={value}"
            )
        if strategy not in strategies:
            raise ConfigError(
                f"-p {key}={value} is for '{strategy}', which is not in --strategies: "
                "add it or drop the parameter"
            )
        out.setdefault(strategy, {})[name] = value
    return out


def run_dir_name(strategy: str, seed: int) -> str:
    return f"{strategy}-seed{seed}"


def budget_dict(budget: Budget) -> dict[str, int | None]:
    return {"max_calls": budget.max_calls, "max_tokens": budget.max_tokens}


def _fixed(data: dict[str, Any]) -> dict[str, Any]:
    settings = data.get("settings", {})
    return {
        "task": data.get("task"),
        "budget": data.get("budget"),
        **{k: settings.get(k) for k in ("sizes", "data_seed")},
        # A model's timeout and concurrency may differ between compares: not its identity.
        **{k: model_identity(settings.get(k)) for k in ("target", "proposer")},
        "start": settings.get("start"),
        "demo_format": settings.get("demo_format"),
        # Compares saved before the demonstration stage existed ran without it.
        "demo_sets": settings.get("demo_sets", 0),
    }


OPTION_OF = {
    "task": "--task",
    "budget": "--budget/--budget-tokens",
    "sizes": "--train-size/--dev-size/--test-size",
    "data_seed": "--data-seed",
    "target": "--model",
    "proposer": "--proposer",
    "start": "--start",
    "demo_format": "--demo-format",
    "demo_sets": "--demo-sets",
}


def check_compatible(saved: dict[str, Any], new: dict[str, Any], out_dir: Path) -> None:
    """Refuse to mix unlike runs in one compare directory (one line, naming the fix)."""
    old_fixed, new_fixed = _fixed(saved), _fixed(new)
    for key in FIXED_SETTINGS:
        if old_fixed[key] != new_fixed[key]:
            raise ConfigError(
                f"{out_dir} holds a comparison made with {key}={old_fixed[key]!r}, not "
                f"{new_fixed[key]!r}: rerun with the same {OPTION_OF[key]} "
                "or pick another --out-dir"
            )
    old_params = saved.get("settings", {}).get("params", {})
    new_params = new.get("settings", {}).get("params", {})
    done = {r["strategy"] for r in saved.get("runs", [])}
    for strategy in done & set(new_params) | done & set(old_params):
        if strategy in new_params and old_params.get(strategy, {}) != new_params[strategy]:
            raise ConfigError(
                f"{out_dir} ran {strategy} with parameters {old_params.get(strategy, {})!r}, "
                f"not {new_params[strategy]!r}: use the same -p {strategy}.KEY=VALUE "
                "or pick another --out-dir"
            )
