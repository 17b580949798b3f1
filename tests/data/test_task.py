"""Built-in tasks on the real data: split sizes and discipline, label words, task-file errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from promptopt.core.domain import Example, Prompt
from promptopt.core.errors import ConfigError, DataError
from promptopt.core.paths import builtin_tasks_dir
from promptopt.data.task import (
    GenerationSettings,
    Task,
    check_requested_sizes,
    list_tasks,
    load_task,
    require_examples,
    task_from_data_file,
)

INSTRUCTION_INDUCTION = [
    "active_to_passive",
    "antonyms",
    "cause_and_effect",
    "common_concept",
    "diff",
    "first_word_letter",
    "informal_to_formal",
    "letters_list",
    "negation",
    "num_to_verbal",
    "rhymes",
    "sentiment",
    "singular_to_plural",
    "sum",
    "taxonomy_animal",
    "translation_en-de",
    "translation_en-es",
    "word_in_context",
]
CLASSIFICATION = ["agnews", "sst2", "subj", "trec"]
BUILTIN = sorted(["gsm8k", *INSTRUCTION_INDUCTION, *CLASSIFICATION])
SPLITS = ("train", "dev", "test")

# Which file (id prefix) each split must come from.
ID_PREFIXES = {
    "gsm8k": ("train-", "train-", "test-"),
    **{name: ("induce-", "execute-", "execute-") for name in INSTRUCTION_INDUCTION},
    **{name: ("train-", "dev-", "test-") for name in CLASSIFICATION},
    "subj": ("train-", "test-", "test-"),  # its dev.tsv repeats train.tsv: dev from test
}
# Sizes with all data available: a null train size means the whole training file.
EXPECTED_SIZES = {
    "gsm8k": (200, 20, 50),
    **{name: (100, 20, 50) for name in INSTRUCTION_INDUCTION},
    "cause_and_effect": (26, 10, 15),
    "common_concept": (16, 5, 10),
    "informal_to_formal": (15, 5, 10),
    "sst2": (32, 32, 200),
    "subj": (32, 32, 200),
    "trec": (96, 32, 200),
    "agnews": (64, 32, 200),
}


def test_list_tasks_names_every_builtin_with_a_description() -> None:
    listed = list_tasks()
    assert [name for name, _ in listed] == BUILTIN
    assert all(description for _, description in listed)
    for name in BUILTIN:  # the file name is the task name
        spec = yaml.safe_load((builtin_tasks_dir() / f"{name}.yaml").read_text())
        assert spec["name"] == name


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_task_splits(data_dir: Path, name: str) -> None:
    task = load_task(name)
    splits = {split: task.examples(split) for split in SPLITS}
    assert tuple(len(splits[s]) for s in SPLITS) == EXPECTED_SIZES[name]
    for split, prefix in zip(SPLITS, ID_PREFIXES[name], strict=True):
        assert all(e.id.startswith(prefix) for e in splits[split]), split
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1 :]:
            a, b = splits[first], splits[second]
            assert not {e.id for e in a} & {e.id for e in b}, (first, second)
            assert not {e.input for e in a} & {e.input for e in b}, (first, second)
    for split in SPLITS:
        assert len({e.id for e in splits[split]}) == len(splits[split])
        assert len({e.input for e in splits[split]}) == len(splits[split])


@pytest.mark.parametrize("name", BUILTIN)
def test_a_perfect_answer_scores_one(data_dir: Path, name: str) -> None:
    """Extraction must never destroy a correct answer written as the data writes it."""
    task = load_task(name)
    for example in task.examples("test") + task.examples("train")[:20]:
        for output in {example.shown_output, example.target, *example.aliases}:
            prediction, score = task.scorer.evaluate(output, example)
            assert score == 1.0, (output, prediction)


def test_builtin_settings(data_dir: Path) -> None:
    gsm8k = load_task("gsm8k")
    assert gsm8k.scorer.name == "numeric" and gsm8k.scoring_mode == "generate"
    assert "\n\n" in gsm8k.generation.stop and gsm8k.generation.max_tokens >= 128
    assert gsm8k.examples("train")[0].demo_output.endswith(
        f"The answer is {gsm8k.examples('train')[0].target}."
    )
    scorers = {name: load_task(name).scorer.name for name in INSTRUCTION_INDUCTION}
    assert scorers["taxonomy_animal"] == "set"
    assert scorers["common_concept"] == scorers["informal_to_formal"] == "f1"
    assert (
        scorers["rhymes"]
        == scorers["translation_en-de"]
        == scorers["translation_en-es"]
        == "contains"
    )
    assert scorers["antonyms"] == scorers["word_in_context"] == "exact"
    for name in INSTRUCTION_INDUCTION:
        task = load_task(name)
        assert task.template == "Input: {input}\nOutput:"
        assert task.generation.stop == ("\n",) and 4 <= task.generation.max_tokens <= 48
        assert task.baseline_instruction.endswith(".")


@pytest.mark.parametrize(
    ("name", "label_words", "known"),
    [
        (
            "sst2",
            ("negative", "positive"),
            {
                "a classy , sprightly spin on film .": "positive",
                "sad nonsense , this .": "negative",
            },
        ),
        (
            "subj",
            ("subjective", "objective"),
            {"she takes a fancy to chan kwok chan , whom she stalks .": "objective"},
        ),
        (
            "trec",
            ("description", "entity", "abbreviation", "human", "location", "number"),
            {
                "What does IOC stand for ?": "abbreviation",
                "Who was the first Holy Roman Emperor ?": "human",
                "Where is the Isle of Man ?": "location",
            },
        ),
        (
            "agnews",
            ("world", "sports", "business", "tech"),
            {
                "IBM Announces New Development Platform": "tech",
                "Mariners Hire Mike Hargrove as Manager": "sports",
            },
        ),
    ],
)
def test_classification_label_words(
    data_dir: Path, name: str, label_words: tuple[str, ...], known: dict[str, str]
) -> None:
    task = load_task(name)
    assert task.label_words == label_words
    assert task.scorer.name == "label" and task.scoring_mode == "logprob"
    examples = task.examples("train") + task.examples("dev")
    for start, word in known.items():
        [example] = [e for e in examples if e.input.startswith(start)]
        assert example.target == word
    classes = {e.target for e in task.examples("test")}
    assert classes == set(label_words)


def test_classification_dev_is_balanced(data_dir: Path) -> None:
    trec_dev = load_task("trec").examples("dev")
    counts = {w: sum(e.target == w for e in trec_dev) for w in load_task("trec").label_words}
    assert set(counts.values()) <= {5, 6}
    subj = load_task("subj")
    assert sorted(e.target for e in subj.examples("dev")).count("objective") == 16


@pytest.mark.parametrize(
    ("name", "split"), [("gsm8k", "dev"), ("gsm8k", "test"), ("antonyms", "dev"), ("sst2", "test")]
)
def test_seeds_are_deterministic_and_matter(data_dir: Path, name: str, split: str) -> None:
    a, b, c = load_task(name, seed=0), load_task(name, seed=0), load_task(name, seed=1)
    assert [e.id for e in a.examples(split)] == [e.id for e in b.examples(split)]
    assert {e.id for e in a.examples(split)} != {e.id for e in c.examples(split)}


def test_size_overrides_and_fewshot_seed(data_dir: Path) -> None:
    task = load_task("gsm8k", sizes={"dev": 5, "test": 7, "train": 3})
    assert [len(task.examples(s)) for s in SPLITS] == [3, 5, 7]
    assert task.sizes == {"train": 3, "dev": 5, "test": 7}
    # A bigger dev sample keeps the smaller one's examples, and test stays put.
    bigger = load_task("gsm8k", sizes={"dev": 10, "test": 7})
    assert bigger.examples("dev")[:5] == task.examples("dev")
    assert bigger.examples("test") == task.examples("test")
    other_seed = load_task("sst2", fewshot_seed="16-13")
    assert {e.input for e in other_seed.examples("train")} != {
        e.input for e in load_task("sst2").examples("train")
    }


def test_examples_are_cached_and_copied(data_dir: Path) -> None:
    task = load_task("antonyms")
    first = task.examples("dev")
    first.clear()
    assert len(task.examples("dev")) == 20
    with pytest.raises(ConfigError, match="unknown split 'valid'"):
        task.examples("valid")  # type: ignore[arg-type]


def test_baseline_prompt(data_dir: Path) -> None:
    task = load_task("antonyms")
    assert task.baseline_prompt() == Prompt(
        instruction=task.baseline_instruction, template="Input: {input}\nOutput:"
    )


# --------------------------------------------------------------------------- errors


def test_unknown_task_suggests_and_points_to_the_list() -> None:
    with pytest.raises(ConfigError) as info:
        load_task("antonym")
    message = str(info.value)
    assert "unknown task 'antonym'" in message
    assert "did you mean 'antonyms'" in message
    assert "promptopt tasks list" in message


def test_missing_data_dir_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTOPT_DATA_DIR", raising=False)
    with pytest.raises(DataError) as info:
        load_task("gsm8k")
    message = str(info.value)
    assert message.startswith("gsm8k data not found")
    assert "set PROMPTOPT_DATA_DIR to the folder holding gsm8k/train.jsonl" in message
    assert "Hugging Face" in message


def test_missing_data_files_name_the_expected_path(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_task("antonyms", data_dir=tmp_path)
    expected = tmp_path / "instruction_induction/induce/antonyms.json"
    assert str(info.value) == (
        f"antonyms data not found at {expected}: set PROMPTOPT_DATA_DIR to the folder "
        "holding instruction_induction/induce/antonyms.json"
    )


def test_unknown_fewshot_seed_lists_the_known_ones(data_dir: Path) -> None:
    with pytest.raises(
        ConfigError, match="no few-shot seed '16-99'.*16-100, 16-13, 16-21, 16-42, 16-87"
    ):
        load_task("sst2", fewshot_seed="16-99")


def test_bad_size_override() -> None:
    with pytest.raises(ConfigError, match="unknown key 'valid'.*train, dev, test"):
        load_task("gsm8k", sizes={"valid": 3})
    with pytest.raises(ConfigError, match="'dev'.*whole number"):
        load_task("gsm8k", sizes={"dev": -1})


VALID = {
    "name": "mine",
    "description": "my task",
    "source": {"kind": "jsonl", "train": "train.jsonl", "test": "test.jsonl"},
    "fields": {"input": "q", "target": "a"},
    "template": "Q: {input}\nA:",
    "baseline_instruction": "Answer.",
    "scorer": "exact",
}


def write_task(tmp_path: Path, spec: dict, rows: int = 30) -> Path:
    for split in ("train", "test"):
        lines = [json.dumps({"q": f"{split} {i}", "a": str(i)}) for i in range(rows)]
        (tmp_path / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_user_task_file_with_data_next_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMPTOPT_DATA_DIR", raising=False)
    spec = {**VALID, "sizes": {"train": 10, "dev": 5, "test": 8}, "generation": {"max_tokens": 5}}
    task = load_task(write_task(tmp_path, spec))
    assert task.name == "mine" and task.generation == GenerationSettings(max_tokens=5)
    assert [len(task.examples(s)) for s in SPLITS] == [10, 5, 8]
    assert all(e.input.startswith("test") for e in task.examples("test"))
    assert all(e.input.startswith("train") for e in task.examples("dev"))


def test_user_task_with_a_scorer_file_next_to_it(tmp_path: Path) -> None:
    (tmp_path / "rules.py").write_text("def yes(output, example):\n    return 1.0\n")
    task = load_task(write_task(tmp_path, {**VALID, "scorer": "rules.py:yes"}))
    assert task.scorer.score("anything", task.examples("dev")[0]) == 1.0


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"template": "Q: {question}"}, "template must contain {input}"),
        ({"template": "{input} {other}"}, "brace field other than {input}"),
        ({"templte": "x"}, "unknown key 'templte' in the task file (did you mean 'template'?)"),
        ({"template": None}, "missing key 'template'"),
        ({"scorer": "exct"}, "unknown scorer 'exct' (did you mean 'exact'?)"),
        ({"scorer": "label"}, "label scorer needs label_words"),
        ({"scoring_mode": "logprob"}, "scoring_mode logprob needs label_words"),
        ({"scoring_mode": "generat"}, "unknown scoring_mode 'generat' (did you mean 'generate'?)"),
        ({"source": {"kind": "jsonll", "train": "a", "test": "b"}}, "did you mean 'jsonl'"),
        ({"source": {"kind": "jsonl", "train": "a"}}, "missing key 'test' in source"),
        ({"sizes": {"dev": "many"}}, "size of 'dev' in sizes must be a whole number"),
        ({"generation": {"max_tokens": 0}}, "'max_tokens' in generation"),
        ({"label_words": "positive"}, "'label_words' must be a list"),
        (
            {"fields": {"input": "q", "target": "a", "target_transform": "gsm"}},
            "did you mean 'gsm8k'",
        ),
    ],
)
def test_task_file_problems_are_one_line_and_name_the_file(
    tmp_path: Path, change: dict, problem: str
) -> None:
    spec = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    path = write_task(tmp_path, spec)
    with pytest.raises(ConfigError) as info:
        load_task(path)
    message = str(info.value)
    assert message.startswith(f"task file {path}: ")
    assert problem in message
    assert "\n" not in message


def test_task_file_missing_or_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="task file .*nope.yaml not found"):
        load_task(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"task file .*broken.yaml is not valid YAML at line 2"):
        load_task(broken)
    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_task(not_a_mapping)


def test_user_task_missing_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTOPT_DATA_DIR", raising=False)
    path = write_task(
        tmp_path, {**VALID, "source": {"kind": "jsonl", "train": "x.jsonl", "test": "test.jsonl"}}
    )
    with pytest.raises(
        DataError, match="put x.jsonl next to the task file or set PROMPTOPT_DATA_DIR"
    ):
        load_task(path)


# --------------------------------------------------------------------------- quick tasks


def test_task_from_data_file(data_dir: Path) -> None:
    task = task_from_data_file(
        data_dir / "gsm8k/test.jsonl", "question", "answer", scorer="numeric"
    )
    splits = {s: task.examples(s) for s in SPLITS}
    assert [len(splits[s]) for s in SPLITS] == [100, 20, 50]
    ids = [{e.id for e in splits[s]} for s in SPLITS]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    again = task_from_data_file(
        data_dir / "gsm8k/test.jsonl", "question", "answer", scorer="numeric"
    )
    assert again.examples("test") == splits["test"]
    assert task.template == "Input: {input}\nOutput:" and task.scorer.name == "numeric"
    with pytest.raises(DataError, match="has no field 'text'.*it has: question, answer"):
        task_from_data_file(data_dir / "gsm8k/test.jsonl", "text", "answer")


def test_task_from_a_small_file_shrinks_splits(tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    path.write_text("x,y\n" + "".join(f"in {i},out {i}\n" for i in range(30)))
    task = task_from_data_file(path, "x", "y", template="X: {input}\nY:", instruction="Do it.")
    sizes = [len(task.examples(s)) for s in SPLITS]
    assert sum(sizes) == 30 and all(sizes)
    assert task.baseline_prompt() == Prompt("Do it.", "X: {input}\nY:")


def test_task_from_examples() -> None:
    train = [Example("1", "a", "b")]
    task = Task.from_examples("t", train, [Example("2", "c", "d")], [], scorer="contains")
    assert task.examples("train") == train and task.examples("test") == []
    assert task.scorer.name == "contains" and task.scoring_mode == "generate"


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"test": 0}, "--test-size must be at least 1, got 0: the result is each prompt's"),
        ({"dev": 0}, "--dev-size must be at least 1, got 0: candidates are chosen by their dev"),
        ({"train": -2}, "--train-size must be at least 1, got -2: strategies propose"),
    ],
)
def test_requested_sizes_must_hold_an_example(sizes: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_requested_sizes(sizes)
    check_requested_sizes({"train": 1, "dev": 1, "test": None})
    check_requested_sizes(None)


def test_an_empty_split_is_refused_with_why_and_what_to_change(tmp_path: Path) -> None:
    examples = [Example(id=str(i), input=f"w{i}", target="t") for i in range(4)]
    require_examples(Task.from_examples("t", examples, examples, examples), SPLITS)
    no_test = Task.from_examples("t", examples, examples, [])
    require_examples(no_test, ("train", "dev"))
    with pytest.raises(ConfigError, match="task 't' has no test examples .*held-out test file"):
        require_examples(no_test, SPLITS)

    # A task file whose test data repeats its train data: test drops every input.
    rows = "".join(json.dumps({"input": f"w{i}", "target": "t"}) + "\n" for i in range(8))
    (tmp_path / "same.jsonl").write_text(rows)
    path = tmp_path / "same.yaml"
    path.write_text(
        "name: same\nsource: {kind: jsonl, train: same.jsonl, test: same.jsonl}\n"
        'template: "Input: {input}\\nOutput:"\nbaseline_instruction: Copy.\n'
    )
    with pytest.raises(ConfigError, match="task 'same' has no test examples"):
        require_examples(load_task(path), SPLITS)

    # A task whose sizes give dev 0 examples is told where to change that.
    sized = Task.from_examples("t", examples, [], examples, sizes={"dev": 0})
    with pytest.raises(ConfigError, match="its sizes give dev 0 examples: set it to 1 or more"):
        require_examples(sized, SPLITS)
