"""The versioned JSON a search writes and `eval` reads back, as typed records.

It carries everything needed to re-score the prompt and to judge the number:
the prompt, the task and its split sizes, dev and test scores with their sample
sizes, models, strategy config, seed, usage and timings. Never credentials.

An ensemble (boosted prompt ensembles) is exported in the same format with
`"kind": "ensemble"` and an `"ensemble"` entry (members, vote rule, samples,
temperature, weights, seed) in place of `"prompt"`; an export without "kind"
is a single prompt, as every format 1 export before ensembles. The run's
result.json is the same export.

`Export.to_dict` writes the keys in the order exports have always had, so files
stay comparable across versions; `Export.from_dict` reads older exports too (any
part they lack is None or empty).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt import __version__
from promptopt.core.domain import Ensemble, EvalResult, Prompt
from promptopt.core.errors import ConfigError
from promptopt.core.files import read_utf8
from promptopt.core.versioned import format_version
from promptopt.data.task import looks_like_path
from promptopt.run.export_check import REEXPORT, bad_field, check_eval_fields, check_prompt

FORMAT = "promptopt.prompt"
FORMAT_VERSION = 1


def recorded_task(task_ref: str, data_file: dict[str, str] | None) -> tuple[str, dict | None]:
    """The task reference and data file as an export records them: file paths made
    absolute, so that `eval` finds them from any directory (a relative path only
    made sense in the directory the search ran in). Built-in task names stay names."""
    if data_file is not None:
        data_file = {**data_file, "path": _absolute(data_file["path"])}
        return _absolute(task_ref), data_file
    return (_absolute(task_ref) if looks_like_path(task_ref) else task_ref), None


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def locate_recorded(recorded: str, export_path: Path) -> Path:
    """Where a task or data file an export names is: as recorded (absolute, or
    relative to the current directory), else relative to the export's folder: an
    export written before paths were absolute holds them relative to the directory
    its search ran in, which is usually where `--out` put it. Returns the recorded
    path when neither exists."""
    path = Path(recorded).expanduser()
    if path.is_absolute() or path.exists():
        return path
    beside = export_path.parent / path
    return beside if beside.exists() else path


@dataclass(frozen=True)
class Score:
    """A mean score and the number of examples behind it."""

    score: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "n": self.n}

    @classmethod
    def of(cls, result: EvalResult) -> Score:
        return cls(result.score, result.n)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Score | None:
        if not isinstance(data, dict) or data.get("score") is None:
            return None
        return cls(float(data["score"]), int(data.get("n", 0)))


@dataclass
class TaskRecord:
    """The task as the search saw it: enough for `eval` to load the same test split."""

    name: str | None = None
    ref: str | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    data_seed: int = 0
    data_file: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ref": self.ref,
            "sizes": self.sizes,
            "data_seed": self.data_seed,
            "data_file": self.data_file,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TaskRecord:
        data = data or {}
        return cls(
            name=data.get("name"),
            ref=data.get("ref"),
            sizes=dict(data.get("sizes") or {}),
            data_seed=data.get("data_seed", 0),
            data_file=data.get("data_file"),
        )


@dataclass
class Scores:
    """Test scores of the exported prompt (or ensemble) and the starting prompt; a
    prompt has its dev score, an ensemble its vote's train-pool score and each
    member's test score."""

    test: Score | None = None
    baseline_test: Score | None = None
    dev: Score | None = None
    pool: Score | None = None
    members_test: list[Score] = field(default_factory=list)

    def to_dict(self, kind: str) -> dict[str, Any]:
        def shown(score: Score | None) -> dict[str, Any] | None:
            return score.to_dict() if score else None

        if kind == "ensemble":
            return {
                "pool": shown(self.pool),
                "test": shown(self.test),
                "baseline_test": shown(self.baseline_test),
                "members_test": [m.to_dict() for m in self.members_test],
            }
        return {
            "dev": shown(self.dev),
            "test": shown(self.test),
            "baseline_test": shown(self.baseline_test),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Scores:
        data = data or {}
        members = [Score.from_dict(m) for m in data.get("members_test") or []]
        return cls(
            test=Score.from_dict(data.get("test")),
            baseline_test=Score.from_dict(data.get("baseline_test")),
            dev=Score.from_dict(data.get("dev")),
            pool=Score.from_dict(data.get("pool")),
            members_test=[m for m in members if m is not None],
        )


@dataclass
class Export:
    """One search's result: what `--out` and the run's result.json hold.

    Exactly one of `prompt` and `ensemble` is set. The open-ended parts (models,
    strategy config and stats, usage, timings, leaderboard rows, the start guard's
    record) stay plain JSON objects: their keys belong to the modules that fill them.
    """

    task: TaskRecord
    scores: Scores
    prompt: Prompt | None = None
    ensemble: Ensemble | None = None
    models: dict[str, Any] = field(default_factory=dict)
    strategy: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    run_dir: str | None = None
    stopped_by_budget: bool = False
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    improved: bool | None = None
    """Whether the search beat its starting prompt on dev (None: an older export)."""
    start: dict[str, Any] | None = None
    """The start guard's record: source, prompt, dev score, rule, comparison, reason."""
    promptopt_version: str = __version__
    created: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    format_version: int = FORMAT_VERSION

    @property
    def kind(self) -> str:
        return "ensemble" if self.ensemble is not None else "prompt"

    def prompts(self) -> list[Prompt]:
        """The prompts this export sends to the model: its prompt, or its members."""
        if self.ensemble is not None:
            return list(self.ensemble.members)
        return [self.prompt] if self.prompt is not None else []

    def to_dict(self) -> dict[str, Any]:
        head: dict[str, Any] = {
            "format": FORMAT,
            "format_version": self.format_version,
            "promptopt_version": self.promptopt_version,
            "created": self.created,
        }
        if self.ensemble is not None:
            head |= {"kind": "ensemble", "ensemble": self.ensemble.to_dict()}
        else:
            head["prompt"] = self.prompt.to_dict() if self.prompt else None
        data = {
            **head,
            "task": self.task.to_dict(),
            "scores": self.scores.to_dict(self.kind),
            "models": self.models,
            "strategy": self.strategy,
            "seed": self.seed,
            "usage": self.usage,
            "timings": self.timings,
            "run_dir": self.run_dir,
            "stopped_by_budget": self.stopped_by_budget,
            "leaderboard": self.leaderboard,
        }
        if self.improved is not None:
            data["improved"] = self.improved
        if self.start is not None:
            data["start"] = self.start
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Export:
        """An export's JSON (checked by `load_export` when it comes from a file)."""
        ensemble = data.get("ensemble") if data.get("kind") == "ensemble" else None
        prompt = data.get("prompt") if ensemble is None else None
        improved = data.get("improved")
        return cls(
            task=TaskRecord.from_dict(data.get("task")),
            scores=Scores.from_dict(data.get("scores")),
            prompt=Prompt.from_dict(prompt) if prompt is not None else None,
            ensemble=Ensemble.from_dict(ensemble) if ensemble is not None else None,
            models=dict(data.get("models") or {}),
            strategy=dict(data.get("strategy") or {}),
            seed=data.get("seed"),
            usage=dict(data.get("usage") or {}),
            timings=dict(data.get("timings") or {}),
            run_dir=data.get("run_dir"),
            stopped_by_budget=bool(data.get("stopped_by_budget", False)),
            leaderboard=list(data.get("leaderboard") or []),
            improved=improved if isinstance(improved, bool) else None,
            start=data.get("start"),
            promptopt_version=str(data.get("promptopt_version", "")),
            created=str(data.get("created", "")),
            format_version=int(data.get("format_version", 0)),
        )


def write_export(path: Path, export: dict[str, Any] | Export) -> None:
    data = export.to_dict() if isinstance(export, Export) else export
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_export(path: Path) -> Export:
    """An exported prompt or ensemble, checked (`_checked_json`), as a typed record."""
    return Export.from_dict(_checked_json(path))


def _checked_json(path: Path) -> dict[str, Any]:
    """Load and validate an exported prompt's JSON; every failure is one clear line.

    Every field `eval` reads is checked here, with the type it needs, so that a
    hand-edited or damaged export fails now, naming the field, rather than with
    a traceback somewhere in scoring.
    """
    if not path.is_file():
        raise ConfigError(f"prompt file not found: {path}: pass the JSON `promptopt search` wrote")
    text = read_utf8(path, "prompt file", f"save it as UTF-8, or {REEXPORT}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    format_version(
        path,
        data,
        name=FORMAT,
        newest=FORMAT_VERSION,
        what="a promptopt prompt export",
        fix=REEXPORT,
    )
    check_eval_fields(path, data)
    kind = data.get("kind", "prompt")
    if kind == "ensemble":
        ensemble = data.get("ensemble")
        if not isinstance(ensemble, dict) or not isinstance(ensemble.get("members"), list):
            raise bad_field(path, "ensemble", 'an object with a "members" list', ensemble)
        for i, member in enumerate(ensemble["members"]):
            check_prompt(path, member, f"ensemble.members[{i}]")
        try:
            Ensemble.from_dict(ensemble)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path} has a malformed ensemble ({exc}): {REEXPORT}") from None
        return data
    if kind != "prompt":
        raise ConfigError(
            f'{path} holds an export of kind "{kind}", which this promptopt cannot read: upgrade'
        )
    if "prompt" not in data:
        raise ConfigError(f"{path} has a malformed prompt (missing 'prompt'): {REEXPORT}")
    check_prompt(path, data["prompt"], "prompt")
    try:
        Prompt.from_dict(data["prompt"])
    except KeyError as exc:
        raise ConfigError(f"{path} has a malformed prompt (missing {exc})") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path} has a malformed prompt ({exc}): {REEXPORT}") from None
    return data
