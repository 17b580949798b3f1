"""Tasks: data splits, an input template, a baseline prompt and a scorer, defined in YAML.

Built-in tasks live in the top-level `tasks/` folder (documented in
`tasks/README.md`); a user can pass the path of their own YAML file instead, or
build a quick task from one data file with `task_from_data_file`.

Split discipline is enforced here, once, for every strategy: train and dev come
from the training data, test only from the held-out file, and no input text is
ever in two splits.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.core.domain import DEMO_FORMATS, Example, Prompt
from promptopt.core.errors import ConfigError, DataError, did_you_mean
from promptopt.core.paths import builtin_tasks_dir
from promptopt.core.paths import data_dir as default_data_dir
from promptopt.data import datasets
from promptopt.data.scoring import Scorer, get_scorer
from promptopt.data.task_data import Fields, Splits, _assemble, _DataReader
from promptopt.data.task_file import (
    FIELD_KEYS,
    SPLITS,
    TOP_KEYS,
    GenerationSettings,
    Split,
    TaskFileError,
    check_keys,
    check_sizes,
    check_template,
    parse_generation,
    parse_source,
    read_task_file,
    text_field,
)

SCORING_MODES = ("generate", "logprob")
DEFAULT_FEWSHOT_SEED = "16-42"
DEFAULT_TEMPLATE = "Input: {input}\nOutput:"

# Modest defaults: every dev example is scored for every candidate prompt on a 2-core CPU.
# None means "all available".
DEFAULT_SIZES: dict[str, dict[str, int | None]] = {
    "jsonl": {"train": 200, "dev": 20, "test": 50},
    "instruction_induction": {"train": 100, "dev": 20, "test": 50},
    "tsv_classification": {"train": None, "dev": 32, "test": 200},
}
DATA_FILE_SIZES: dict[str, int | None] = {"train": 100, "dev": 20, "test": 50}


@dataclass
class Task:
    """Everything a strategy needs to propose, evaluate and report prompts for one task.

    Examples are loaded on first use (so listing or validating tasks never reads
    data) and then cached on the instance.
    """

    name: str
    description: str
    template: str
    baseline_instruction: str
    scorer: Scorer
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    label_words: tuple[str, ...] | None = None
    scoring_mode: str = "generate"
    demo_format: str = "chat"
    """How demonstrations reach the model (see `promptopt.core.domain.DEMO_FORMATS`)."""
    sizes: dict[str, int | None] = field(default_factory=dict)
    seed: int = 0
    loader: Callable[[], Splits] | None = field(default=None, repr=False, compare=False)
    _splits: Splits | None = field(default=None, init=False, repr=False, compare=False)

    def examples(self, split: Split) -> list[Example]:
        if split not in SPLITS:
            raise ConfigError(
                f"unknown split '{split}'{did_you_mean(split, list(SPLITS))}: "
                "use train, dev or test"
            )
        if self._splits is None:
            if self.loader is None:
                raise ConfigError(f"task '{self.name}' has no data loader")
            self._splits = self.loader()
        return list(self._splits[split])

    def baseline_prompt(self) -> Prompt:
        return self.prompt(self.baseline_instruction)

    def prompt(self, instruction: str, demonstrations: Sequence[Example] = ()) -> Prompt:
        """A prompt for this task: its template and its way of showing demonstrations."""
        return Prompt(
            instruction=instruction,
            template=self.template,
            demonstrations=tuple(demonstrations),
            demo_format=self.demo_format,
        )

    @classmethod
    def from_examples(
        cls,
        name: str,
        train: Sequence[Example],
        dev: Sequence[Example],
        test: Sequence[Example],
        scorer: str | Scorer = "exact",
        template: str = DEFAULT_TEMPLATE,
        instruction: str = "",
        **settings: Any,
    ) -> Task:
        """A task over given examples (for tests and library use)."""
        splits = {"train": list(train), "dev": list(dev), "test": list(test)}
        label_words = settings.get("label_words")
        return cls(
            name=name,
            description=settings.pop("description", name),
            template=template,
            baseline_instruction=instruction,
            scorer=scorer if isinstance(scorer, Scorer) else get_scorer(scorer, label_words),
            loader=lambda: splits,
            **settings,
        )


# --------------------------------------------------------------------------- split assembly


SIZE_OPTIONS: dict[str, str] = {"train": "--train-size", "dev": "--dev-size", "test": "--test-size"}
SPLIT_ROLES: dict[str, str] = {
    "train": "strategies propose and learn from train examples",
    "dev": "candidates are chosen by their dev score",
    "test": "the result is each prompt's score on test",
}


def check_requested_sizes(sizes: dict[str, int | None] | None) -> None:
    """Split sizes a user asked for must be at least 1, before any data or model is
    touched: a dev split of 0 picks a prompt on no data, a test split of 0
    reports "0.000 vs 0.000 (n=0)" and exits 0. (A task file may still say 0:
    `require_examples` refuses the empty split it gives.)"""
    for split, n in (sizes or {}).items():
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            option = SIZE_OPTIONS.get(split, split)
            raise ConfigError(
                f"{option} must be at least 1, got {n}: {SPLIT_ROLES.get(split, '')}; pass "
                f"e.g. {option} 20, or leave it out for the task's default"
            )


def require_examples(task: Task, splits: Sequence[Split]) -> None:
    """Each of `splits` must hold an example once the data is read; else one line
    saying which split is empty and what to change, instead of a result over none.

    Reads the data (never a model). A split can come out empty without a size of
    0: test drops every input that is also in train or dev, so a task whose test
    file repeats its training file has no test examples left.
    """
    for split in splits:
        if task.examples(split):
            continue
        sized = task.sizes.get(split)
        if sized is not None and sized < 1:
            fix = (
                f"its sizes give {split} {sized} examples: set it to 1 or more in the task "
                f"file, or pass {SIZE_OPTIONS[split]} 20"
            )
        elif split == "test":
            fix = (
                "test keeps only inputs that are not in train or dev: give the task a "
                "held-out test file with other inputs"
            )
        else:
            fix = f"give the task more data, or a larger {SIZE_OPTIONS[split]}"
        raise ConfigError(
            f"task '{task.name}' has no {split} examples ({SPLIT_ROLES[split]}): {fix}"
        )


# --------------------------------------------------------------------------- task files


def _build_task(
    spec: Any,
    task_file: Path,
    builtin: bool,
    data_dir: Path | None,
    sizes: dict[str, int | None] | None,
    seed: int,
    fewshot_seed: str | None,
) -> Task:
    spec = check_keys(spec, TOP_KEYS, "the task file")
    name = text_field(spec, "name", "the task file")
    fewshot = fewshot_seed or text_field(
        spec, "fewshot_seed", "the task file", DEFAULT_FEWSHOT_SEED
    )
    source = parse_source(spec.get("source"), fewshot)
    fields_block = check_keys(spec.get("fields") or {}, FIELD_KEYS, "fields")
    fields = Fields(**{k: str(v) for k, v in fields_block.items() if v is not None})
    if source.kind == "jsonl":
        datasets.get_target_transform(fields.target_transform)

    label_words = spec.get("label_words")
    if label_words is not None:
        if not isinstance(label_words, list) or not all(
            isinstance(w, str) and w.strip() for w in label_words
        ):
            raise TaskFileError("'label_words' must be a list of words, one per class id")
        label_words = tuple(label_words)
    if source.kind == "tsv_classification" and not label_words:
        raise TaskFileError("a tsv_classification source needs label_words (class id = index)")
    scoring_mode = text_field(spec, "scoring_mode", "the task file", "generate")
    if scoring_mode not in SCORING_MODES:
        hint = did_you_mean(scoring_mode, list(SCORING_MODES))
        raise TaskFileError(f"unknown scoring_mode '{scoring_mode}'{hint}: use generate or logprob")
    if scoring_mode == "logprob" and not label_words:
        raise TaskFileError("scoring_mode logprob needs label_words to score")
    demo_format = text_field(spec, "demo_format", "the task file", "chat")
    if demo_format not in DEMO_FORMATS:
        raise TaskFileError(f"unknown demo_format '{demo_format}': use chat or text")
    scorer_name = text_field(spec, "scorer", "the task file", "label" if label_words else "exact")
    module, sep, func = scorer_name.partition(":")
    if sep and module.endswith(".py") and not Path(module).is_absolute() and not builtin:
        scorer_name = f"{task_file.parent / module}:{func}"  # a scorer file next to the task

    task_sizes = {**DEFAULT_SIZES[source.kind], **check_sizes(spec.get("sizes") or {}, "sizes")}
    task_sizes.update(sizes or {})

    reader = _DataReader(
        name,
        source,
        fields,
        label_words,
        Path(data_dir).expanduser() if data_dir is not None else default_data_dir(),
        None if builtin else task_file.parent,
    )
    task = Task(
        name=name,
        description=text_field(spec, "description", "the task file", ""),
        template=check_template(text_field(spec, "template", "the task file")),
        baseline_instruction=text_field(spec, "baseline_instruction", "the task file"),
        scorer=get_scorer(scorer_name, label_words),
        generation=parse_generation(spec.get("generation")),
        label_words=label_words,
        scoring_mode=scoring_mode,
        demo_format=demo_format,
        sizes=task_sizes,
        seed=seed,
        loader=lambda: _assemble(reader.read_all(), source, task_sizes, seed),
    )
    reader.check_files(fewshot)
    return task


def _builtin_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(builtin_tasks_dir().glob("*.yaml"))}


def list_tasks() -> list[tuple[str, str]]:
    """(name, description) of every built-in task, sorted by name."""
    tasks = []
    for name, path in _builtin_files().items():
        spec = read_task_file(path)
        description = spec.get("description", "") if isinstance(spec, dict) else ""
        tasks.append((name, str(description)))
    return tasks


def looks_like_path(name_or_path: str) -> bool:
    """Whether `--task` names a YAML file rather than a built-in task."""
    return name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path or "/" in name_or_path


def load_task(
    name_or_path: str | Path,
    data_dir: str | Path | None = None,
    sizes: dict[str, int | None] | None = None,
    seed: int = 0,
    fewshot_seed: str | None = None,
) -> Task:
    """A built-in task by name, or a task from a YAML file path.

    `sizes` overrides the task's split sizes (None = all available), `seed`
    picks the samples and `fewshot_seed` the few-shot classification split
    (e.g. "16-13"). Missing data files raise `DataError` right away.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or looks_like_path(text):
        path, builtin = Path(text).expanduser(), False
    else:
        files = _builtin_files()
        if text not in files:
            raise ConfigError(
                f"unknown task '{text}'{did_you_mean(text, list(files))}: run "
                "`promptopt tasks list` to see the built-in tasks, or pass a task .yaml file"
            )
        path, builtin = files[text], True
    if sizes:
        try:
            check_sizes(sizes, "the requested sizes")
        except TaskFileError as exc:
            raise ConfigError(str(exc)) from exc
    spec = read_task_file(path)
    try:
        return _build_task(
            spec,
            path,
            builtin,
            Path(data_dir) if data_dir is not None else None,
            sizes,
            seed,
            fewshot_seed,
        )
    except TaskFileError as exc:
        raise ConfigError(f"task file {path}: {exc}") from exc
    except ConfigError as exc:
        if builtin:  # a user option (e.g. fewshot_seed) was wrong, not the file
            raise
        raise ConfigError(f"task file {path}: {exc}") from exc


