"""The disk behind the call cache and the run journals: opening it, and one-line
errors when its SQLite database is damaged or cannot be written.

diskcache keeps entries in SQLite with transactions, so two processes may use
one cache at once and a killed process never leaves a half-written entry. What
is left to handle is a database damaged outside promptopt (a truncated copy, a
full disk) or one that cannot be written: each such failure is a `CacheUnusable`
naming the folder and the fix for its role, and nothing is deleted on the way.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache

from promptopt.core.errors import ConfigError


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
