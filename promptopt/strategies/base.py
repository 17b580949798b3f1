"""What every strategy receives and returns, and helpers they share.

A strategy proposes prompts and asks the shared evaluator for scores; it never
scores a prompt with a model on its own, so caching, budgets and accounting
hold everywhere.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from promptopt.core.domain import Budget, Candidate, Ensemble, Prompt, Usage
from promptopt.core.errors import ConfigError, did_you_mean
from promptopt.data.task import Task
from promptopt.evaluation.evaluator import Evaluator
from promptopt.llm.base import LLM
from promptopt.run.store import RunStore


class Reporter(Protocol):
    """Progress sink: the CLI draws bars from it; the library default is silent."""

    def phase(self, description: str, total: int | None = None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def note(self, message: str) -> None: ...


class SilentReporter:
    def phase(self, description: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, message: str) -> None:
        pass


@dataclass
class SearchContext:
    task: Task
    evaluator: Evaluator
    proposer: LLM
    seed: int
    store: RunStore
    reporter: Reporter = field(default_factory=SilentReporter)
    proposer_base: LLM | None = None
    """The proposer without cache/meter layers, for what strategies read of a local
    model itself (RLPrompt trains a policy on its weights, InstructZero reads its
    embedding size); their model calls still go through `proposer`'s layers."""
    usage: Usage = field(default_factory=Usage)
    """The search's usage counter (shared by every layer)."""
    budget: Budget = field(default_factory=Budget)
    start: Prompt | None = None
    """The prompt the user starts from (`--start`, else the task's baseline). Every
    strategy enters it as a candidate; `run_search` keeps it unless a candidate
    beats it on dev by more than noise."""
    so_far: Callable[[], SearchResult | None] | None = None
    """Set by a strategy as its search starts: builds its result from what it has
    scored so far, None while nothing is. The budget's end is caught in one place,
    `run_search`, which finishes the run with this result, so a strategy has no
    stop handling of its own."""

    @property
    def start_prompt(self) -> Prompt:
        return self.start if self.start is not None else self.task.baseline_prompt()

    def calls_left(self) -> int | None:
        """Calls the budget still allows this phase (None: no call cap)."""
        if self.budget.max_calls is None:
            return None
        return max(0, self.budget.max_calls - self.usage.calls - self.usage.held_back_calls)

    def record_candidate(self, instruction: str, dev_score: float, dev_n: int, origin: str) -> None:
        """Log a candidate's dev score the moment it is known, in one shape for every
        strategy: the event carries the calls and tokens spent so far, which is what a
        report plots (score against model calls) without knowing any strategy's own
        events. Record again when a candidate is rescored on more dev examples."""
        self.store.event(
            "candidate",
            instruction=instruction,
            dev_score=float(dev_score),
            dev_n=int(dev_n),
            origin=origin,
        )

    def rng(self, stream: str) -> random.Random:
        """An independent, seeded random stream per purpose (no global state)."""
        return random.Random(f"{self.seed}:{stream}")


@dataclass
class SearchResult:
    candidates: list[Candidate]
    """Every candidate considered, best first."""
    stopped_by_budget: bool = False
    ensemble: Ensemble | None = None
    """Set by strategies whose answer is an ensemble (boosted): it is what is
    scored on test and exported; `candidates` are then its members, in order."""
    ensemble_score: tuple[float, int] | None = None
    """The ensemble's (score, n) on the data the strategy measured it on (boosted:
    its vote on the train pool), if it did."""
    stats: dict[str, Any] = field(default_factory=dict)
    """What the strategy tells about its own search, exported under `strategy.stats`
    (InstructZero: how many distinct instructions its soft prompts wrote)."""

    @property
    def best(self) -> Candidate:
        return self.candidates[0]


@dataclass(frozen=True)
class CallBound:
    """A search's model calls at most, from its config alone (duplicates and early
    stops only lower them): what `--dry-run` reports for a strategy it cannot run
    against a stand-in model."""

    target_calls: int
    writer_calls: int
    notes: tuple[str, ...] = ()


