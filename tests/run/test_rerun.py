"""A rerun is a replay: the budget counts work whether the shared cache or the model
answers it, so the same search with the same seed and budget walks the same path
from the cache; and a resumed run accounts and logs as an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from promptopt.core.domain import Budget
from promptopt.llm.factory import ModelSpec
from promptopt.run import search as search_module
from promptopt.run.search import SearchSpec, run_search
from promptopt.run.store import RUN_MARKERS, read_events
from promptopt.strategies.base import SearchContext
from tests.cli_helpers import invoke
from tests.fakes import TokenizingFake, plug_fake_model, role_reply

pytestmark = pytest.mark.usefixtures("data_dir", "isolated_cache")
SEARCH = ["--task", "antonyms", "--dev-size", "5", "--test-size", "6", "--seed", "1"]
SEARCH += ["-p", "num_subsamples=2", "-p", "proposals_per_subsample=3", "--no-report"]


def search(tmp_path: Path, name: str, *extra: str) -> tuple[dict[str, Any], str]:
    out, run_dir = tmp_path / f"{name}.json", tmp_path / name
    result = invoke("search", *SEARCH, *extra, "--out", str(out), "--run-dir", str(run_dir))
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), result.output


def test_a_rerun_at_a_binding_budget_replays_the_search_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = plug_fake_model(monkeypatch)
    first, _ = search(tmp_path, "first", "--budget", "40")
    assert first["stopped_by_budget"] is True
    calls = fake.generate_calls

    again, output = search(tmp_path, "again", "--budget", "40")
    assert fake.generate_calls == calls  # no new model call, in the search or on test
    assert again["leaderboard"] == first["leaderboard"]  # the same candidates, not more
    assert again["prompt"] == first["prompt"] and again["scores"] == first["scores"]
    assert again["stopped_by_budget"] is True
    used = first["usage"]["search"]
    assert used["calls"] == used["new_calls"] == 40 and used["cache_hits"] == 0
    replayed = again["usage"]["search"]
    assert (replayed["calls"], replayed["new_calls"], replayed["cache_hits"]) == (40, 0, 40)
    assert replayed["prompt_tokens"] == used["prompt_tokens"]
    assert replayed["new_prompt_tokens"] == replayed["new_completion_tokens"] == 0
    assert again["usage"]["test_eval"]["new_calls"] == 0
    by_model = again["usage"]["search_by_model"]
    assert by_model["target"]["cache_hits"] + by_model["proposer"]["cache_hits"] == 40
    assert "Search used 40 model calls (0 new, 40 from the cache)" in " ".join(output.split())

    # The events record the work and its parts as they go; the score curve is the same.
    def curve(run: str) -> list[tuple[Any, ...]]:
        events = read_events(tmp_path / run)
        return [(e["calls"], e["dev_score"]) for e in events if e["event"] == "candidate"]

    assert curve("again") == curve("first")
    last = [e for e in read_events(tmp_path / "again") if "calls" in e][-1]
    assert (last["new_calls"], last["cache_hits"]) == (0, last["calls"])


def search_events(run_dir: Path) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in e.items() if k != "t"}
        for e in read_events(run_dir)
        if e["event"] not in RUN_MARKERS
    ]


@pytest.mark.parametrize("use_cache", [False, True])
def test_a_resumed_run_accounts_and_logs_as_an_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_cache: bool
) -> None:
    """Stopped in the middle of the strategy and resumed: the target's replayed calls
    are the target's, and events.jsonl holds each event once, as an uninterrupted
    run's does. With the cache on (warmed first), every call is a cache hit, and
    replayed as one."""
    models = {"target": TokenizingFake(role_reply, model_id="target")}
    models["proposer"] = TokenizingFake(role_reply, model_id="proposer")
    monkeypatch.setattr(search_module, "build_llm", lambda spec: models[spec.model])

    def spec(run: str) -> SearchSpec:
        return SearchSpec(
            task="antonyms",
            strategy="ape",
            params={"num_subsamples": "2", "proposals_per_subsample": "3"},
            sizes={"dev": 5, "test": 6},
            target=ModelSpec("hf", "target"),
            proposer=ModelSpec("hf", "proposer"),
            budget=Budget(max_calls=45),
            run_dir=tmp_path / run,
            use_cache=use_cache,
        )

    if use_cache:
        run_search(spec("warm-up"))
    record = SearchContext.record_candidate
    recorded = {"n": 0}

    def interrupted(self: SearchContext, *args: Any) -> None:
        recorded["n"] += 1
        if recorded["n"] == 4:  # after the fourth candidate's calls, before its event
            raise KeyboardInterrupt
        record(self, *args)

    monkeypatch.setattr(SearchContext, "record_candidate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(spec("resumable"))
    monkeypatch.setattr(SearchContext, "record_candidate", record)
    before = search_events(tmp_path / "resumable")
    calls = models["target"].generate_calls + models["proposer"].generate_calls
    config = json.loads((tmp_path / "resumable" / "config.json").read_text())
    resumed = run_search(SearchSpec.from_run_config(config, tmp_path / "resumable"))
    if use_cache:
        assert models["target"].generate_calls + models["proposer"].generate_calls == calls
    reference = run_search(spec("uninterrupted"))

    assert resumed["leaderboard"] == reference["leaderboard"]
    for part in ("search", "test_eval", "search_by_model"):
        assert resumed["usage"][part] == reference["usage"][part], part
    assert resumed["usage"]["search"]["cache_hits"] == (
        resumed["usage"]["search"]["calls"] if use_cache else 0
    )
    events = search_events(tmp_path / "resumable")
    assert events[: len(before)] == before  # written once, before the interruption
    assert events == search_events(tmp_path / "uninterrupted")
    kinds = [e["event"] for e in read_events(tmp_path / "resumable")]
    assert kinds.count("started") == kinds.count("resumed") == kinds.count("finished") == 1
