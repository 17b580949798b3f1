"""Type checks of the fields `eval` reads from an export, each failure one line.

A hand-edited or damaged export should fail when it is read, naming the field
and the type it needs, not with a traceback somewhere in scoring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptopt.core.errors import ConfigError
from promptopt.llm.factory import recordable_options

REEXPORT = "re-export it with `promptopt search`"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def bad_field(path: Path, field: str, expected: str, value: Any) -> ConfigError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return ConfigError(f"{path}: {field} must be {expected}, got {shown}: fix it, or {REEXPORT}")


def _optional(path: Path, data: dict[str, Any], key: str, where: str, kind: type) -> Any:
    """`data[key]` when it is absent, null or a `kind`; else a one-line error."""
    value = data.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        expected = {str: "a string", dict: "an object", list: "a list"}[kind]
        raise bad_field(path, f"{where}{key}", expected, value)
    return value


def check_prompt(path: Path, prompt: Any, where: str) -> None:
    """A prompt's texts are strings and its demonstrations examples (types only:
    `Prompt.from_dict` checks the values)."""
    if not isinstance(prompt, dict):
        raise bad_field(path, where, "an object", prompt)
    for key in ("instruction", "template"):
        if key in prompt and not isinstance(prompt[key], str):
            raise bad_field(path, f"{where}.{key}", "a string", prompt[key])
    demos = _optional(path, prompt, "demonstrations", f"{where}.", list) or []
    for i, demo in enumerate(demos):
        at = f"{where}.demonstrations[{i}]"
        if not isinstance(demo, dict):
            raise bad_field(path, at, "an object", demo)
        for key in ("input", "target"):
            if not isinstance(demo.get(key), str):
                raise bad_field(path, f"{at}.{key}", "a string", demo.get(key))
        _optional(path, demo, "demo_output", f"{at}.", str)
        for alias in _optional(path, demo, "aliases", f"{at}.", list) or []:
            if not isinstance(alias, str):
                raise bad_field(path, f"{at}.aliases", "a list of strings", alias)


def check_eval_fields(path: Path, data: dict[str, Any]) -> None:
    """The task, model and score fields `eval` reads, when present, have its types."""
    _optional(path, data, "kind", "", str)
    task = _optional(path, data, "task", "", dict) or {}
    _optional(path, task, "name", "task.", str)
    _optional(path, task, "ref", "task.", str)
    if "data_seed" in task and not is_int(task["data_seed"]):
        raise bad_field(path, "task.data_seed", "a whole number", task["data_seed"])
    for split, size in (_optional(path, task, "sizes", "task.", dict) or {}).items():
        if split not in ("train", "dev", "test"):
            raise bad_field(path, "task.sizes", "keyed by train, dev and test", split)
        if size is not None and not (is_int(size) and size >= 1):
            raise bad_field(path, f"task.sizes.{split}", "a whole number of at least 1", size)
    data_file = _optional(path, task, "data_file", "task.", dict)
    for key in ("path", "input_field", "target_field", "metric") if data_file else ():
        if not isinstance(data_file.get(key), str):
            raise bad_field(path, f"task.data_file.{key}", "a string", data_file.get(key))
    models = _optional(path, data, "models", "", dict) or {}
    target = _optional(path, models, "target", "models.", dict) or {}
    spec = _optional(path, target, "spec", "models.target.", dict)
    if spec is not None:
        recordable = recordable_options(spec.get("backend"))
        for key, value in spec.items():
            if key not in recordable:
                keys = ", ".join(recordable)
                raise bad_field(path, "models.target.spec", f"keyed by {keys}", key)
            kind, nullable = recordable[key]
            if kind is int:
                ok, expected = is_int(value), "a whole number"
            elif kind is float:
                ok, expected = _is_number(value) and 0 < value < float("inf"), "a positive number"
            else:
                ok, expected = isinstance(value, str), "a string"
            if not ok and not (value is None and nullable):
                raise bad_field(path, f"models.target.spec.{key}", expected, value)
        for key in ("backend", "model"):
            if key not in spec:
                raise bad_field(path, f"models.target.spec.{key}", "a string", None)
    scores = _optional(path, data, "scores", "", dict) or {}
    test = _optional(path, scores, "test", "scores.", dict) or {}
    if test.get("score") is not None and not _is_number(test["score"]):
        raise bad_field(path, "scores.test.score", "a number", test["score"])
    for i, member in enumerate(_optional(path, scores, "members_test", "scores.", list) or []):
        if not isinstance(member, dict) or not _is_number(member.get("score", 0)):
            raise bad_field(path, f"scores.members_test[{i}]", 'an object with a "score"', member)