class Strategy(Protocol):
    """A search method. One that picks demonstrations itself sets
    `chooses_demonstrations = True`; the others are followed by the demonstration
    stage (`demo_stage`), which crosses their best instructions with demo sets.

    For `--dry-run`, a strategy is run against an instant stand-in model, unless it
    needs the real one: then it has `project(config, dev_n) -> CallBound`. A caveat
    about the simulated path goes in `dry_run_note`.
    """

    name: str
    Config: type

    def search(self, ctx: SearchContext, config: Any) -> SearchResult: ...


def knob(default: Any, help: str) -> Any:
    """A config field with its help text, shown by `promptopt strategies show`."""
    return field(default=default, metadata={"help": help})


def build_config(config_cls: type, params: dict[str, str]) -> Any:
    """Typed config from `--param key=value` strings, with did-you-mean errors."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    values: dict[str, Any] = {}
    for key, raw in params.items():
        if key not in fields:
            raise ConfigError(
                f"unknown parameter '{key}'{did_you_mean(key, list(fields))}: "
                "see `promptopt strategies show <strategy>`"
            )
        values[key] = _parse_value(key, raw, fields[key].default)
    return config_cls(**values)


def _parse_value(key: str, raw: str, default: Any) -> Any:
    kind: Callable[[str], Any] = type(default) if default is not None else str
    try:
        if isinstance(default, bool):
            if raw.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError
            return raw.lower() in {"true", "1", "yes"}
        value = kind(raw)
    except ValueError:
        raise ConfigError(
            f"parameter '{key}' expects {type(default).__name__}, got '{raw}'"
        ) from None
    if isinstance(value, float) and not math.isfinite(value):
        # float() reads 'nan' and 'inf'; no knob means anything by them, and a NaN
        # slips through every range check written as `value < low`.
        raise ConfigError(
            f"{key} must be a finite number, got '{raw}': "
            f"pass e.g. -p {key}={default} (the default)"
        )
    return value


def check_range(
    config: Any,
    names: str | Sequence[str],
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
) -> None:
    """Refuse knobs outside their range when the config is made, in one line naming
    the knob, its value and the range.

    Caught later, a bad value is a traceback deep in a search, or a search that
    never ends (`halving_start=0` never grew its subset and filled the disk with
    events). NaN and infinity are refused here too, for configs built in Python,
    which `build_config`'s finite check does not see. With no bounds given it only
    checks that a float is finite.
    """
    for name in [names] if isinstance(names, str) else names:
        value = getattr(config, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"{name} must be a finite number, got {value!r}: {_range_fix(config, name)}"
            )
        inside = (
            (at_least is None or value >= at_least)
            and (above is None or value > above)
            and (at_most is None or value <= at_most)
        )
        if not inside:
            allowed = _describe_range(at_least, above, at_most)
            raise ConfigError(
                f"{name} must be {allowed}, got {value!r}: {_range_fix(config, name)}"
            )


def _describe_range(at_least: float | None, above: float | None, at_most: float | None) -> str:
    low = f"at least {at_least:g}" if at_least is not None else None
    low = f"above {above:g}" if above is not None else low
    if low is not None and at_most is not None:
        if at_least is not None:
            return f"between {at_least:g} and {at_most:g}"
        return f"{low} and at most {at_most:g}"
    if at_most is not None:
        return f"at most {at_most:g}"
    return low or "a finite number"


def _range_fix(config: Any, name: str) -> str:
    """The fix: a value that is known to work, the knob's default."""
    default = next(f.default for f in dataclasses.fields(config) if f.name == name)
    return f"pass e.g. -p {name}={default} (the default)"


def config_table(config_cls: type) -> list[tuple[str, str, str]]:
    """(name, default, help) for every knob of a strategy."""
    return [
        (f.name, repr(f.default), f.metadata.get("help", ""))
        for f in dataclasses.fields(config_cls)
    ]


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Best first: higher dev score, then more dev evidence."""
    return sorted(candidates, key=lambda c: (c.dev_score, c.dev_n), reverse=True)
