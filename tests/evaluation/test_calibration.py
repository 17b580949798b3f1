"""Label calibration: balanced calibration inputs, the measured prior, and the
evaluator applying a prompt's prior (scripted model: logic only)."""

from __future__ import annotations

import math
import random

import pytest

from promptopt.core.domain import Example, LogprobRequest, Prompt
from promptopt.core.errors import ConfigError
from promptopt.data.task import Task
from promptopt.evaluation.calibration import calibrated, calibration_inputs, label_prior
from promptopt.evaluation.evaluator import Evaluator
from tests.fakes import ScriptedLLM, last_user_text

WORDS = ("yes", "no")


def biased(request: LogprobRequest, word: str) -> float:
    """Prefers 'yes' by 2 nats whatever the input, plus 1 nat for the right label."""
    text = last_user_text(request)
    right = "yes" if "good" in text else "no"
    return (2.0 if word == "yes" else 0.0) + (1.0 if word == right else 0.0)


def make_task() -> Task:
    examples = [
        Example(f"e{i}", f"{'good' if i % 2 == 0 else 'bad'} thing {i}", WORDS[i % 2])
        for i in range(20)
    ]
    return Task.from_examples(
        "yesno",
        train=examples[:10],
        dev=examples[10:16],
        test=examples[16:],
        scorer="label",
        instruction="Is it fine?",
        label_words=WORDS,
        scoring_mode="logprob",
    )


def test_calibration_inputs_alternate_labels_and_stop_at_count() -> None:
    task = make_task()
    chosen = calibration_inputs(task.examples("train"), WORDS, 4, random.Random(0))
    assert [e.target for e in chosen] == ["yes", "no", "yes", "no"]
    everything = calibration_inputs(task.examples("train"), WORDS, 99, random.Random(0))
    assert len(everything) == 10 and len({e.id for e in everything}) == 10


def test_prior_is_the_mean_label_distribution_over_the_inputs() -> None:
    task = make_task()
    evaluator = Evaluator(ScriptedLLM(lambda r, s: "", logprob=biased), task)
    inputs = calibration_inputs(task.examples("train"), WORDS, 4, random.Random(0))
    prior = label_prior(evaluator, task.baseline_prompt(), inputs)
    # 'good' inputs: yes 3 nats vs no 0; 'bad': yes 2 vs no 1.
    p_yes = (1 / (1 + math.exp(-3)) + 1 / (1 + math.exp(-1))) / 2
    assert prior == pytest.approx((math.log(p_yes), math.log(1 - p_yes)))


def test_a_calibrated_prompt_undoes_the_bias_at_no_extra_calls() -> None:
    task = make_task()
    llm = ScriptedLLM(lambda r, s: "", logprob=biased)
    evaluator = Evaluator(llm, task)
    raw = task.baseline_prompt()
    inputs = calibration_inputs(task.examples("train"), WORDS, 4, random.Random(0))
    fixed = calibrated(evaluator, raw, inputs)
    calls = llm.logprob_calls
    test = task.examples("test")
    raw_result, fixed_result = evaluator.evaluate_many([raw, fixed], test)
    assert raw_result.score == 0.5  # 'yes' to everything
    assert fixed_result.score == 1.0
    assert llm.logprob_calls - calls == len(test)  # the twins share their requests


def test_a_prior_for_another_label_set_is_a_one_line_error() -> None:
    task = make_task()
    evaluator = Evaluator(ScriptedLLM(lambda r, s: "", logprob=biased), task)
    prompt = Prompt("Is it fine?", task.template, calibration=(0.0, 0.0, 0.0))
    with pytest.raises(ConfigError, match="3 values but task 'yesno' has 2 labels"):
        evaluator.evaluate(prompt, task.examples("test"))


def test_calibration_round_trips_and_old_exports_have_none() -> None:
    prompt = Prompt("x", "{input}", calibration=(-0.1, -2.3))
    assert Prompt.from_dict(prompt.to_dict()) == prompt
    assert Prompt.from_dict({"instruction": "x", "template": "{input}"}).calibration == ()
