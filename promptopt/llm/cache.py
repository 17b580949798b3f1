"""Caching wrapper (diskcache) around any backend, with one key function.

The same class serves two roles:
- the shared cache (`~/.cache/promptopt/calls`): hits are counted, never charged;
- a run's call journal (`RUN_DIR/calls`): on `--resume`, calls recorded by the
  interrupted process are replayed *with their original charge*, so the resumed
  run's budget and accounting end exactly where an uninterrupted run would.

diskcache keeps entries in SQLite with transactions, so two processes may use
one cache at once and a killed process never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import diskcache

from promptopt.errors import ConfigError
from promptopt.llm.base import (
    FULL_LOGPROBS,
    LLM,
    cache_scope,
    generate_with_progress,
    logprob_scope,
)
from promptopt.types import Completion, GenerationRequest, LogprobRequest, Usage

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


class CacheUnusable(ConfigError):
    """A call cache or run journal whose SQLite database is corrupt, truncated or
    cannot be written: one line naming it and the fix, never a traceback."""

    def __init__(self, message: str, *, corrupt: bool) -> None:
        super().__init__(message)
        self.corrupt = corrupt
        """The database is damaged (not merely read-only or locked)."""


@dataclass(frozen=True)
class CacheRole:
    """What a diskcache folder is to the user, and how to get past it when unusable."""

    what: str
    corrupt_fix: str
    access_fix: str


SHARED_CACHE = CacheRole(
    "call cache",
    "run `promptopt cache clear` (converted models are kept), or pass --no-cache",
    "make it writable, set PROMPTOPT_CACHE_DIR to another folder, or pass --no-cache",
)


def run_cache_role(directory: Path, what: str = "run journal") -> CacheRole:
    """A cache inside a run directory: deleting it only costs its calls again."""
    return CacheRole(
        what,
        f"delete {directory} and resume (its model calls are made again), or start a new run",
        "make the run directory writable, or start a new run elsewhere",
    )


def unusable(directory: Path, role: CacheRole, exc: Exception) -> CacheUnusable:
    """The one-line error for a SQLite failure in a cache.

    SQLite reports a damaged file as SQLITE_CORRUPT or SQLITE_NOTADB (a
    sqlite3.DatabaseError) and a short read of a truncated one as an I/O error;
    anything else (read-only, locked, disk full) is an access problem.
    """
    name = str(getattr(exc, "sqlite_errorname", ""))
    damaged = name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_IOERR"))
    corrupt = damaged or not isinstance(exc, sqlite3.OperationalError | OSError)
    problem = "is corrupt or truncated" if corrupt else "cannot be used"
    fix = role.corrupt_fix if corrupt else role.access_fix
    detail = getattr(exc, "strerror", None) or exc
    return CacheUnusable(
        f"the {role.what} at {directory} {problem} ({detail}): {fix}", corrupt=corrupt
    )


class GuardedCache(diskcache.Cache):
    """A diskcache whose SQLite failures are one-line `CacheUnusable` errors.

    Only the operations promptopt uses are guarded; nothing is deleted or reset on
    failure, so entries of a cache that failed once are still there for a retry.
    """

    role: CacheRole = SHARED_CACHE

    def _fail(self, exc: Exception) -> CacheUnusable:
        return unusable(Path(self.directory), self.role, exc)

    def get(self, key: Any, default: Any = None, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().get(key, default, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from None

    def set(self, key: Any, value: Any, *args: Any, **kwargs: Any) -> bool:
        try:
            return super().set(key, value, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from None

    def __contains__(self, key: Any) -> bool:
        try:
            return super().__contains__(key)
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from None

    def __len__(self) -> int:
        try:
            return super().__len__()
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from None

    def volume(self) -> int:
        try:
            return super().volume()
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from None

    def clear(self, retry: bool = False) -> int:
        try:
            return super().clear(retry)
        except sqlite3.DatabaseError as exc:
            raise self._fail(exc) from None


def open_cache(directory: Path, role: CacheRole = SHARED_CACHE) -> GuardedCache:
    """Open (or create) a cache; a corrupt or unwritable one fails here, in one line,
    before any model is loaded for it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        cache = GuardedCache(
            str(directory), size_limit=2**34, eviction_policy="least-recently-used"
        )
    except (sqlite3.DatabaseError, OSError) as exc:
        raise unusable(directory, role, exc) from None
    cache.role = role
    len(cache)  # reads the database's settings: a damaged header fails now
    return cache


