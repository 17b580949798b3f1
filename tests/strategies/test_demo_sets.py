"""Candidate demonstration sets: drawn from train only, distinct, balanced, bootstrapped."""

from __future__ import annotations

import random
from pathlib import Path

from promptopt.core.domain import EvalResult, Example, ExampleResult
from promptopt.data.task import load_task
from promptopt.strategies.demo_sets import (
    balanced_sample,
    bootstrapped_examples,
    candidate_sets,
)


def examples(n: int, labels: tuple[str, ...] = ("a", "b")) -> list[Example]:
    return [Example(id=f"e{i}", input=f"in {i}", target=labels[i % len(labels)]) for i in range(n)]


def test_sets_start_empty_are_distinct_and_bounded() -> None:
    train = examples(20)
    sets = candidate_sets(train, [], count=6, max_demos=4, labels=0, rng=random.Random(0))
    assert len(sets) == 6 and sets[0].demos == () and sets[0].label == "no demos"
    keys = {tuple(sorted(d.id for d in s.demos)) for s in sets}
    assert len(keys) == 6
    assert all(1 <= len(s.demos) <= 4 for s in sets[1:])
    assert {len(s.demos) for s in sets[1:]} >= {1, 3, 4}


def test_balanced_takes_the_labels_in_turn() -> None:
    train = examples(30, labels=("neg", "pos", "neu"))
    picked = balanced_sample(train, 3, random.Random(1))
    assert sorted(e.target for e in picked) == ["neg", "neu", "pos"]
    sets = candidate_sets(train, train[:5], count=4, max_demos=3, labels=3, rng=random.Random(2))
    assert [s.source for s in sets] == ["none", "balanced", "balanced", "random"]
    for demo_set in sets[1:3]:  # one, then two of each label
        targets = sorted(e.target for e in demo_set.demos)
        assert len(targets) in (3, 6)
        assert targets == sorted(["neg", "neu", "pos"] * (len(targets) // 3))


def test_bootstrapped_keeps_right_answers_and_the_models_own_reasoning() -> None:
    pool = [
        Example(id="q1", input="1+1", target="2", demo_output="gold 1+1=2"),
        Example(id="q2", input="2+2", target="4", demo_output="gold 2+2=4"),
    ]
    scored = EvalResult(
        score=0.5,
        n=2,
        results=[
            ExampleResult("q1", "One plus one is 2. The answer is 2.", "2", 1.0),
            ExampleResult("q2", "The answer is 5.", "5", 0.0),
        ],
    )
    kept = bootstrapped_examples(pool, scored, reasoning=True)
    assert [e.id for e in kept] == ["q1"]
    assert kept[0].shown_output == "One plus one is 2. The answer is 2."
    plain = bootstrapped_examples(pool, scored, reasoning=False)
    assert plain[0].shown_output == "gold 1+1=2"
    sets = candidate_sets(examples(10), kept, 3, 3, False, random.Random(0))
    assert sets[1].source == "bootstrapped" and sets[1].demos == (kept[0],)


def test_demonstrations_never_come_from_dev_or_test(data_dir: Path) -> None:
    for name in ("antonyms", "sst2"):
        task = load_task(name)
        train = task.examples("train")
        held_out = task.examples("dev") + task.examples("test")
        held_ids = {e.id for e in held_out}
        held_inputs = {e.input for e in held_out}
        sets = candidate_sets(train, train[:5], 8, 4, len(task.label_words or ()), random.Random(3))
        for demo_set in sets:
            for demo in demo_set.demos:
                assert demo.id not in held_ids and demo.input not in held_inputs
