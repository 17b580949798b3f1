"""A task's data: where it comes from (`Source`, `Fields`), reading its files (from
the data directory, beside a user's task file, or the hub) and cutting them into
sized, seeded, disjoint train / dev / test splits.

Split discipline lives here, once, for every strategy: train and dev come from
the training data, test only from the held-out file, and no input text is ever
in two splits.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.core.domain import Example
from promptopt.core.errors import ConfigError, DataError
from promptopt.data import datasets
from promptopt.data.instruction_induction import load_instruction_induction

Splits = dict[str, list[Example]]


@dataclass(frozen=True)
class Source:
    """Where a task's data comes from (the `source:` block of a task file)."""

    kind: str
    train: str
    test: str
    dev: str | None = None
    dev_from: str = "train"
    adapter: str = "default"
    hf: dict[str, Any] | None = None


@dataclass(frozen=True)
class Fields:
    input: str = "input"
    target: str = "target"
    target_transform: str | None = None
    demo: str | None = None


def _without_inputs(examples: list[Example], *others: list[Example]) -> list[Example]:
    seen = {e.input for group in others for e in group}
    return [e for e in examples if e.input not in seen]


def _assemble(pools: dict[str, list[Example]], source: Source, sizes: dict, seed: int) -> Splits:
    """Sized, seeded, disjoint splits from the pools read from the train/dev/test files."""
    train_pool, test_pool = pools["train"], pools["test"]
    stratify = source.kind == "tsv_classification"
    if source.dev_from == "test":
        dev_n = sizes["dev"] if sizes["dev"] is not None else len(test_pool) // 2
        dev, test = datasets.split_dev_test(test_pool, dev_n, seed, sizes["test"], stratify)
        train = datasets.sample(_without_inputs(train_pool, test_pool), sizes["train"], seed)
        return {"train": train, "dev": dev, "test": test}
    dev_pool = _without_inputs(pools.get("dev", []), train_pool)
    if dev_pool:
        dev = datasets.sample(dev_pool, sizes["dev"], seed, stratify)
        train = datasets.sample(train_pool, sizes["train"], seed, stratify)
    else:
        # No separate dev file, or one that repeats the training file (subj does):
        # carve dev out of the training pool, never more than half of it.
        wanted = sizes["dev"] if sizes["dev"] is not None else len(train_pool)
        dev_n = min(len(train_pool) // 2, wanted)
        dev, train = datasets.split_dev_test(train_pool, dev_n, seed, sizes["train"], stratify)
    test = datasets.sample(
        _without_inputs(test_pool, train_pool, dev_pool), sizes["test"], seed, stratify=False
    )
    return {"train": train, "dev": dev, "test": test}


class _DataReader:
    """Reads one task's files: from the data dir, next to a user's task file, or the hub."""

    def __init__(
        self,
        task_name: str,
        source: Source,
        fields: Fields,
        label_words: tuple[str, ...] | None,
        data_root: Path | None,
        task_dir: Path | None,
    ) -> None:
        self.task_name, self.source, self.fields = task_name, source, fields
        self.label_words, self.data_root, self.task_dir = label_words, data_root, task_dir

    def locate(self, relative: str) -> Path | None:
        """The existing file for a source path, or None."""
        candidates = [Path(relative).expanduser()]
        if not candidates[0].is_absolute():
            candidates = []
            if self.task_dir is not None:
                candidates.append(self.task_dir / relative)
            if self.data_root is not None:
                candidates.append(self.data_root / relative)
        return next((c for c in candidates if c.is_file()), None)

    def has_hub_copy(self, split: str) -> bool:
        """Whether a hub fallback is configured and could work (`datasets` is importable)."""
        if not self.source.hf or split not in self._hub_splits():
            return False
        return importlib.util.find_spec("datasets") is not None

    def _hub_splits(self) -> dict[str, str]:
        hf = self.source.hf or {}
        return dict(hf.get("splits") or {"train": "train", "test": "test"})

    def missing(self, relative: str, hub_problem: str | None = None) -> DataError:
        """The one-line error for a data file that is not there."""
        if Path(relative).is_absolute():
            where, fix = f" at {relative}", "check the path in the task file"
        elif self.data_root is None:
            where = " (PROMPTOPT_DATA_DIR is not set)"
            fix = f"set PROMPTOPT_DATA_DIR to the folder holding {relative}"
            if self.task_dir is not None:
                fix = f"put {relative} next to the task file or {fix}"
        else:
            where = f" at {self.data_root / relative}"
            fix = f"set PROMPTOPT_DATA_DIR to the folder holding {relative}"
        if self.source.hf:
            if hub_problem is None and importlib.util.find_spec("datasets") is None:
                hub_problem = "needs the 'datasets' package"
            hub = self.source.hf.get("id")
            fix += f" (or go online for the Hugging Face copy {hub}"
            fix += f": {hub_problem})" if hub_problem else ")"
        return DataError(f"{self.task_name} data not found{where}: {fix}")

    def check_files(self, fewshot_seed: str) -> None:
        """Fail early, before any model work, when a needed file is missing and has no hub copy."""
        train = self.locate(self.source.train)
        if self.source.kind == "tsv_classification" and train is None and self.data_root:
            seed_dir = (self.data_root / self.source.train).parent
            if seed_dir.name == fewshot_seed and seed_dir.parent.is_dir():
                known = sorted(p.name for p in seed_dir.parent.iterdir() if p.is_dir())
                raise ConfigError(
                    f"{self.task_name} has no few-shot seed '{fewshot_seed}' in "
                    f"{seed_dir.parent}: use one of {', '.join(known)}"
                )
        for split in ("train", "dev", "test"):
            relative = getattr(self.source, split)
            if relative is None:
                continue
            if self.locate(relative) is None and not self.has_hub_copy(split):
                raise self.missing(relative)

    def read(self, split: str) -> list[Example]:
        relative = getattr(self.source, split)
        path = self.locate(relative)
        if path is not None:
            return self._read_file(path)
        if not self.has_hub_copy(split):
            raise self.missing(relative)
        hf = self.source.hf or {}
        try:
            return datasets.load_hf_dataset(
                hf["id"],
                hf.get("config"),
                self._hub_splits()[split],
                self.fields.input,
                self.fields.target,
                datasets.get_target_transform(self.fields.target_transform),
                id_prefix=Path(relative).stem,
            )
        except datasets.HubUnavailable as exc:
            raise self.missing(relative, str(exc)) from exc

    def _read_file(self, path: Path) -> list[Example]:
        kind = self.source.kind
        if kind == "instruction_induction":
            return load_instruction_induction(path, self.source.adapter)
        if kind == "tsv_classification":
            return datasets.load_tsv_classification(path, self.label_words or ())
        return datasets.load_records(
            path,
            self.fields.input,
            self.fields.target,
            datasets.get_target_transform(self.fields.target_transform),
            self.fields.demo,
        )

    def read_all(self) -> dict[str, list[Example]]:
        pools = {"train": self.read("train"), "test": self.read("test")}
        if self.source.dev is not None:
            pools["dev"] = self.read("dev")
        return pools
