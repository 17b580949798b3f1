"""RLPrompt killed after a checkpoint and resumed from policy.pt: the target calls of
the steps before the checkpoint are charged (the journal replays them), so usage,
budget, candidates and events equal an uninterrupted run's (issue 14).

The policy is a tiny random GPT-2 over a 16-word vocabulary and the target a
scripted model with label log-probabilities, on the real sst2 data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from promptopt.core.domain import Budget, LogprobRequest
from promptopt.core.errors import BudgetExhausted, ConfigError
from promptopt.llm.factory import ModelSpec
from promptopt.run import search as search_module
from promptopt.run.search import SearchSpec, run_search
from promptopt.run.store import RUN_MARKERS, read_events
from promptopt.strategies import rlprompt
from tests.fakes import ScriptedLLM
from tests.strategies.test_rlprompt import tiny_lm

pytestmark = pytest.mark.usefixtures("data_dir", "isolated_cache")

WORDS = "<s> great awful movie review is the sentiment classify good bad film rate this text label"
PARAMS = {
    "steps": "7",
    "prompts_per_step": "3",
    "examples_per_step": "2",
    "prompt_length": "2",
    "mlp_hidden": "16",
    "top_k": "0",
    "eval_every": "3",
    "checkpoint_every": "2",
    "top_sampled": "2",
}


class WordTokenizer:
    """Token i is the i-th of WORDS; 0 is the only special token."""

    all_special_ids = [0]

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [1, 2]}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return " ".join(WORDS.split()[i] for i in ids if i != 0)


class TinyPolicyBase:
    """What RLPrompt reads of a local proposer: its model, tokenizer and chat rendering."""

    kind, model_id = "hf", "tiny-policy"
    supports_logprobs = supports_embeddings_input = False

    def __init__(self) -> None:
        self.model = tiny_lm(vocab=16)
        self.tokenizer = WordTokenizer()

    def render(self, messages, text):  # type: ignore[no-untyped-def]
        return messages[0].content


def label_logprob(request: LogprobRequest, label: str) -> float:
    """Depends on the whole prompt, so prompts earn different rewards."""
    text = "\n".join(m.content for m in request.messages) + (request.text or "")
    return -hashlib.sha256(f"{text}|{label}".encode()).digest()[0] / 64


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> ScriptedLLM:
    models = {
        "target": ScriptedLLM(lambda r, s: "positive", logprob=label_logprob, model_id="target"),
        "policy": TinyPolicyBase(),
    }
    monkeypatch.setattr(search_module, "build_llm", lambda spec: models[spec.model])
    return models["target"]  # type: ignore[return-value]


def spec(tmp_path: Path, run: str, budget: int | None) -> SearchSpec:
    return SearchSpec(
        task="sst2",
        strategy="rlprompt",
        params=dict(PARAMS),
        target=ModelSpec("hf", "target"),
        proposer=ModelSpec("hf", "policy"),
        sizes={"train": 20, "dev": 4, "test": 4},
        budget=Budget(max_calls=budget),
        run_dir=tmp_path / run,
        use_cache=False,
        demo_sets=0,
    )


def search_events(run_dir: Path) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in e.items() if k != "t"}
        for e in read_events(run_dir)
        if e["event"] not in RUN_MARKERS
    ]


def kill_in_step_5(monkeypatch: pytest.MonkeyPatch, run_dir: Path, budget: int | None) -> None:
    """Run until Ctrl-C in step 5, after its reward calls (the policy saved at step 4)."""
    step = rlprompt.policy_gradient_step
    steps = {"n": 0}

    def killed(*args: Any, **kwargs: Any) -> float:
        steps["n"] += 1
        if steps["n"] == 5:
            raise KeyboardInterrupt
        return step(*args, **kwargs)

    monkeypatch.setattr(rlprompt, "policy_gradient_step", killed)
    with pytest.raises(KeyboardInterrupt):
        run_search(spec(run_dir.parent, run_dir.name, budget))
    monkeypatch.setattr(rlprompt, "policy_gradient_step", step)
    assert (run_dir / "policy.pt").is_file()


def resume(run_dir: Path) -> dict[str, Any]:
    config = json.loads((run_dir / "config.json").read_text())
    return run_search(SearchSpec.from_run_config(config, run_dir))


@pytest.mark.parametrize("budget", [None, 40])
def test_a_run_resumed_from_its_checkpoint_accounts_as_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: ScriptedLLM, budget: int | None
) -> None:
    """Killed in step 5, after its reward calls, with the policy saved at step 4: the
    resumed run starts from the checkpoint, charges steps 1-4 from the journal (with
    a budget of 40 binding in step 6 only if they are), and makes only the calls
    the interrupted run had not made."""
    run_dir = tmp_path / "resumable"
    kill_in_step_5(monkeypatch, run_dir, budget)
    interrupted_calls, before = target.logprob_calls, search_events(run_dir)
    resumed = resume(run_dir)
    resumed_calls = target.logprob_calls - interrupted_calls
    restored = [e for e in read_events(run_dir) if e["event"] == "policy_restored"]
    assert [e["step"] for e in restored] == [4]

    reference = run_search(spec(tmp_path, "uninterrupted", budget))
    reference_calls = target.logprob_calls - interrupted_calls - resumed_calls
    assert interrupted_calls + resumed_calls == reference_calls  # no call made twice
    assert resumed["stopped_by_budget"] == reference["stopped_by_budget"] == (budget is not None)
    assert resumed["leaderboard"] == reference["leaderboard"]
    for part in ("search", "test_eval", "search_by_model"):
        assert resumed["usage"][part] == reference["usage"][part], part
    events = search_events(run_dir)
    assert events[: len(before)] == before  # nothing logged before the kill is logged again
    assert events == search_events(tmp_path / "uninterrupted")


def test_a_damaged_checkpoint_is_one_line_and_deleting_it_resumes_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: ScriptedLLM
) -> None:
    run_dir = tmp_path / "resumable"
    kill_in_step_5(monkeypatch, run_dir, None)
    checkpoint = run_dir / "policy.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(ConfigError, match=r"policy.pt is corrupt or truncated: delete it and"):
        resume(run_dir)
    checkpoint.unlink()
    calls = target.logprob_calls
    resumed = resume(run_dir)  # trains from step 0 again; the journal answers steps 1-5
    resumed_calls = target.logprob_calls - calls
    reference = run_search(spec(tmp_path, "uninterrupted", None))
    reference_calls = target.logprob_calls - calls - resumed_calls
    assert calls + resumed_calls == reference_calls  # no call made twice
    assert resumed["usage"]["search"] == reference["usage"]["search"]
    assert resumed["leaderboard"] == reference["leaderboard"]


def test_a_budget_that_ends_while_finalists_are_scored_keeps_what_training_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: ScriptedLLM
) -> None:
    """Training's periodic dev scores are candidates: a budget that ends while the
    finalists are scored, after training, returns them rather than only the start."""

    def budget_ends(self: Any) -> None:
        raise BudgetExhausted("budget of calls reached")

    monkeypatch.setattr(rlprompt._Trainer, "score_finalists", budget_ends)
    export = run_search(spec(tmp_path, "finalists", None))
    origins = {row["origin"] for row in export["leaderboard"]}
    assert export["stopped_by_budget"] is True
    assert any(origin.startswith("greedy @ step") for origin in origins), origins
