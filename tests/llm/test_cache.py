from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import diskcache
import pytest

from promptopt.core.domain import Budget, Completion, GenerationRequest, LogprobRequest, Usage
from promptopt.core.errors import BudgetExhausted
from promptopt.llm.base import describe, model_scope
from promptopt.llm.cache import CachedLLM, _generation_payload, cache_key
from promptopt.llm.cache_files import SHARED_CACHE, CacheUnusable, open_cache, unusable
from promptopt.llm.meter import MeteredLLM
from promptopt.llm.openai_compat import OpenAICompatLLM
from tests.fakes import ScriptedLLM
from tests.llm.fake_openai_server import FakeOpenAIServer


def echo(request: GenerationRequest, sample: int) -> str:
    return f"{request.messages[-1].content}#{request.seed}#{sample}"


def stack(tmp_path: Path, fake: ScriptedLLM, usage: Usage) -> CachedLLM:
    return CachedLLM(MeteredLLM(fake, usage), open_cache(tmp_path / "c"), usage)


def test_key_changes_with_every_parameter() -> None:
    base = {"messages": [["user", "hi"]], "temperature": 0.0, "seed": 0, "sample_index": 0}
    keys = {cache_key("hf", "m", "generate", base)}
    for change in (
        {"temperature": 0.7},
        {"seed": 1},
        {"sample_index": 1},
        {"messages": [["user", "hi!"]]},
    ):
        keys.add(cache_key("hf", "m", "generate", {**base, **change}))
    keys.add(cache_key("openai", "m", "generate", base))
    keys.add(cache_key("hf", "m2", "generate", base))
    assert len(keys) == 7
    assert cache_key("hf", "m", "generate", base) == cache_key("hf", "m", "generate", dict(base))


def test_second_call_is_a_free_hit(tmp_path: Path) -> None:
    fake, usage = ScriptedLLM(echo), Usage()
    llm = stack(tmp_path, fake, usage)
    requests = [GenerationRequest.chat(f"q{i}") for i in range(5)]
    first = llm.generate(requests)
    assert fake.generate_calls == 5 and usage.calls == 5 and usage.cache_hits == 0
    again = llm.generate(requests)
    assert [c.texts for c in again] == [c.texts for c in first]
    assert fake.generate_calls == 5 and usage.calls == 5 and usage.cache_hits == 5
    assert all(c.cached for c in again)


def test_samples_do_not_collapse(tmp_path: Path) -> None:
    fake, usage = ScriptedLLM(echo), Usage()
    llm = stack(tmp_path, fake, usage)
    out = llm.generate([GenerationRequest.chat("q", temperature=0.8, n=3, seed=7)])
    assert out[0].texts == ["q#7#0", "q#7#1", "q#7#2"]
    assert usage.calls == 3
    again = llm.generate([GenerationRequest.chat("q", temperature=0.8, n=3, seed=7)])
    assert again[0].texts == out[0].texts and usage.cache_hits == 3


def test_only_misses_reach_the_model(tmp_path: Path) -> None:
    fake, usage = ScriptedLLM(echo), Usage()
    llm = stack(tmp_path, fake, usage)
    llm.generate([GenerationRequest.chat("a"), GenerationRequest.chat("b")])
    out = llm.generate([GenerationRequest.chat(x) for x in "abc"])
    assert [c.texts[0][0] for c in out] == ["a", "b", "c"]
    assert fake.batches == [2, 1]


def test_logprobs_cached(tmp_path: Path) -> None:
    fake = ScriptedLLM(echo, logprob=lambda r, c: -float(len(c)))
    usage = Usage()
    llm = stack(tmp_path, fake, usage)
    req = LogprobRequest(continuations=("ab", "abcd"), text="ctx")
    assert llm.logprobs([req]) == [[-2.0, -4.0]]
    assert llm.logprobs([req]) == [[-2.0, -4.0]]
    assert fake.logprob_calls == 1 and usage.cache_hits == 1


