from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.core.domain import Budget, Completion, Usage
from promptopt.core.errors import ConfigError
from promptopt.evaluation.evaluator import Evaluator
from promptopt.llm.meter import MeteredLLM
from promptopt.run.store import RunStore, read_events
from promptopt.strategies.base import SearchContext
from promptopt.strategies.instructzero import InstructZero, InstructZeroConfig
from tests.fakes import ScriptedLLM
from tests.strategies.test_ape import make_task, proposer_reply, target_reply

INSTRUCTIONS = ["Write the opposite of the word.", "Repeat the word.", "Say something nice."]


class FakeWriter:
    """Turns a soft prompt into one of three instructions by its first coordinate.

    With `distinct=True` every soft prompt writes its own instruction, so no
    search ever runs out of new instructions; with `constant=True` every soft
    prompt writes the same one, the collapse seen with the 135M writer; with
    `empty=True` half the soft prompts write nothing.
    """

    kind = "fake"
    model_id = "fake-writer"
    supports_embeddings_input = True
    supports_logprobs = False
    hidden_size = 8

    def __init__(self, distinct: bool = False, constant: bool = False, empty: bool = False) -> None:
        self.rows = 0
        self.shapes: list[tuple[int, ...]] = []
        self.distinct = distinct
        self.constant = constant
        self.empty = empty

    def embedding_std(self) -> float:
        return 0.5

    def render(self, messages, text):  # type: ignore[no-untyped-def]
        return messages[0].content

    def generate_from_soft_prompts(self, soft, text, *, max_tokens=48, stop=("\n",)):  # type: ignore[no-untyped-def]
        self.shapes.append(tuple(soft.shape))
        self.rows += soft.shape[0]
        first = soft[:, 0, 0]
        if self.distinct:
            return Completion(texts=[f"Repeat the word, variant {v:.9f}." for v in first.tolist()])
        if self.empty:  # an empty reply for half the soft prompts, a useless one otherwise
            return Completion(texts=['""' if v > 0 else INSTRUCTIONS[2] for v in first.tolist()])
        if self.constant:
            return Completion(texts=[INSTRUCTIONS[1]] * soft.shape[0])
        picks = [0 if v > 0.3 else 1 if v > -0.3 else 2 for v in first.tolist()]
        return Completion(texts=[f'The instruction is "{INSTRUCTIONS[p]}"' for p in picks])


