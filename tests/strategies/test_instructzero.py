from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.errors import ConfigError
from promptopt.evaluate import Evaluator
from promptopt.llm.meter import MeteredLLM
from promptopt.store import RunStore, read_events
from promptopt.strategies.base import SearchContext
from promptopt.strategies.instructzero import InstructZero, InstructZeroConfig
from promptopt.types import Budget, Completion, Usage
from tests.fakes import ScriptedLLM
from tests.strategies.test_ape import make_task, proposer_reply, target_reply

INSTRUCTIONS = ["Write the opposite of the word.", "Repeat the word.", "Say something nice."]


class FakeWriter:
    """Turns a soft prompt into one of three instructions by its first coordinate."""

    kind = "fake"
    model_id = "fake-writer"
    supports_embeddings_input = True
    supports_logprobs = False
    hidden_size = 8

    def __init__(self) -> None:
        self.rows = 0
        self.shapes: list[tuple[int, ...]] = []

    def embedding_std(self) -> float:
        return 0.5

    def render(self, messages, text):  # type: ignore[no-untyped-def]
        return messages[0].content

    def generate_from_soft_prompts(self, soft, text, *, max_tokens=48, stop=("\n",)):  # type: ignore[no-untyped-def]
        self.shapes.append(tuple(soft.shape))
        self.rows += soft.shape[0]
        first = soft[:, 0, 0]
        picks = [0 if v > 0.3 else 1 if v > -0.3 else 2 for v in first.tolist()]
        return Completion(texts=[f'The instruction is "{INSTRUCTIONS[p]}"' for p in picks])


def context(tmp_path: Path, writer: object, budget: Budget | None = None):
    usage = Usage()
    target = ScriptedLLM(target_reply)
    task = make_task()
    ctx = SearchContext(
        task=task,
        evaluator=Evaluator(MeteredLLM(target, usage, budget), task),
        proposer=MeteredLLM(ScriptedLLM(proposer_reply), usage, budget),
        seed=0,
        store=RunStore(tmp_path / "run", {"task": "opposites"}),
        proposer_base=writer,  # type: ignore[arg-type]
        usage=usage,
        budget=budget or Budget(),
    )
    return ctx, usage, target


SMALL = {
    "intrinsic_dim": 3,
    "n_tokens": 2,
    "initial_points": 4,
    "rounds": 2,
    "batch_per_round": 2,
    "acq_restarts": 2,
    "acq_raw_samples": 32,
}


def test_search_writes_scores_once_per_instruction_and_records_every_z(tmp_path: Path) -> None:
    writer = FakeWriter()
    ctx, usage, target = context(tmp_path, writer)
    result = InstructZero().search(ctx, InstructZeroConfig(**SMALL))
    assert writer.rows == 4 + 2 * 2
    assert all(shape[1:] == (2, 8) for shape in writer.shapes)
    seen = {c.prompt.instruction for c in result.candidates}
    assert seen <= set(INSTRUCTIONS)
    # Each distinct instruction is scored on the 20 dev examples exactly once.
    assert target.generate_calls == 20 * len(seen)
    observed = [e for e in read_events(tmp_path / "run") if e["event"] == "observed"]
    assert len(observed) == 8 and all(len(e["z"]) == 3 for e in observed)
    assert usage.calls == target.generate_calls + writer.rows
    if INSTRUCTIONS[0] in seen:
        assert result.best.prompt.instruction == INSTRUCTIONS[0]


def test_random_optimizer_and_kernels_run(tmp_path: Path) -> None:
    for k, params in enumerate(({"optimizer": "random"}, {"kernel": "matern"})):
        ctx, _, _ = context(tmp_path / str(k), FakeWriter())
        result = InstructZero().search(ctx, InstructZeroConfig(**{**SMALL, **params}))
        assert result.candidates


def test_same_seed_same_run(tmp_path: Path) -> None:
    runs = []
    for k in range(2):
        ctx, _, _ = context(tmp_path / str(k), FakeWriter())
        InstructZero().search(ctx, InstructZeroConfig(**SMALL))
        runs.append(
            [e["z"] for e in read_events(tmp_path / str(k) / "run") if e["event"] == "observed"]
        )
    assert runs[0] == runs[1]


def test_budget_stop_keeps_best_so_far(tmp_path: Path) -> None:
    ctx, usage, _ = context(tmp_path, FakeWriter(), Budget(max_calls=45))
    result = InstructZero().search(ctx, InstructZeroConfig(**SMALL))
    assert result.stopped_by_budget and result.candidates


def test_writer_must_take_embeddings(tmp_path: Path) -> None:
    ctx, _, _ = context(tmp_path, ScriptedLLM(proposer_reply))
    with pytest.raises(ConfigError, match="input embeddings"):
        InstructZero().search(ctx, InstructZeroConfig(**SMALL))


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="kernel"):
        InstructZeroConfig(kernel="rbf")
    with pytest.raises(ConfigError, match="initial_points"):
        InstructZeroConfig(initial_points=1)