def test_journal_replays_charges_of_an_earlier_process(tmp_path: Path) -> None:
    """Resume: calls the interrupted run paid for are charged again, not re-run."""
    journal = open_cache(tmp_path / "journal")
    fake, usage = ScriptedLLM(echo), Usage()
    first = CachedLLM(MeteredLLM(fake, usage), journal, usage, replay_charges=True)
    first.generate([GenerationRequest.chat("a"), GenerationRequest.chat("b")])
    assert usage.calls == 2
    # Same process: a repeat is free, and no work.
    first.generate([GenerationRequest.chat("a")])
    assert usage.calls == 2 and usage.cache_hits == 0
    # A new process (new session) resumes: replayed calls are charged as before, to
    # the same model's share too.
    usage2, share = Usage(), Usage()
    resumed = CachedLLM(
        MeteredLLM(fake, usage2, also=share), journal, usage2, also=share, replay_charges=True
    )
    resumed.generate([GenerationRequest.chat("a"), GenerationRequest.chat("b")])
    assert fake.generate_calls == 2
    assert usage2.to_dict() == share.to_dict() == usage.to_dict()


def test_journal_replays_a_shared_cache_hit_as_a_cache_hit(tmp_path: Path) -> None:
    """What the shared cache answered was charged as a cache hit: replayed as one."""
    from promptopt.llm.stack import layered

    shared, journal = open_cache(tmp_path / "shared"), open_cache(tmp_path / "journal")
    fake = ScriptedLLM(echo, logprob=lambda r, c: -1.0)
    scored = LogprobRequest(continuations=("x",), text="ctx")
    layered(fake, Usage(), None, shared, None).generate([GenerationRequest.chat("a")])
    layered(fake, Usage(), None, shared, None).logprobs([scored])
    requests = [GenerationRequest.chat("a"), GenerationRequest.chat("b")]
    run, run_share = Usage(), Usage()
    llm = layered(fake, run, None, shared, journal, run_share)
    llm.generate(requests)
    llm.logprobs([scored, LogprobRequest(continuations=("x",), text="other")])
    assert (run.calls, run.new_calls, run.cache_hits) == (4, 2, 2)
    calls = fake.generate_calls + fake.logprob_calls

    resumed, resumed_share = Usage(), Usage()
    llm = layered(fake, resumed, None, shared, journal, resumed_share)
    llm.generate(requests)
    llm.logprobs([scored, LogprobRequest(continuations=("x",), text="other")])
    assert fake.generate_calls + fake.logprob_calls == calls
    assert resumed.to_dict() == resumed_share.to_dict() == run.to_dict() == run_share.to_dict()


def test_journal_entries_from_before_charged_hits_replay_as_cache_hits(tmp_path: Path) -> None:
    """A journal written when shared-cache hits were free marked them `charged: false`."""
    journal = open_cache(tmp_path / "journal")
    request = GenerationRequest.chat("a")
    key = cache_key("fake", "scripted", "generate", _generation_payload(request, 0))
    journal.set(key, {"text": "old", "prompt_tokens": 3, "completion_tokens": 1, "charged": False})
    usage = Usage()
    out = CachedLLM(ScriptedLLM(echo), journal, usage, replay_charges=True).generate([request])
    assert out[0].texts == ["old"]
    assert (usage.calls, usage.cache_hits, usage.tokens, usage.new_prompt_tokens) == (1, 1, 4, 0)


def _writer(directory: str, worker: int) -> None:
    cache = open_cache(Path(directory))
    for i in range(200):
        cache.set(f"{worker}-{i}", {"text": "x" * 100, "i": i})


