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
from promptopt.core.domain import Ensemble, EvalResult, Prompt
from promptopt.core.errors import ConfigError
from promptopt.core.files import read_utf8
from promptopt.data.task import Task, looks_like_path
from promptopt.llm.factory import recordable_options

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
    """Load and validate an exported prompt; every failure is one clear line.

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
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f'{path} is not a promptopt prompt export (no "format": "{FORMAT}")')
    version = data.get("format_version", 0)
    if not _is_int(version):
        raise _bad_field(path, "format_version", "a whole number", version)
    if version > FORMAT_VERSION:
        raise ConfigError(f"{path} was written by a newer promptopt (format {version}): upgrade")
    _check_eval_fields(path, data)
    kind = data.get("kind", "prompt")
    if kind == "ensemble":
        ensemble = data.get("ensemble")
        if not isinstance(ensemble, dict) or not isinstance(ensemble.get("members"), list):
            raise _bad_field(path, "ensemble", 'an object with a "members" list', ensemble)
        for i, member in enumerate(ensemble["members"]):
            _check_prompt(path, member, f"ensemble.members[{i}]")
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
    _check_prompt(path, data["prompt"], "prompt")
    try:
        Prompt.from_dict(data["prompt"])
    except KeyError as exc:
        raise ConfigError(f"{path} has a malformed prompt (missing {exc})") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path} has a malformed prompt ({exc}): {REEXPORT}") from None
    return data


REEXPORT = "re-export it with `promptopt search`"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bad_field(path: Path, field: str, expected: str, value: Any) -> ConfigError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return ConfigError(f"{path}: {field} must be {expected}, got {shown}: fix it, or {REEXPORT}")


def _optional(path: Path, data: dict[str, Any], key: str, where: str, kind: type) -> Any:
    """`data[key]` when it is absent, null or a `kind`; else a one-line error."""
    value = data.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        expected = {str: "a string", dict: "an object", list: "a list"}[kind]
        raise _bad_field(path, f"{where}{key}", expected, value)
    return value


def _check_prompt(path: Path, prompt: Any, where: str) -> None:
    """A prompt's texts are strings and its demonstrations examples (types only:
    `Prompt.from_dict` checks the values)."""
    if not isinstance(prompt, dict):
        raise _bad_field(path, where, "an object", prompt)
    for key in ("instruction", "template"):
        if key in prompt and not isinstance(prompt[key], str):
            raise _bad_field(path, f"{where}.{key}", "a string", prompt[key])
    demos = _optional(path, prompt, "demonstrations", f"{where}.", list) or []
    for i, demo in enumerate(demos):
        at = f"{where}.demonstrations[{i}]"
        if not isinstance(demo, dict):
            raise _bad_field(path, at, "an object", demo)
        for key in ("input", "target"):
            if not isinstance(demo.get(key), str):
                raise _bad_field(path, f"{at}.{key}", "a string", demo.get(key))
        _optional(path, demo, "demo_output", f"{at}.", str)
        for alias in _optional(path, demo, "aliases", f"{at}.", list) or []:
            if not isinstance(alias, str):
                raise _bad_field(path, f"{at}.aliases", "a list of strings", alias)


def _check_eval_fields(path: Path, data: dict[str, Any]) -> None:
    """The task, model and score fields `eval` reads, when present, have its types."""
    _optional(path, data, "kind", "", str)
    task = _optional(path, data, "task", "", dict) or {}
    _optional(path, task, "name", "task.", str)
    _optional(path, task, "ref", "task.", str)
    if "data_seed" in task and not _is_int(task["data_seed"]):
        raise _bad_field(path, "task.data_seed", "a whole number", task["data_seed"])
    for split, size in (_optional(path, task, "sizes", "task.", dict) or {}).items():
        if split not in ("train", "dev", "test"):
            raise _bad_field(path, "task.sizes", "keyed by train, dev and test", split)
        if size is not None and not (_is_int(size) and size >= 1):
            raise _bad_field(path, f"task.sizes.{split}", "a whole number of at least 1", size)
    data_file = _optional(path, task, "data_file", "task.", dict)
    for key in ("path", "input_field", "target_field", "metric") if data_file else ():
        if not isinstance(data_file.get(key), str):
            raise _bad_field(path, f"task.data_file.{key}", "a string", data_file.get(key))
    models = _optional(path, data, "models", "", dict) or {}
    target = _optional(path, models, "target", "models.", dict) or {}
    spec = _optional(path, target, "spec", "models.target.", dict)
    if spec is not None:
        defaults = recordable_options(spec.get("backend"))
        for key, value in spec.items():
            if key not in defaults:
                raise _bad_field(path, "models.target.spec", f"keyed by {', '.join(defaults)}", key)
            default = defaults[key]
            if isinstance(default, int) and not isinstance(default, bool):
                ok, expected = _is_int(value), "a whole number"
            elif isinstance(default, float):
                ok, expected = _is_number(value) and 0 < value < float("inf"), "a positive number"
            else:
                ok, expected = isinstance(value, str), "a string"
            if not ok and not (value is None and default is None):
                raise _bad_field(path, f"models.target.spec.{key}", expected, value)
        for key in ("backend", "model"):
            if key not in spec:
                raise _bad_field(path, f"models.target.spec.{key}", "a string", None)
    scores = _optional(path, data, "scores", "", dict) or {}
    test = _optional(path, scores, "test", "scores.", dict) or {}
    if test.get("score") is not None and not _is_number(test["score"]):
        raise _bad_field(path, "scores.test.score", "a number", test["score"])
    for i, member in enumerate(_optional(path, scores, "members_test", "scores.", list) or []):
        if not isinstance(member, dict) or not _is_number(member.get("score", 0)):
            raise _bad_field(path, f"scores.members_test[{i}]", 'an object with a "score"', member)
