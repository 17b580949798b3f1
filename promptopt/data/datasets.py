"""Loaders that turn data files into `Example` lists, and seeded sampling helpers.

Loaders read the public formats as published (JSONL, RLPrompt's few-shot TSVs;
the instruction-induction JSON in `instruction_induction`) from any path, so a
user can point them at their own copies. Every problem with a file is a one-line
`DataError` naming the file and what to do.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from promptopt.core.domain import Example
from promptopt.core.errors import ConfigError, DataError, did_you_mean
from promptopt.core.files import read_utf8

TargetTransform = Callable[[str], tuple[str, str | None]]
"""Maps a raw target field to `(target, demo_output)`, e.g. a GSM8K solution to its number."""


# --------------------------------------------------------------------------- GSM8K


_CALCULATOR = re.compile(r"<<.*?>>")


def gsm8k_answer(solution: str) -> tuple[str, str | None]:
    """GSM8K's "...\\n#### 72" -> ("72", "...\\nThe answer is 72.").

    The target is the bare number (commas removed) so numeric scoring works; the
    demonstration keeps the worked solution, minus the `<<48/2=24>>` calculator
    annotations no model should learn to imitate, and ends with the same
    "The answer is N." phrase the numeric scorer looks for.
    """
    if "####" not in solution:
        raise ValueError("no '####' final-answer marker")
    reasoning, _, final = solution.rpartition("####")
    number = final.strip().replace(",", "")
    steps = _CALCULATOR.sub("", reasoning).strip()
    demo = f"{steps}\nThe answer is {number}." if steps else f"The answer is {number}."
    return number, demo


TARGET_TRANSFORMS: dict[str, TargetTransform] = {"gsm8k": gsm8k_answer}


def get_target_transform(name: str | None) -> TargetTransform | None:
    if name is None:
        return None
    if name not in TARGET_TRANSFORMS:
        raise ConfigError(
            f"unknown target_transform '{name}'{did_you_mean(name, list(TARGET_TRANSFORMS))}: "
            f"choose one of {', '.join(TARGET_TRANSFORMS)}"
        )
    return TARGET_TRANSFORMS[name]


# --------------------------------------------------------------------------- record files


def require_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"data file {path} not found: check the path")


def read_data_text(path: Path) -> str:
    """A data file's text: one that is not UTF-8 is a DataError naming the byte and line."""
    return read_utf8(path, "data file", error=DataError)


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(read_data_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"data file {path} line {number} is not valid JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise DataError(f"data file {path} line {number} is not a JSON object")
        yield number, record


def _iter_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or item number, record) from .jsonl, .json (a list), .csv or .tsv with a header."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        handle = io.StringIO(read_data_text(path), newline="")
        reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
        for number, row in enumerate(reader, start=2):
            yield number, dict(row)
    elif suffix == ".json":
        try:
            data = json.loads(read_data_text(path))
        except json.JSONDecodeError as exc:
            raise DataError(f"data file {path} is not valid JSON: {exc}") from exc
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise DataError(f"data file {path} must hold a JSON list of objects")
        yield from enumerate(data, start=1)
    else:
        yield from _iter_jsonl(path)


def _examples_from_records(
    records: Iterator[tuple[int, dict[str, Any]]],
    path: Path,
    input_field: str,
    target_field: str,
    target_transform: TargetTransform | None,
    demo_field: str | None,
    id_prefix: str,
) -> list[Example]:
    unit = "line" if path.suffix.lower() in (".jsonl", ".csv", ".tsv", "") else "item"
    examples = []
    for number, record in records:
        for field in (input_field, target_field, demo_field):
            if field is not None and record.get(field) is None:
                raise DataError(
                    f"data file {path} {unit} {number} has no field '{field}': pass "
                    "--input-field/--target-field matching its keys "
                    f"(it has: {', '.join(map(str, record)) or 'no keys'})"
                )
        target, demo = str(record[target_field]), None
        if target_transform is not None:
            try:
                target, demo = target_transform(target)
            except ValueError as exc:
                raise DataError(
                    f"data file {path} {unit} {number}: field '{target_field}' "
                    f"does not fit the task's target format ({exc})"
                ) from exc
        if demo_field is not None:
            demo = str(record[demo_field])
        examples.append(
            Example(
                id=f"{id_prefix}-{number}",
                input=str(record[input_field]),
                target=target,
                demo_output=demo,
            )
        )
    return examples


def load_jsonl(
    path: str | Path,
    input_field: str,
    target_field: str,
    target_transform: TargetTransform | None = None,
    demo_field: str | None = None,
    id_prefix: str | None = None,
) -> list[Example]:
    """One example per JSON line; ids are "<file stem>-<line number>" (e.g. "train-12").

    The stem keeps ids of a train and a test file apart; line numbers keep them
    stable when a file is re-read or sampled differently.
    """
    path = Path(path)
    require_file(path)
    return _examples_from_records(
        _iter_jsonl(path),
        path,
        input_field,
        target_field,
        target_transform,
        demo_field,
        id_prefix or path.stem,
    )