def test_two_processes_share_one_cache(tmp_path: Path) -> None:
    directory = str(tmp_path / "shared")
    procs = [multiprocessing.Process(target=_writer, args=(directory, w)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    cache = open_cache(Path(directory))
    assert len(cache) == 400
    assert cache.get("1-199")["i"] == 199


def test_replay_charges_a_repeated_request_once(tmp_path: Path) -> None:
    """A request the interrupted run repeated (free the second time) is charged once on resume."""
    journal = open_cache(tmp_path / "journal")
    fake, usage = ScriptedLLM(echo), Usage()
    first = CachedLLM(MeteredLLM(fake, usage), journal, usage, replay_charges=True)
    first.generate([GenerationRequest.chat("a")])
    first.generate([GenerationRequest.chat("a")])
    assert usage.calls == 1 and usage.cache_hits == 0
    usage2 = Usage()
    resumed = CachedLLM(MeteredLLM(fake, usage2), journal, usage2, replay_charges=True)
    resumed.generate([GenerationRequest.chat("a")])
    resumed.generate([GenerationRequest.chat("a")])
    assert usage2.to_dict() == usage.to_dict()


def test_first_token_logprobs_never_share_entries_with_full_ones(tmp_path: Path) -> None:
    """A chat API's first-token label scores and a completions server's full scores of
    the same model answer different questions: one cache must keep them apart."""
    cache = open_cache(tmp_path / "c")
    request = LogprobRequest(text="Sentiment:", continuations=(" positive",))
    full = ScriptedLLM(lambda r, s: "", logprob=lambda r, c: -1.0)
    first = ScriptedLLM(lambda r, s: "", logprob=lambda r, c: -2.0)
    first.logprob_scope = "first_token"  # type: ignore[attr-defined]
    assert CachedLLM(full, cache, Usage()).logprobs([request]) == [[-1.0]]
    layered = CachedLLM(MeteredLLM(first, Usage()), cache, Usage())
    assert layered.logprob_scope == "first_token"
    assert layered.logprobs([request]) == [[-2.0]]
    assert first.logprob_calls == 1


def test_scope_separates_dtypes_and_servers_and_keeps_old_keys() -> None:
    base = {"messages": [["user", "hi"]], "seed": 0}
    old = cache_key("hf", "m", "generate", base)
    assert cache_key("hf", "m", "generate", base, model_scope(dtype="bfloat16")) == old
    assert cache_key("hf", "m", "generate", base, model_scope(dtype="float32")) != old
    one = cache_key("openai", "m", "generate", base, model_scope(server="http://a:1/v1"))
    two = cache_key("openai", "m", "generate", base, model_scope(server="http://b:1/v1"))
    assert len({one, two, cache_key("openai", "m", "generate", base)}) == 3


def test_two_servers_serving_one_model_name_do_not_share_answers(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "c")
    request = GenerationRequest.chat("hi")
    answers = []
    for server in ("http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"):
        fake = ScriptedLLM(lambda r, s, server=server: server)
        fake.cache_scope = model_scope(server=server)  # type: ignore[attr-defined]
        usage = Usage()
        answers.append(CachedLLM(MeteredLLM(fake, usage), cache, usage).generate([request]))
        assert fake.generate_calls == 1
    assert answers[0][0].texts != answers[1][0].texts


def test_server_scope_and_exports_never_carry_credentials() -> None:
    llm = OpenAICompatLLM("served", base_url="http://user:SECRET@127.0.0.1:9/v1")
    assert llm.cache_scope == {"server": "http://127.0.0.1:9/v1"}
    assert describe(llm)["server"] == "http://127.0.0.1:9/v1"
    assert "SECRET" not in repr(describe(llm))


def test_a_failure_inside_a_cache_in_use_is_one_line_and_deletes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Damage found after opening (a page read mid-search) is the same one-line error."""
    fake, usage = ScriptedLLM(echo), Usage()
    llm = stack(tmp_path, fake, usage)
    llm.generate([GenerationRequest.chat("a")])

    def damaged(*args: object, **kwargs: object) -> None:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(diskcache.Cache, "get", damaged)
    with pytest.raises(CacheUnusable, match=r"call cache at .* is corrupt or truncated \(data"):
        llm.generate([GenerationRequest.chat("b")])
    monkeypatch.undo()
    assert len(llm.cache) == 1 and fake.generate_calls == 1


def test_an_unwritable_cache_is_not_called_corrupt(tmp_path: Path) -> None:
    error = unusable(
        tmp_path, SHARED_CACHE, sqlite3.OperationalError("attempt to write a readonly database")
    )
    assert not error.corrupt and "cannot be used (attempt to write a readonly" in str(error)
    assert "set PROMPTOPT_CACHE_DIR to another folder, or pass --no-cache" in str(error)
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheUnusable, match="cannot be used"):
        open_cache(tmp_path / "file" / "calls")


def test_a_batch_the_budget_refuses_charges_none_of_its_replays(tmp_path: Path) -> None:
    """The interrupted run was charged nothing for a refused batch: nor is the resumed
    one, so its usage matches at every step (the events record it), not only at the end."""
    from promptopt.core.domain import Budget
    from promptopt.core.errors import BudgetExhausted
    from promptopt.llm.stack import layered

    journal = open_cache(tmp_path / "journal")
    fake = ScriptedLLM(echo)
    layered(fake, Usage(), None, None, journal).generate([GenerationRequest.chat("a")])
    usage = Usage()
    resumed = layered(fake, usage, Budget(max_calls=2), None, journal)
    with pytest.raises(BudgetExhausted):  # a replayed and two new: 3 calls
        resumed.generate([GenerationRequest.chat(x) for x in "abc"])
    assert usage == Usage()
    resumed.generate([GenerationRequest.chat("a")])
    assert usage.calls == 1 and fake.generate_calls == 1


class SoftWriter:
    """A local writer driven by soft prompts (InstructZero's): one text per row."""

    kind, model_id = "hf", "writer"
    supports_logprobs = supports_embeddings_input = True

    def __init__(self) -> None:
        self.rows = 0

    def generate_from_soft_prompts(self, soft, text, *, max_tokens=48):  # type: ignore[no-untyped-def]
        self.rows += soft.shape[0]
        texts = [f"{text} {float(row.sum()):.6f} {max_tokens}" for row in soft]
        return Completion(texts=texts, prompt_tokens=7 * len(texts), completion_tokens=3)


def test_soft_prompt_writes_are_shared_keyed_by_their_vectors_and_replayed(
    tmp_path: Path,
) -> None:
    """Keyed by the exact soft-prompt bytes, the writer's text and max_tokens; the
    shared cache answers a rerun (cache hits), the journal a resume (as charged)."""
    import torch

    from promptopt.llm.base import soft_prompt_generate
    from promptopt.llm.stack import layered

    shared = open_cache(tmp_path / "shared")
    writer, soft = SoftWriter(), torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)
    run, journal = Usage(), open_cache(tmp_path / "journal")
    first = soft_prompt_generate(layered(writer, run, None, shared, journal), soft, "w", 8)
    assert [c.texts for c in first] == [["w 15.000000 8"], ["w 51.000000 8"]]
    assert (writer.rows, run.calls, run.new_calls, run.tokens) == (2, 2, 2, 14 + 3)

    rerun = Usage()  # a new run directory, the same shared cache
    again = soft_prompt_generate(
        layered(writer, rerun, None, shared, open_cache(tmp_path / "j2")), soft, "w", 8
    )
    assert again == [dataclasses.replace(c, cached=True) for c in first] and writer.rows == 2
    assert (rerun.calls, rerun.cache_hits, rerun.tokens) == (2, 2, 14 + 3)

    resumed = Usage()  # the first run's journal replays its calls as they were charged
    soft_prompt_generate(layered(writer, resumed, None, shared, journal), soft, "w", 8)
    assert resumed.to_dict() == run.to_dict() and writer.rows == 2

    nudged = soft.clone()
    nudged[1, 0, 0] = torch.nextafter(nudged[1, 0, 0], torch.tensor(99.0))
    for args in ((nudged, "w", 8), (soft, "other text", 8), (soft, "w", 9)):
        soft_prompt_generate(layered(writer, Usage(), None, shared, None), *args)
    assert writer.rows == 2 + 1 + 2 + 2


def test_the_budget_refuses_soft_prompt_writes_it_cannot_pay_for() -> None:
    import torch

    from promptopt.llm.base import soft_prompt_generate

    usage, writer = Usage(), SoftWriter()
    metered = MeteredLLM(writer, usage, Budget(max_calls=3))  # type: ignore[arg-type]
    soft_prompt_generate(metered, torch.zeros(2, 1, 2), "w", 8)
    with pytest.raises(BudgetExhausted):
        soft_prompt_generate(metered, torch.ones(2, 1, 2), "w", 8)
    assert (writer.rows, usage.calls) == (2, 2)


# -- two real searches at once --------------------------------------------------------------
def promptopt_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from promptopt.cli import main; main()", *args]


class Barrier:
    """Holds the first target request of each search until the other search has sent
    one too, so both write to the cache at the same time however their start-up goes."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.seen = {name: threading.Event() for name in names}

    def reply(self, body: dict[str, Any]) -> str:
        if "nstruction" in str(body):  # a proposal: one per seed
            return f"Write the opposite of the word, style {body.get('seed')}."
        if body["model"] in self.seen:
            self.seen[body["model"]].set()
            for other in self.seen.values():
                assert other.wait(timeout=120), "the other search never sent a request"
            time.sleep(0.01)
        return "cold"


def test_two_searches_share_one_cache_at_once_and_a_rerun_makes_no_call(
    tmp_path: Path, data_dir: Path, isolated_cache: Path
) -> None:
    """Two `promptopt search` processes on one PROMPTOPT_CACHE_DIR at the same time
    (each with its own target, and the same proposer requests): both succeed, the
    cache is readable after, and the same two searches again make no model call."""
    server = FakeOpenAIServer()
    server.reply = Barrier(("target-a", "target-b")).reply
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENAI_API_KEY": "sk-test"}

    def command(name: str, run: str) -> list[str]:
        return promptopt_command(
            *["search", "--task", "antonyms", "--dev-size", "4", "--test-size", "4"],
            *["-p", "num_subsamples=2", "-p", "proposals_per_subsample=2", "--seed", "1"],
            *["--model", f"openai:target-{name}", "--proposer", "openai:writer"],
            *["--base-url", server.url, "--proposer-base-url", server.url, "--no-report"],
            *["--run-dir", str(tmp_path / run), "--out", str(tmp_path / f"{run}.json")],
        )

    def run_both(suffix: str) -> list[dict[str, Any]]:
        processes = [
            subprocess.Popen(command(name, name + suffix), env=env, stderr=subprocess.PIPE)
            for name in ("a", "b")
        ]
        for process in processes:
            _, err = process.communicate(timeout=300)
            assert process.returncode == 0, err.decode()
        return [json.loads((tmp_path / f"{n}{suffix}.json").read_text()) for n in ("a", "b")]

    try:
        first = run_both("")
        requests = server.requests
        cache = open_cache(isolated_cache / "calls")
        assert len(cache) > 0 and cache.volume() > 0
        stats = subprocess.run(
            promptopt_command("cache", "stats"), env=env, capture_output=True, text=True
        )
        assert stats.returncode == 0 and "entries" in stats.stdout, stats.stderr

        again = run_both("-again")
    finally:
        server.stop()
    assert server.requests == requests  # the rerun asked the server nothing
    for before, after in zip(first, again, strict=True):
        assert before["usage"]["search"]["new_calls"] > 0
        assert after["usage"]["search"]["new_calls"] == 0
        assert after["usage"]["search"]["calls"] == before["usage"]["search"]["calls"]
        assert after["usage"]["test_eval"]["new_calls"] == 0
        assert after["leaderboard"] == before["leaderboard"]
        assert after["prompt"] == before["prompt"]
