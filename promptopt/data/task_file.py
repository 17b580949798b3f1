"""Reading a task YAML file: its keys checked strictly, each block parsed.

Apart from `promptopt.data.task`, which builds the `Task` from these parts, so
each error here can name the file's key and the fix without knowing the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from promptopt.core.errors import ConfigError, did_you_mean
from promptopt.core.files import read_utf8
from promptopt.data.task_data import Source

Split = Literal["train", "dev", "test"]
SPLITS: tuple[Split, ...] = ("train", "dev", "test")
SOURCE_KINDS = ("jsonl", "instruction_induction", "tsv_classification")


@dataclass(frozen=True)
class GenerationSettings:
    """How much a task lets the model write, and where an answer ends."""

    max_tokens: int = 32
    stop: tuple[str, ...] = ("\n",)


TOP_KEYS = (
    "name",
    "description",
    "source",
    "fields",
    "template",
    "baseline_instruction",
    "scorer",
    "label_words",
    "scoring_mode",
    "generation",
    "sizes",
    "fewshot_seed",
    "demo_format",
)
SOURCE_KEYS = ("kind", "train", "dev", "test", "dev_from", "adapter", "hf")
FIELD_KEYS = ("input", "target", "target_transform", "demo")
GENERATION_KEYS = ("max_tokens", "stop")
HF_KEYS = ("id", "config", "splits")


class TaskFileError(Exception):
    """A problem inside a task file; `load_task` adds the file name."""


def check_keys(block: Any, allowed: Sequence[str], where: str) -> dict[str, Any]:
    if not isinstance(block, dict):
        raise TaskFileError(f"'{where}' must be a mapping of keys to values")
    for key in block:
        if key not in allowed:
            hint = did_you_mean(str(key), list(allowed))
            raise TaskFileError(
                f"unknown key '{key}' in {where}{hint}: allowed keys are {', '.join(allowed)}"
            )
    return block


def text_field(block: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = block.get(key, default)
    if value is None:
        raise TaskFileError(f"missing key '{key}' in {where}")
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise TaskFileError(f"'{key}' in {where} must be a string")
    return str(value)


def check_sizes(sizes: Any, where: str) -> dict[str, int | None]:
    sizes = check_keys(sizes, SPLITS, where)
    for split, n in sizes.items():
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
            raise TaskFileError(f"size of '{split}' in {where} must be a whole number >= 0 or null")
    return dict(sizes)


def check_template(template: str) -> str:
    if "{input}" not in template:
        raise TaskFileError("template must contain {input}, where each example's input goes")
    try:
        template.format(input="")
    except (KeyError, IndexError, ValueError) as exc:
        raise TaskFileError(
            f"template has a brace field other than {{input}} ({exc}): write literal braces "
            "as {{ and }}"
        ) from exc
    return template


def parse_source(block: Any, fewshot_seed: str) -> Source:
    block = check_keys(block, SOURCE_KEYS, "source")
    kind = text_field(block, "kind", "source")
    if kind not in SOURCE_KINDS:
        raise TaskFileError(
            f"unknown source kind '{kind}'{did_you_mean(kind, list(SOURCE_KINDS))}: "
            f"use one of {', '.join(SOURCE_KINDS)}"
        )
    dev_from = text_field(block, "dev_from", "source", "train")
    if dev_from not in ("train", "test"):
        raise TaskFileError("'dev_from' in source must be train or test")
    hf = block.get("hf")
    if hf is not None:
        hf = dict(check_keys(hf, HF_KEYS, "source.hf"))
        text_field(hf, "id", "source.hf")

    def path(key: str) -> str | None:
        if block.get(key) is None and key == "dev":
            return None
        return text_field(block, key, "source").replace("{fewshot_seed}", fewshot_seed)

    return Source(
        kind=kind,
        train=path("train") or "",
        test=path("test") or "",
        dev=path("dev"),
        dev_from=dev_from,
        adapter=text_field(block, "adapter", "source", "default"),
        hf=hf,
    )


def parse_generation(block: Any) -> GenerationSettings:
    block = check_keys(block or {}, GENERATION_KEYS, "generation")
    max_tokens = block.get("max_tokens", GenerationSettings.max_tokens)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise TaskFileError("'max_tokens' in generation must be a whole number >= 1")
    stop = block.get("stop", list(GenerationSettings.stop))
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise TaskFileError("'stop' in generation must be a list of non-empty strings")
    return GenerationSettings(max_tokens=max_tokens, stop=tuple(stop))


def read_task_file(path: Path) -> Any:
    if not path.exists():
        raise ConfigError(f"task file {path} not found: check the path")
    text = read_utf8(path, "task file")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigError(f"task file {path} is not valid YAML{where}: {problem}") from exc
