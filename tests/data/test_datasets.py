"""Loaders on the real data files, their error messages, and seeded sampling."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from promptopt.core.domain import Example
from promptopt.core.errors import ConfigError, DataError
from promptopt.data import datasets
from promptopt.data.datasets import (
    gsm8k_answer,
    load_jsonl,
    load_records,
    load_tsv_classification,
    sample,
    split_dev_test,
)
from promptopt.data.instruction_induction import load_instruction_induction

II = "instruction_induction"
FSC = "few_shot_classification"


def pool(n: int, classes: int = 1) -> list[Example]:
    return [Example(id=str(i), input=f"q{i}", target=f"c{i % classes}") for i in range(n)]


# --------------------------------------------------------------------------- GSM8K


def test_gsm8k_answer_splits_number_and_solution() -> None:
    solution = (
        "She pays 2 * 600 = $<<2*600=1200>>1200.\n"
        "In total 1,200 - 5 = <<1200-5=1195>>1195.\n#### 1,195"
    )
    target, demo = gsm8k_answer(solution)
    assert target == "1195"
    assert demo == "She pays 2 * 600 = $1200.\nIn total 1,200 - 5 = 1195.\nThe answer is 1195."


def test_gsm8k_answer_needs_the_marker() -> None:
    with pytest.raises(ValueError, match="####"):
        gsm8k_answer("just 5")


def test_load_gsm8k(data_dir: Path) -> None:
    train = load_jsonl(data_dir / "gsm8k/train.jsonl", "question", "answer", gsm8k_answer)
    assert len(train) == 7473
    first = train[0]
    assert first.id == "train-1"
    assert first.input.startswith("Natalia sold clips to 48 of her friends")
    assert first.target == "72"
    assert first.demo_output is not None
    assert "<<" not in first.demo_output and "####" not in first.demo_output
    assert first.demo_output.endswith("The answer is 72.")
    assert all(e.target.lstrip("-").isdigit() for e in train)  # commas removed everywhere
    test = load_jsonl(data_dir / "gsm8k/test.jsonl", "question", "answer", gsm8k_answer)
    assert len(test) == 1319 and test[0].id == "test-1"


# --------------------------------------------------------------------------- record files


def test_missing_field_names_file_line_and_keys(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": "x", "b": "y"}\n\n{"a": "x2"}\n')
    with pytest.raises(DataError) as info:
        load_jsonl(path, "question", "b")
    assert str(info.value) == (
        f"data file {path} line 1 has no field 'question': pass --input-field/--target-field "
        "matching its keys (it has: a, b)"
    )
    with pytest.raises(DataError, match=r"line 3 has no field 'b'.*\(it has: a\)"):
        load_jsonl(path, "a", "b")


def test_bad_json_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": "x", "b": "y"}\n{oops\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        load_jsonl(path, "a", "b")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.jsonl not found"):
        load_jsonl(tmp_path / "nope.jsonl", "a", "b")


def test_target_transform_problem_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "math.jsonl"
    path.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    with pytest.raises(DataError, match="line 1: field 'answer' does not fit"):
        load_jsonl(path, "question", "answer", gsm8k_answer)


def test_demo_field_and_non_string_values(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"x": 1, "y": 2, "why": "because"}) + "\n")
    [example] = load_jsonl(path, "x", "y", demo_field="why")
    assert (example.input, example.target, example.demo_output) == ("1", "2", "because")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("d.csv", "x,y\nhello,world\n"),
        ("d.tsv", "x\ty\nhello\tworld\n"),
        ("d.json", json.dumps([{"x": "hello", "y": "world"}])),
        ("d.jsonl", json.dumps({"x": "hello", "y": "world"}) + "\n"),
    ],
)
def test_load_records_by_suffix(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    [example] = load_records(path, "x", "y")
    assert (example.input, example.target) == ("hello", "world")
    assert example.id.startswith("d-")


# --------------------------------------------------------------------------- classification


def test_sst2_label_words(data_dir: Path) -> None:
    train = load_tsv_classification(
        data_dir / FSC / "sst-2/16-42/train.tsv", ["negative", "positive"]
    )
    by_text = {e.input: e.target for e in train}
    assert by_text["a classy , sprightly spin on film ."] == "positive"
    assert by_text["sad nonsense , this ."] == "negative"
    assert Counter(by_text.values()) == {"negative": 16, "positive": 16}
    assert train[0].id == "train-2"  # line number: the header is line 1


def test_tsv_reads_text_header_crlf_and_csv_quoting(data_dir: Path) -> None:
    words = ["world", "sports", "business", "tech"]
    train = load_tsv_classification(data_dir / FSC / "agnews/16-42/train.tsv", words)
    assert len(train) == 64  # this file's header says "text", not "sentence"
    test = load_tsv_classification(data_dir / FSC / "agnews/16-42/test.tsv", words)
    assert len(test) == 7600
    assert not any("\r" in e.input or e.input.startswith('"') for e in test)
    quoted = [e for e in test if '"Music Manifesto"' in e.input]
    assert len(quoted) == 1 and quoted[0].target == "tech"


def test_tsv_label_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("sentence\tlabel\ngood\t1\nodd\t7\n")
    with pytest.raises(DataError, match="line 3 has label.*2 label words"):
        load_tsv_classification(path, ["negative", "positive"])


def test_tsv_needs_a_label_column(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("sentence\tclass\ngood\t1\n")
    with pytest.raises(DataError, match="header.*'label'"):
        load_tsv_classification(path, ["negative", "positive"])


# --------------------------------------------------------------------------- instruction induction


def test_default_adapter_ids_and_aliases(data_dir: Path) -> None:
    examples = load_instruction_induction(data_dir / II / "execute/word_in_context.json")
    assert [e.id for e in examples[:2]] == ["execute-1", "execute-2"]
    assert examples[0].target == "not the same"
    assert examples[0].aliases == ("no", "false")


def test_translation_aliases_drop_empty_strings(data_dir: Path) -> None:
    examples = load_instruction_induction(data_dir / II / "induce/translation_en-de.json")
    assert all(a.strip() for e in examples for a in e.aliases)
    train = next(e for e in examples if e.input == "train")
    assert train.target == "Zug" and "Eisenbahn" in train.aliases and "Zug" not in train.aliases


def test_rhymes_merge_repeated_words_and_never_accept_the_input(data_dir: Path) -> None:
    examples = load_instruction_induction(data_dir / II / "induce/rhymes.json")
    inputs = [e.input for e in examples]
    assert len(inputs) == len(set(inputs)) == 887  # 3,000 rows, each word once
    for e in examples:
        assert e.input not in e.aliases and e.target != e.input
    pig = next(e for e in examples if e.input == "pig")
    assert {pig.target, *pig.aliases} == {"big", "dig"}


def test_cause_and_effect_adapter(data_dir: Path) -> None:
    path = data_dir / II / "execute/cause_and_effect.json"
    raw = json.loads(path.read_text())["examples"]
    examples = load_instruction_induction(path, "cause_and_effect")
    assert len(examples) == 25
    orders = Counter()
    for e in examples:
        item = raw[e.id.removeprefix("execute-")]
        assert e.target == item["cause"]
        cause_first = f"Sentence 1: {item['cause']} Sentence 2: {item['effect']}"
        effect_first = f"Sentence 1: {item['effect']} Sentence 2: {item['cause']}"
        assert e.input in (cause_first, effect_first)
        orders[e.input == cause_first] += 1
    assert orders[True] > 3 and orders[False] > 3  # both orders occur
    assert load_instruction_induction(path, "cause_and_effect") == examples  # stable


def test_common_concept_adapter_merges_repeated_items(data_dir: Path) -> None:
    examples = load_instruction_induction(
        data_dir / II / "execute/common_concept.json", "common_concept"
    )
    assert len(examples) == 15  # 16 rows; rows 1 and 2 share their items
    first = examples[0]
    assert first.id == "execute-1"
    assert first.input == "rock climbing, elevators, helicopters"
    assert first.target == "involve vertical movement."
    assert first.aliases == ("involve going up.",)


def test_unknown_adapter_and_missing_fields(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"adapter 'comon_concept' \(did you mean 'common_concept'",
    ):
        load_instruction_induction(data_dir / II / "execute/common_concept.json", "comon_concept")
    with pytest.raises(DataError, match="example '1' has no field 'input'.*it has: concept, items"):
        load_instruction_induction(data_dir / II / "execute/common_concept.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(DataError, match="not in the instruction-induction format"):
        load_instruction_induction(bad)


# --------------------------------------------------------------------------- hub fallback


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="datasets installed")
def test_hub_loader_without_the_datasets_package() -> None:
    with pytest.raises(datasets.HubUnavailable, match="'datasets' package is not installed"):
        datasets.load_hf_dataset("openai/gsm8k", "main", "train", "question", "answer")


# --------------------------------------------------------------------------- sampling


def test_sample_is_deterministic_and_seed_dependent() -> None:
    examples = pool(100)
    assert sample(examples, 10, seed=1) == sample(examples, 10, seed=1)
    assert sample(examples, 10, seed=1) != sample(examples, 10, seed=2)
    assert sample(examples, 5, seed=1) == sample(examples, 10, seed=1)[:5]  # nested sizes
    assert sorted(sample(examples, None, seed=3), key=lambda e: int(e.id)) == examples
    assert len(sample(examples, 1000, seed=3)) == 100
    assert examples == pool(100)  # the input is left alone


def test_split_dev_test_is_disjoint_and_stable() -> None:
    examples = pool(100)
    dev, test = split_dev_test(examples, 20, seed=0, test_n=50)
    assert (len(dev), len(test)) == (20, 50)
    assert not {e.id for e in dev} & {e.id for e in test}
    assert (dev, test) == split_dev_test(examples, 20, seed=0, test_n=50)
    assert dev != split_dev_test(examples, 20, seed=1, test_n=50)[0]
    # Changing one size leaves the other split alone.
    assert split_dev_test(examples, 30, seed=0, test_n=50)[1] == test
    assert split_dev_test(examples, 20, seed=0, test_n=40)[0] == dev
    dev_all, rest = split_dev_test(examples, 20, seed=0)
    assert dev_all == dev and len(rest) == 80


def test_split_dev_test_shrinks_in_proportion() -> None:
    dev, test = split_dev_test(pool(25), 20, seed=0, test_n=50)
    assert (len(dev), len(test)) == (7, 18)
    dev, test = split_dev_test(pool(2), 20, seed=0, test_n=50)
    assert (len(dev), len(test)) == (1, 1)
    assert split_dev_test([], 5, seed=0, test_n=5) == ([], [])


def test_stratified_sampling_balances_classes() -> None:
    examples = pool(96, classes=6)
    assert Counter(e.target for e in sample(examples, 30, seed=4, stratify=True)) == {
        f"c{i}": 5 for i in range(6)
    }
    dev, rest = split_dev_test(examples, 48, seed=4, stratify=True)
    assert set(Counter(e.target for e in dev).values()) == {8}
    assert set(Counter(e.target for e in rest).values()) == {8}
