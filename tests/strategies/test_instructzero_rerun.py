"""InstructZero's writer calls go through the shared cache and the run journal like
every model call: a rerun with the same seed in a new run directory is a replay
(no new call, the same export), and a resumed run repeats no writer call and
accounts as an uninterrupted one (issue 14)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from promptopt.core.domain import Budget, GenerationRequest
from promptopt.llm.factory import ModelSpec
from promptopt.run import search as search_module
from promptopt.run.search import SearchSpec, run_search
from promptopt.strategies.base import SearchContext
from tests.fakes import ScriptedLLM
from tests.strategies.test_instructzero import FakeWriter

pytestmark = pytest.mark.usefixtures("isolated_cache")

PARAMS = {
    "intrinsic_dim": "3",
    "n_tokens": "2",
    "initial_points": "4",
    "rounds": "3",
    "batch_per_round": "2",
    "dev_subset": "6",
    "acq_restarts": "2",
    "acq_raw_samples": "32",
}
VOLATILE = ("run_dir", "timings", "usage", "created")
"""Export fields that differ between two runs of one search (where, when, what was new)."""


def yes_or_no(request: GenerationRequest, sample: int) -> str:
    """A target whose answers depend on the whole prompt, so instructions score
    differently and the BO path depends on what the writer wrote."""
    text = "\n".join(m.content for m in request.messages) + (request.text or "")
    return "yes" if hashlib.sha256(text.encode()).digest()[0] % 2 else "no"


@pytest.fixture
def models(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    found = {
        "target": ScriptedLLM(yes_or_no, model_id="target"),
        "writer": FakeWriter(distinct=True),
    }
    monkeypatch.setattr(search_module, "build_llm", lambda spec: found[spec.model])
    return found


def spec(tmp_path: Path, run: str, *, use_cache: bool = True) -> SearchSpec:
    data = tmp_path / "words.jsonl"
    if not data.is_file():
        rows = [{"input": f"word {i}", "output": "yes" if i % 3 else "no"} for i in range(40)]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return SearchSpec(
        task=str(data),
        strategy="instructzero",
        params=dict(PARAMS),
        seed=3,
        target=ModelSpec("hf", "target"),
        proposer=ModelSpec("hf", "writer"),
        sizes={"dev": 6, "test": 6},
        budget=Budget(max_calls=90),
        run_dir=tmp_path / run,
        use_cache=use_cache,
        data_file={"path": str(data), "input_field": "input", "target_field": "output"}
        | {"metric": "exact"},
    )


def stable(export: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in export.items() if k not in VOLATILE}


def test_a_rerun_with_the_same_seed_replays_the_writer_from_the_shared_cache(
    tmp_path: Path, models: dict[str, Any]
) -> None:
    first = run_search(spec(tmp_path, "first"))
    rows, calls = models["writer"].rows, models["target"].generate_calls
    assert rows > 0 and first["strategy"]["stats"]["soft_prompts"] == rows

    again = run_search(spec(tmp_path, "again"))
    assert (models["writer"].rows, models["target"].generate_calls) == (rows, calls)
    assert stable(again) == stable(first)
    used, replayed = first["usage"]["search"], again["usage"]["search"]
    assert used["cache_hits"] == 0 and replayed["new_calls"] == 0
    assert replayed["calls"] == replayed["cache_hits"] == used["calls"]
    assert again["usage"]["test_eval"]["new_calls"] == 0
    # The writer's soft prompts are the proposer's calls, answered by the cache.
    proposer = again["usage"]["search_by_model"]["proposer"]
    assert proposer["calls"] == proposer["cache_hits"] == rows


def test_a_resumed_run_makes_no_writer_call_twice_and_accounts_as_an_uninterrupted_one(
    tmp_path: Path, models: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    record = SearchContext.record_candidate
    recorded = {"n": 0}

    def interrupted(self: SearchContext, *args: Any) -> None:
        recorded["n"] += 1
        if recorded["n"] == 4:  # in the BO rounds, after writer and target calls
            raise KeyboardInterrupt
        record(self, *args)

    monkeypatch.setattr(SearchContext, "record_candidate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(spec(tmp_path, "resumable", use_cache=False))
    monkeypatch.setattr(SearchContext, "record_candidate", record)
    writer = models["writer"]
    interrupted_rows = writer.rows
    config = json.loads((tmp_path / "resumable" / "config.json").read_text())
    resumed = run_search(SearchSpec.from_run_config(config, tmp_path / "resumable"))
    resumed_rows = writer.rows - interrupted_rows

    reference = run_search(spec(tmp_path, "uninterrupted", use_cache=False))
    reference_rows = writer.rows - interrupted_rows - resumed_rows
    assert interrupted_rows > 0 and 0 < resumed_rows < reference_rows
    assert interrupted_rows + resumed_rows == reference_rows  # none written twice
    # (the resumed spec records the dtype `auto` resolved to: models differ in that)
    assert stable(resumed) | {"models": None} == stable(reference) | {"models": None}
    for part in ("search", "test_eval", "search_by_model"):
        assert resumed["usage"][part] == reference["usage"][part], part
