"""Caching wrapper (diskcache) around any backend, with one key function.

The same class serves two roles (`promptopt.llm.stack.layered` stacks them):
- the shared cache (`~/.cache/promptopt/calls`), under the meter: the meter
  charges its hits like model calls (the budget counts work, whoever answers),
  and the cache counts them as the free part of that work (`Usage.cache_hits`);
- a run's call journal (`RUN_DIR/calls`), over the meter: a request repeated
  within the run is free, and on `--resume` calls recorded by the interrupted
  process are replayed *with their original charge* (a model call or a cache
  hit, to the same model's share), so the resumed run's budget and accounting
  end exactly where an uninterrupted run would.

diskcache keeps entries in SQLite with transactions, so two processes may use
one cache at once and a killed process never leaves a half-written entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import diskcache

from promptopt.core.domain import Completion, GenerationRequest, LogprobRequest, Usage
from promptopt.llm.base import (
    FULL_LOGPROBS,
    LLM,
    cache_scope,
    generate_with_progress,
    logprob_scope,
    soft_prompt_generate,
    token_share,
)
from promptopt.llm.tokens import logprob_tokens

if TYPE_CHECKING:
    import torch

CACHE_VERSION = 1


def cache_key(
    kind: str,
    model_id: str,
    method: str,
    payload: dict[str, Any],
    scope: dict[str, str] | None = None,
) -> str:
    """sha256 over canonical JSON of everything that determines a model's answer.

    Never includes credentials: backends carry kind, model id and their scope
    (`model_scope`: a dtype, a server URL without credentials). An empty scope
    adds nothing, so keys made before scopes existed still match.
    """
    identity: dict[str, Any] = {
        "v": CACHE_VERSION,
        "kind": kind,
        "model": model_id,
        "method": method,
    }
    if scope:
        identity["scope"] = dict(scope)
    blob = json.dumps(
        {**identity, **payload},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _generation_payload(req: GenerationRequest, sample_index: int) -> dict[str, Any]:
    data = asdict(req)
    data.pop("n")
    data["messages"] = [[m.role, m.content] for m in req.messages]
    data["stop"] = list(req.stop)
    data["sample_index"] = sample_index
    return data


def _soft_prompt_payload(soft_prompt: torch.Tensor, text: str, max_tokens: int) -> dict[str, Any]:
    """A writer's generation from one soft prompt: the exact vectors it reads (a
    digest of their bytes, with dtype and shape), its text and its decoding (greedy,
    up to `max_tokens`, stopped at a newline: `generate_from_soft_prompts`)."""
    import torch  # here: the other keys need no torch, which is slow to import

    row = soft_prompt.detach().cpu().contiguous()
    raw = row.reshape(-1).view(torch.uint8).numpy().tobytes()
    return {
        "soft_prompt": hashlib.sha256(raw).hexdigest(),
        "dtype": str(row.dtype),
        "shape": list(row.shape),
        "text": text,
        "max_tokens": max_tokens,
        "decoding": "greedy",
        "stop": ["\n"],
    }


class CachedLLM:
    """Serves repeated requests from disk; passes only misses to `inner`.

    Hits are accounted to `usage` and `also` (one model's share): as the shared
    cache, as the cache's part of the work (the meter above charges the work); as
    a journal (`replay_charges`), see `_counts` and `_account`.
    """

    def __init__(
        self,
        inner: LLM,
        cache: diskcache.Cache,
        usage: Usage,
        *,
        also: Usage | None = None,
        replay_charges: bool = False,
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.usages = [u for u in (usage, also) if u is not None]
        self.replay_charges = replay_charges
        self.session = uuid.uuid4().hex
        self._replayed: set[str] = set()
        self.kind = inner.kind
        self.model_id = inner.model_id
        self.cache_scope = cache_scope(inner)
        self.supports_logprobs = inner.supports_logprobs
        self.supports_embeddings_input = inner.supports_embeddings_input
        self.logprob_scope = logprob_scope(inner)

    def _key(self, method: str, payload: dict[str, Any]) -> str:
        return cache_key(self.kind, self.model_id, method, payload, self.cache_scope)

    def _counts(self, key: str, entry: dict[str, Any]) -> bool:
        """Whether a hit is accounted: every hit of the shared cache (the cache's part
        of the work the meter charged); of a journal's, only an entry recorded by an
        earlier process, once per process (a request repeated within a run is free,
        and a request the earlier run repeated was free then and stays free)."""
        if not self.replay_charges:
            return True
        if entry.get("session") == self.session or key in self._replayed:
            return False
        self._replayed.add(key)
        return True

    def _account(self, entry: dict[str, Any], prompt_tokens: int, completion_tokens: int) -> None:
        """A journal replays its entry's charge as it was: a model call or a cache hit.
        Entries written before cache hits were charged say `charged: false` for a hit."""
        replay = self.replay_charges
        cached = not replay or entry.get("cached", not entry.get("charged", True))
        for usage in self.usages:
            if replay:
                usage.add(1, prompt_tokens, completion_tokens)
            if cached:
                usage.add_cached(1, prompt_tokens, completion_tokens)

    @contextmanager
    def _nothing_charged_on_failure(self) -> Iterator[None]:
        """A batch the layers below refuse (the budget) or fail was charged nothing
        in the run that journaled its answers, so its hits are not accounted here
        either: a resumed run's usage matches at every step, not only at the end."""
        saved = [dataclasses.replace(u) for u in self.usages], set(self._replayed)
        try:
            yield
        except BaseException:
            for usage, before in zip(self.usages, saved[0], strict=True):
                for name in (f.name for f in dataclasses.fields(Usage)):
                    setattr(usage, name, getattr(before, name))
            self._replayed = saved[1]
            raise

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Callable[[int], None] | None = None
    ) -> list[Completion]:
        with self._nothing_charged_on_failure():
            return self._generate(requests, progress)

    def _generate(
        self, requests: Sequence[GenerationRequest], progress: Callable[[int], None] | None
    ) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        misses: list[int] = []
        for i, req in enumerate(requests):
            keys = [self._key("generate", _generation_payload(req, s)) for s in range(req.n)]
            entries = [self.cache.get(k) for k in keys]
            if all(e is not None for e in entries):
                for key, entry in zip(keys, entries, strict=True):
                    if self._counts(key, entry):
                        tokens = entry.get("prompt_tokens", 0), entry.get("completion_tokens", 0)
                        self._account(entry, *tokens)
                results[i] = Completion(
                    texts=[e["text"] for e in entries],
                    prompt_tokens=sum(e.get("prompt_tokens", 0) for e in entries),
                    completion_tokens=sum(e.get("completion_tokens", 0) for e in entries),
                    cached=True,
                )
            else:
                misses.append(i)
        if progress and len(misses) < len(requests):
            progress(len(requests) - len(misses))
        if misses:
            fresh = generate_with_progress(self.inner, [requests[i] for i in misses], progress)
            for i, completion in zip(misses, fresh, strict=True):
                self._store(requests[i], completion)
                results[i] = completion
        return [r for r in results if r is not None]

    def _store(self, req: GenerationRequest, completion: Completion) -> None:
        """One entry per sample, each with its share of the tokens (the first takes
        the remainder, so a hit's or a replay's tokens add up to the original's)."""
        n = max(1, len(completion.texts))
        for s, text in enumerate(completion.texts):
            entry = self._entry(
                text,
                token_share(completion.prompt_tokens, n, s),
                token_share(completion.completion_tokens, n, s),
                completion.cached,
            )
            self.cache.set(self._key("generate", _generation_payload(req, s)), entry)

    def _entry(
        self, text: str, prompt_tokens: int, completion_tokens: int, cached: bool
    ) -> dict[str, Any]:
        return {
            "text": text,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cached": cached,
            "session": self.session,
        }

    def soft_prompt_generate(
        self, soft_prompts: torch.Tensor, text: str, max_tokens: int
    ) -> list[Completion]:
        """The writer's text for each soft prompt (InstructZero), one entry per soft
        prompt, accounted as `generate` accounts a sample: the writer drives a local
        model directly, and without this its calls were neither shared between runs
        nor counted as cache hits, so a rerun with the same seed called it again."""
        with self._nothing_charged_on_failure():
            return self._soft_prompt_generate(soft_prompts, text, max_tokens)

    def _soft_prompt_generate(
        self, soft_prompts: torch.Tensor, text: str, max_tokens: int
    ) -> list[Completion]:
        keys = [
            self._key("soft-prompt", _soft_prompt_payload(row, text, max_tokens))
            for row in soft_prompts
        ]
        results: list[Completion | None] = []
        for key in keys:
            entry = self.cache.get(key)
            if entry is None:
                results.append(None)
                continue
            prompt_tokens = entry.get("prompt_tokens", 0)
            completion_tokens = entry.get("completion_tokens", 0)
            if self._counts(key, entry):
                self._account(entry, prompt_tokens, completion_tokens)
            results.append(
                Completion([entry["text"]], prompt_tokens, completion_tokens, cached=True)
            )
        misses = [i for i, r in enumerate(results) if r is None]
        if misses:
            fresh = soft_prompt_generate(self.inner, soft_prompts[misses], text, max_tokens)
            for i, completion in zip(misses, fresh, strict=True):
                texts = completion.texts
                entry = self._entry(
                    texts[0] if texts else "",
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    completion.cached,
                )
                self.cache.set(keys[i], entry)
                results[i] = completion
        return [r for r in results if r is not None]

    def logprobs(self, requests: Sequence[LogprobRequest]) -> list[list[float]]:
        with self._nothing_charged_on_failure():
            return self._logprobs(requests)

    def _logprobs(self, requests: Sequence[LogprobRequest]) -> list[list[float]]:
        results: list[list[float] | None] = [None] * len(requests)
        misses: list[int] = []
        method = "logprobs" if self.logprob_scope == FULL_LOGPROBS else "logprobs-first-token"
        keys = [self._key(method, _logprob_payload(req)) for req in requests]
        for i, key in enumerate(keys):
            entry = self.cache.get(key)
            if entry is None:
                misses.append(i)
            else:
                if self._counts(key, entry):
                    # Backends report no tokens for scoring: the meter's count of them.
                    tokens = logprob_tokens(self.inner, [requests[i]], self.logprob_scope)
                    self._account(entry, tokens, 0)
                results[i] = entry["values"]
        if misses:
            # Keys are shared by every layer, so a cache below that already holds a
            # key will answer it: recorded as a cache hit.
            below = _cache_below(self.inner)
            held = {i for i in misses if below is not None and keys[i] in below}
            fresh = self.inner.logprobs([requests[i] for i in misses])
            for i, values in zip(misses, fresh, strict=True):
                entry = {"values": values, "cached": i in held, "session": self.session}
                self.cache.set(keys[i], entry)
                results[i] = values
        return [r for r in results if r is not None]


def _cache_below(llm: Any) -> diskcache.Cache | None:
    """The cache that answers what is passed to `llm`, if any (looking through the meter)."""
    while llm is not None and not isinstance(llm, CachedLLM):
        llm = getattr(llm, "inner", None)
    return llm.cache if llm is not None else None


def _logprob_payload(req: LogprobRequest) -> dict[str, Any]:
    return {
        "messages": [[m.role, m.content] for m in req.messages],
        "text": req.text,
        "continuations": list(req.continuations),
    }