def discard_cache(directory: Path) -> None:
    """Remove a cache folder that cannot be opened (`promptopt cache clear` on a
    corrupt database, where diskcache's own clear cannot run)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


class CachedLLM:
    """Serves repeated requests from disk; passes only misses to `inner`."""

    def __init__(
        self,
        inner: LLM,
        cache: diskcache.Cache,
        usage: Usage,
        *,
        replay_charges: bool = False,
    ) -> None:
        self.inner = inner
        self.cache = cache
        self.usage = usage
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

    def _account_hit(self, key: str, entry: dict[str, Any]) -> None:
        """A hit is free, except a journal entry charged by an earlier process.

        Such an entry is charged once per process: a request the earlier run
        repeated was free then, and stays free when replayed.
        """
        replay = self.replay_charges and entry.get("charged")
        if replay and entry.get("session") != self.session and key not in self._replayed:
            self._replayed.add(key)
            self.usage.calls += 1
            self.usage.prompt_tokens += entry.get("prompt_tokens", 0)
            self.usage.completion_tokens += entry.get("completion_tokens", 0)
        else:
            self.usage.cache_hits += 1

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Callable[[int], None] | None = None
    ) -> list[Completion]:
        results: list[Completion | None] = [None] * len(requests)
        misses: list[int] = []
        for i, req in enumerate(requests):
            keys = [self._key("generate", _generation_payload(req, s)) for s in range(req.n)]
            entries = [self.cache.get(k) for k in keys]
            if all(e is not None for e in entries):
                for key, entry in zip(keys, entries, strict=True):
                    self._account_hit(key, entry)
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
        n = max(1, len(completion.texts))
        for s, text in enumerate(completion.texts):
            entry = {
                "text": text,
                "prompt_tokens": completion.prompt_tokens // n,
                "completion_tokens": completion.completion_tokens // n,
                "charged": not completion.cached,
                "session": self.session,
            }
            self.cache.set(self._key("generate", _generation_payload(req, s)), entry)

    def logprobs(self, requests: Sequence[LogprobRequest]) -> list[list[float]]:
        results: list[list[float] | None] = [None] * len(requests)
        misses: list[int] = []
        method = "logprobs" if self.logprob_scope == FULL_LOGPROBS else "logprobs-first-token"
        keys = [self._key(method, _logprob_payload(req)) for req in requests]
        for i, key in enumerate(keys):
            entry = self.cache.get(key)
            if entry is None:
                misses.append(i)
            else:
                self._account_hit(key, entry)
                results[i] = entry["values"]
        if misses:
            # Keys are shared by every layer, so an inner cache that already holds
            # a key will serve it free: only the others are charged.
            inner_cache = self.inner.cache if isinstance(self.inner, CachedLLM) else None
            free = {i for i in misses if inner_cache is not None and keys[i] in inner_cache}
            fresh = self.inner.logprobs([requests[i] for i in misses])
            for i, values in zip(misses, fresh, strict=True):
                entry = {"values": values, "charged": i not in free, "session": self.session}
                self.cache.set(keys[i], entry)
                results[i] = values
        return [r for r in results if r is not None]


def _logprob_payload(req: LogprobRequest) -> dict[str, Any]:
    return {
        "messages": [[m.role, m.content] for m in req.messages],
        "text": req.text,
        "continuations": list(req.continuations),
    }