def context(tmp_path: Path, writer: object, budget: Budget | None = None):
    usage = Usage()
    target = ScriptedLLM(target_reply)
    task = make_task()
    ctx = SearchContext(
        task=task,
        evaluator=Evaluator(MeteredLLM(target, usage, budget), task),
        proposer=MeteredLLM(writer, usage, budget),  # type: ignore[arg-type]
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
    assert result.stats == {
        "soft_prompts": 8,
        "distinct_instructions": len(seen),
        "not_instructions": 0,
    }
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


UNTIL_BUDGET = {**SMALL, "rounds": 0, "dev_subset": 5}  # a new point costs 1 + 5 calls


def stop_events(run_dir: Path) -> list[dict]:
    return [e for e in read_events(run_dir) if e["event"] == "stopped"]


def test_rounds_zero_runs_until_the_call_budget_is_spent(tmp_path: Path) -> None:
    writer = FakeWriter(distinct=True)
    ctx, usage, target = context(tmp_path, writer, Budget(max_calls=100))
    result = InstructZero().search(ctx, InstructZeroConfig(**UNTIL_BUDGET))
    # Every point writes a new instruction, so every call pays for 1 + 5: 16 points fit in 100.
    assert writer.rows == 16 and usage.calls == 96 == writer.rows + target.generate_calls
    assert result.stopped_by_budget and len(result.candidates) == 16
    assert [e["reason"] for e in stop_events(tmp_path / "run")] == ["budget_spent"]
    # 4 initial points, then 6 rounds of 2; the 4 calls left pay for no point.
    assert [shape[0] for shape in writer.shapes] == [4] + [2] * 6


def test_last_round_is_shrunk_to_what_the_budget_pays_for(tmp_path: Path) -> None:
    writer = FakeWriter(distinct=True)
    ctx, usage, _ = context(tmp_path, writer, Budget(max_calls=40))
    result = InstructZero().search(ctx, InstructZeroConfig(**UNTIL_BUDGET))
    # 4 initial points cost 24; 16 left pay for 2 points, then 4 left pay for none.
    assert [shape[0] for shape in writer.shapes] == [4, 2]
    assert usage.calls == 36 and result.stopped_by_budget
    writer = FakeWriter(distinct=True)
    ctx, usage, _ = context(tmp_path / "odd", writer, Budget(max_calls=35))
    InstructZero().search(ctx, InstructZeroConfig(**UNTIL_BUDGET))
    assert [shape[0] for shape in writer.shapes] == [4, 1] and usage.calls == 30


def test_fixed_rounds_shrink_instead_of_failing_the_last_round(tmp_path: Path) -> None:
    writer = FakeWriter(distinct=True)
    ctx, usage, _ = context(tmp_path, writer, Budget(max_calls=35))
    result = InstructZero().search(ctx, InstructZeroConfig(**{**SMALL, "dev_subset": 5}))
    assert [shape[0] for shape in writer.shapes] == [4, 1]
    assert result.stopped_by_budget and len(result.candidates) == 5 and usage.calls == 30


def test_rounds_zero_without_budget_stops_at_max_rounds(tmp_path: Path) -> None:
    writer = FakeWriter(distinct=True)
    ctx, _, _ = context(tmp_path, writer)
    result = InstructZero().search(ctx, InstructZeroConfig(**UNTIL_BUDGET, max_rounds=3))
    assert writer.rows == 4 + 3 * 2 and not result.stopped_by_budget
    assert stop_events(tmp_path / "run") == []


@pytest.mark.parametrize("optimizer", ["random", "bo"])
def test_writer_stuck_on_one_instruction_stops_after_patience_rounds(
    tmp_path: Path, optimizer: str
) -> None:
    writer = FakeWriter(constant=True)
    ctx, usage, target = context(tmp_path, writer, Budget(max_calls=1000))
    config = InstructZeroConfig(**{**UNTIL_BUDGET, "optimizer": optimizer}, patience=3)
    result = InstructZero().search(ctx, config)
    # The one instruction is scored once; then 3 rounds write only it again.
    assert target.generate_calls == 5 and writer.rows == 4 + 3 * 2
    assert usage.calls == 5 + 10 and not result.stopped_by_budget
    assert [e["reason"] for e in stop_events(tmp_path / "run")] == ["stalled"]
    assert [c.prompt.instruction for c in result.candidates] == [INSTRUCTIONS[1]]
    assert result.stats["distinct_instructions"] == 1 and result.stats["soft_prompts"] == 10


def test_new_knobs_are_validated() -> None:
    with pytest.raises(ConfigError, match="rounds"):
        InstructZeroConfig(rounds=-1)
    for name in ("max_rounds", "patience"):
        with pytest.raises(ConfigError, match=name):
            InstructZeroConfig(**{name: 0})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"intrinsic_dim": 0}, "intrinsic_dim must be at least 1, got 0"),
        ({"n_tokens": 0}, "n_tokens must be at least 1, got 0"),
        ({"initial_points": 1}, "initial_points must be at least 2, got 1"),
        ({"batch_per_round": 0}, "batch_per_round must be at least 1, got 0"),
        ({"dev_subset": 0}, "dev_subset must be at least 1, got 0"),
        ({"max_instruction_tokens": 0}, "max_instruction_tokens must be at least 1, got 0"),
        ({"acq_restarts": 0}, "acq_restarts must be at least 1, got 0"),
        ({"acq_raw_samples": 3, "acq_restarts": 4}, "acq_raw_samples must be at least 4, got 3"),
        ({"projection_scale": 0.0}, "projection_scale must be above 0, got 0.0"),
        ({"projection_scale": float("nan")}, "projection_scale must be a finite number"),
    ],
)
def test_every_knob_is_range_checked(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        InstructZeroConfig(**values)


def test_empty_replies_are_not_scored_and_never_beat_a_scored_instruction(
    tmp_path: Path,
) -> None:
    writer = FakeWriter(empty=True)
    ctx, usage, target = context(tmp_path, writer)
    result = InstructZero().search(ctx, InstructZeroConfig(**{**SMALL, "optimizer": "random"}))
    assert {c.prompt.instruction for c in result.candidates} == {"", INSTRUCTIONS[2]}
    # Only the real instruction reaches the target, and it wins the 0-0 tie on evidence.
    assert target.generate_calls == 20 and usage.calls == 20 + writer.rows
    assert result.best.prompt.instruction == INSTRUCTIONS[2] and result.best.dev_n == 20
    assert result.candidates[-1].dev_n == 0


def test_a_broken_bo_round_explores_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import promptopt.strategies.instructzero_bo as bayesopt

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("cholesky_cpu: the factorization could not be completed")

    monkeypatch.setattr(bayesopt, "optimize_acqf", broken)
    writer = FakeWriter()
    ctx, _, _ = context(tmp_path, writer)
    result = InstructZero().search(ctx, InstructZeroConfig(**SMALL))
    assert result.candidates and writer.rows == 4 + 2 * 2
    failed = [e for e in read_events(tmp_path / "run") if e["event"] == "bo_failed"]
    assert [e["round"] for e in failed] == [1, 2] and "cholesky" in failed[0]["error"]