def task_from_data_file(
    path: str | Path,
    input_field: str,
    target_field: str,
    scorer: str = "exact",
    template: str | None = None,
    instruction: str | None = None,
    sizes: dict[str, int | None] | None = None,
    seed: int = 0,
    label_words: Sequence[str] | None = None,
) -> Task:
    """A quick task from one .jsonl/.json/.csv/.tsv file, split into train/dev/test by `seed`.

    The file is read right away, so a wrong field name fails where it was given.
    Test comes from the back of one seeded shuffle, dev from the front, train
    from the middle; sizes shrink in proportion when the file is small.
    """
    pool = datasets.load_records(path, input_field, target_field)
    if not pool:
        raise DataError(f"data file {path} has no examples")
    want = dict(DATA_FILE_SIZES)
    try:
        want.update(check_sizes(sizes or {}, "the requested sizes"))
    except TaskFileError as exc:
        raise ConfigError(str(exc)) from exc
    dev_n, test_n = want["dev"] or 0, want["test"] or 0
    # Dev and test come first (a small file keeps them whole); train gets the rest.
    holdout_n = min(dev_n + test_n, max(0, len(pool) - 1))
    holdout, rest = datasets.split_dev_test(pool, holdout_n, seed)
    train = rest[: want["train"]] if want["train"] is not None else rest
    dev, test = datasets.split_dev_test(holdout, dev_n, seed, test_n)
    try:
        template = check_template(template or DEFAULT_TEMPLATE)
    except TaskFileError as exc:
        raise ConfigError(str(exc)) from exc
    words = tuple(label_words) if label_words else None
    return Task.from_examples(
        Path(path).stem,
        train,
        dev,
        test,
        scorer=get_scorer(scorer, words),
        template=template,
        instruction=instruction or "Read the input and write the correct output.",
        description=f"examples from {path}",
        label_words=words,
        sizes=want,
        seed=seed,
    )