def load_records(
    path: str | Path,
    input_field: str,
    target_field: str,
    target_transform: TargetTransform | None = None,
    demo_field: str | None = None,
    id_prefix: str | None = None,
) -> list[Example]:
    """Like `load_jsonl`, for .jsonl, .json (a list of objects), .csv or .tsv by suffix."""
    path = Path(path)
    require_file(path)
    return _examples_from_records(
        _iter_records(path),
        path,
        input_field,
        target_field,
        target_transform,
        demo_field,
        id_prefix or path.stem,
    )


# --------------------------------------------------------------------------- classification


def load_tsv_classification(
    path: str | Path, label_words: Sequence[str], id_prefix: str | None = None
) -> list[Example]:
    """RLPrompt's few-shot TSVs: a header (`sentence` or `text`, then `label`), integer labels.

    The target is the label *word* (`label_words[id]`) so generation and
    log-probability scoring compare words, never ids. The files are written
    with CSV quoting (a sentence holding `"` is quoted and the quote doubled),
    so they are read with the csv module, not split on tabs.
    """
    path = Path(path)
    require_file(path)
    prefix = id_prefix or path.stem
    rows = list(csv.reader(io.StringIO(read_data_text(path), newline=""), delimiter="\t"))
    if not rows or "label" not in rows[0] or len(rows[0]) != 2:
        raise DataError(
            f"data file {path} needs a header of two tab-separated columns, "
            f"the text and 'label' (it has: {', '.join(rows[0]) if rows else 'nothing'})"
        )
    label_col = rows[0].index("label")
    text_col = 1 - label_col
    examples = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            label = int(row[label_col])
            word = label_words[label]
        except (ValueError, IndexError) as exc:
            raise DataError(
                f"data file {path} line {number} has label {row[label_col : label_col + 1]} "
                f"but the task has {len(label_words)} label words ({', '.join(label_words)})"
            ) from exc
        examples.append(Example(id=f"{prefix}-{number}", input=row[text_col], target=word))
    return examples


# --------------------------------------------------------------------------- Hugging Face hub


class HubUnavailable(Exception):
    """The `datasets` library is missing, or the hub copy could not be fetched."""


def load_hf_dataset(
    hub_id: str,
    config: str | None,
    split: str,
    input_field: str,
    target_field: str,
    target_transform: TargetTransform | None = None,
    id_prefix: str | None = None,
) -> list[Example]:
    """A split from the Hugging Face hub, used only when the local file is missing.

    `datasets` is optional and imported lazily; any failure (not installed,
    offline, unknown id) raises `HubUnavailable` so the caller can say where to
    put local files instead. Ids match `load_jsonl` on the same rows.
    """
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError as exc:
        raise HubUnavailable("the 'datasets' package is not installed") from exc
    try:
        rows = datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:  # network, auth and missing-id errors all mean "not available"
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise HubUnavailable(f"{hub_id} could not be loaded ({first_line})") from exc
    records = ((number, dict(row)) for number, row in enumerate(rows, start=1))
    return _examples_from_records(
        records,
        Path(f"{hub_id}:{split}"),
        input_field,
        target_field,
        target_transform,
        None,
        id_prefix or split,
    )


# --------------------------------------------------------------------------- seeded sampling


def _shuffled(examples: Sequence[Example], seed: int, stratify: bool) -> list[Example]:
    """One seeded order. Stratified: classes (by target) interleaved round-robin.

    With the interleaving, any prefix (or suffix) of the order is as balanced
    across classes as possible, which matters for 16-shot classification dev sets.
    """
    rng = random.Random(seed)
    order = list(examples)
    rng.shuffle(order)
    if not stratify:
        return order
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in order:
        groups[example.target].append(example)
    classes = sorted(groups)
    rounds = max((len(g) for g in groups.values()), default=0)
    return [groups[c][i] for i in range(rounds) for c in classes if i < len(groups[c])]


def sample(
    examples: Sequence[Example], n: int | None, seed: int, stratify: bool = False
) -> list[Example]:
    """`n` examples (all when `n` is None or too big) in a seeded order.

    Taken as a prefix of one seeded shuffle, so a smaller `n` gives a subset of a
    larger one for the same seed.
    """
    order = _shuffled(examples, seed, stratify)
    return order if n is None else order[:n]


def split_dev_test(
    examples: Sequence[Example],
    dev_n: int,
    seed: int,
    test_n: int | None = None,
    stratify: bool = False,
) -> tuple[list[Example], list[Example]]:
    """Two disjoint samples of one pool: `dev_n` for dev and `test_n` (None: the rest) for test.

    Dev comes from the front of one seeded shuffle and test from the back, so
    changing one size never changes the other split. When both do not fit,
    they are scaled down in proportion (each keeps at least one example when
    the pool has two), rather than failing on small tasks.
    """
    order = _shuffled(examples, seed, stratify)
    total = len(order)
    dev_n = max(0, dev_n)
    rest_n = total - min(dev_n, total) if test_n is None else max(0, test_n)
    if dev_n + rest_n > total:
        scaled = round(total * dev_n / (dev_n + rest_n))
        dev_n = min(max(scaled, 1 if dev_n else 0), total - (1 if rest_n and total > 1 else 0))
        rest_n = total - dev_n
    test = order[total - rest_n :][::-1] if rest_n else []
    return order[:dev_n], test
