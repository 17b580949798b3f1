"""APE's instruction-induction files (Honovich et al. 2022), read as published.

Each task's `{"examples": {"1": {...}}}` file holds its own fields; an adapter
turns one item into an `Example` (two tasks need their own: cause_and_effect
shows both sentences in a seeded order, common_concept joins its items), and
inputs that appear twice become one example whose other answers are aliases.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from promptopt.core.domain import Example
from promptopt.core.errors import ConfigError, DataError, did_you_mean
from promptopt.data.datasets import read_data_text, require_file

# Fields listing other acceptable outputs in the instruction-induction files.
_ALIAS_FIELDS = ("possible_translations", "other_rhymes", "possible_outputs")


def _default_adapter(key: str, item: dict[str, Any], seed: int) -> Example:
    aliases = [a for field in _ALIAS_FIELDS for a in item.get(field, ())]
    if "other_rhymes" in item:
        # other_rhymes always lists the input word itself; echoing it is no rhyme.
        aliases = [a for a in aliases if a.casefold() != item["input"].casefold()]
    return Example(id=key, input=item["input"], target=item["output"], aliases=tuple(aliases))


def _cause_and_effect_adapter(key: str, item: dict[str, Any], seed: int) -> Example:
    """APE's format: both sentences in a random order per example, the answer is the cause.

    The order is seeded by the example id alone (plus `seed`), so an example
    reads the same in every run and split.
    """
    cause, effect = item["cause"], item["effect"]
    first, second = (
        (cause, effect)
        if random.Random(f"{seed}:{key}").random() < 0.5
        else (
            effect,
            cause,
        )
    )
    return Example(id=key, input=f"Sentence 1: {first} Sentence 2: {second}", target=cause)


def _common_concept_adapter(key: str, item: dict[str, Any], seed: int) -> Example:
    return Example(
        id=key,
        input=", ".join(item["items"]),
        target=item["concept"],
        aliases=tuple(item.get("all_common_concepts", ())),
    )


ADAPTERS: dict[str, Callable[[str, dict[str, Any], int], Example]] = {
    "default": _default_adapter,
    "cause_and_effect": _cause_and_effect_adapter,
    "common_concept": _common_concept_adapter,
}


def _merge_duplicates(examples: list[Example]) -> list[Example]:
    """One example per input text, the later answers becoming aliases.

    rhymes repeats an input word with different rhymes and common_concept lists
    the same items once per accepted concept; kept apart they would count one
    question twice and could land in both dev and test.
    """
    merged: dict[str, Example] = {}
    for example in examples:
        first = merged.get(example.input)
        if first is None:
            merged[example.input] = example
            continue
        extra = (example.target, *example.aliases)
        aliases = tuple(dict.fromkeys((*first.aliases, *extra)))
        merged[example.input] = Example(
            first.id, first.input, first.target, tuple(a for a in aliases if a != first.target)
        )
    return list(merged.values())


def load_instruction_induction(
    path: str | Path, adapter: str = "default", seed: int = 0, id_prefix: str | None = None
) -> list[Example]:
    """The `{"examples": {"1": {...}}}` files; ids are "<folder>-<key>" (e.g. "execute-7").

    The folder name (induce/execute) keeps ids of the two files of one task apart.
    Aliases are the target plus any listed alternatives minus duplicates.
    """
    path = Path(path)
    require_file(path)
    if adapter not in ADAPTERS:
        raise ConfigError(
            f"unknown instruction-induction adapter '{adapter}'"
            f"{did_you_mean(adapter, list(ADAPTERS))}: choose one of {', '.join(ADAPTERS)}"
        )
    try:
        data = json.loads(read_data_text(path))
        items = data["examples"]
        if not isinstance(items, dict):
            raise TypeError
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(
            f"data file {path} is not in the instruction-induction format "
            '{"examples": {"1": {...}, ...}}'
        ) from exc
    prefix = id_prefix or path.parent.name
    examples = []
    for key, item in items.items():
        try:
            example = ADAPTERS[adapter](f"{prefix}-{key}", item, seed)
        except KeyError as exc:
            raise DataError(
                f"data file {path} example '{key}' has no field {exc}: the '{adapter}' adapter "
                f"needs it (it has: {', '.join(item)})"
            ) from exc
        # Some translation lists hold an empty string: it is no answer.
        aliases = tuple(
            a for a in dict.fromkeys(example.aliases) if a.strip() and a != example.target
        )
        examples.append(Example(example.id, example.input, example.target, aliases))
    return _merge_duplicates(examples)
