"""A search's run directory: its config, an append-only event log, a call
journal that makes `--resume` free, and the final result.

    RUN_DIR/config.json    what was asked (task, strategy, params, models, seed)
    RUN_DIR/events.jsonl   one JSON object per line, appended and flushed
    RUN_DIR/calls/         diskcache journal of every model call of this run
    RUN_DIR/result.json    written last, atomically

Resume reruns the same seeded search: every call the interrupted process made
is answered from the journal (and charged as it was), so no finished work is
repeated and the search continues where it stopped. The replayed search emits
the events the log already holds again, in the same order: those are not
written twice (see `RunStore.event`).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache

from promptopt.core.domain import Usage
from promptopt.core.errors import ConfigError
from promptopt.core.files import read_utf8
from promptopt.llm.cache_files import open_cache, run_cache_role
from promptopt.llm.factory import model_identity

RESUME_KEYS = (
    "task",
    "strategy",
    "params",
    "seed",
    "data_seed",
    "target",
    "proposer",
    "sizes",
    "budget",
    "data_file",
)


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    os.replace(tmp, path)


class RunStore:
    def __init__(self, run_dir: Path, config: dict[str, Any], *, resume: bool = False) -> None:
        self.run_dir = run_dir
        self.config = config
        self.resumed = resume
        self.usage: Usage | None = None
        """The search's usage, once models exist: every later event records it, so a
        report can plot scores against the model calls spent to reach them."""
        config_path = run_dir / "config.json"
        if resume:
            if not config_path.is_file():
                raise ConfigError(
                    f"{run_dir} is not a promptopt run directory (no config.json): "
                    "pass the folder a search printed as its run directory"
                )
            saved = load_run_config(run_dir)
            for key in RESUME_KEYS:
                # A model's timeout and concurrency may change on resume: not its identity.
                if model_identity(saved.get(key)) != model_identity(config.get(key)):
                    raise ConfigError(
                        f"run {run_dir} was started with {key}={saved.get(key)!r}, not "
                        f"{config.get(key)!r}: resume with the same options or start a new run"
                    )
        else:
            if config_path.exists():
                raise ConfigError(
                    f"run directory {run_dir} already holds a run: "
                    "pass --resume to continue it or choose another --run-dir"
                )
            write_json_atomic(config_path, config)
        events = run_dir / "events.jsonl"
        self._replaying = _replayable(run_dir) if resume else []
        """Events of the interrupted process(es), which the resumed search emits again."""
        self._events = open(events, "a", encoding="utf-8")  # noqa: SIM115
        if resume and not _ends_a_line(events):
            self._events.write("\n")  # after a torn last line, start a line of our own
        self._write(_record("resumed" if resume else "started", {}))

    def journal(self) -> diskcache.Cache:
        directory = self.run_dir / "calls"
        return open_cache(directory, run_cache_role(directory))

    def event(self, kind: str, **data: Any) -> None:
        """Append an event. After a resume, the search replays from its start and
        emits the interrupted run's events again: while they equal the next ones
        the log holds (but for the time), they are skipped; the first one that
        differs, or comes after them, is written, and every one after it."""
        if self.usage is not None:
            data = {
                "calls": self.usage.calls,
                "new_calls": self.usage.new_calls,
                "cache_hits": self.usage.cache_hits,
                "tokens": self.usage.tokens,
                **data,
            }
        record = _record(kind, data)
        if kind in RUN_MARKERS:  # about this process, not the search: never replayed
            self._write(record)
            return
        if self._replaying:
            if _untimed(record) == self._replaying[0]:
                self._replaying.pop(0)
                return
            self._replaying = []
        self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        self._events.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._events.flush()

    def finish(self, result: dict[str, Any]) -> None:
        write_json_atomic(self.run_dir / "result.json", result)
        self.event("finished")
        self._events.close()

    def close(self) -> None:
        if not self._events.closed:
            self._events.close()


RUN_MARKERS = ("started", "resumed", "policy_restored")
"""Events a process writes for itself, not the search's: never replayed, and written
without ending the replay of the search's events (RLPrompt's `policy_restored`
comes in the middle of them)."""


def _record(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"t": round(time.time(), 3), "event": kind, **data}


def _untimed(record: dict[str, Any]) -> dict[str, Any]:
    """An event as read back from the log (JSON types), without its time."""
    data = json.loads(json.dumps(record, ensure_ascii=False))
    data.pop("t", None)
    return data


def _replayable(run_dir: Path) -> list[dict[str, Any]]:
    """The search's events in the log, in order, without their times."""
    events = load_events(run_dir).events
    return [_untimed(e) for e in events if e["event"] not in RUN_MARKERS]


def _ends_a_line(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            if handle.seek(0, os.SEEK_END) == 0:
                return True
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"
    except OSError:
        return True


def load_run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.json"
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} is not a promptopt run directory (no config.json): "
            "pass the folder a search printed as its run directory"
        )
    text = read_utf8(path, "run configuration", "start a new run")
    try:
        config = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"{path} is corrupt: start a new run") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} is corrupt (not a JSON object): start a new run")
    return config


@dataclass
class EventLog:
    """A run's events, and the lines of events.jsonl that could not be read."""

    events: list[dict[str, Any]]
    unreadable: list[int]
    """1-based line numbers: not UTF-8, not JSON, or not an event object."""

    def describe(self, path: Path) -> str:
        """One line for a warning or a report note; empty when every line was read."""
        if not self.unreadable:
            return ""
        lines = ", ".join(map(str, self.unreadable[:5])) + (
            ", ..." if len(self.unreadable) > 5 else ""
        )
        return (
            f"skipped {len(self.unreadable)} unreadable line(s) of {path} (line {lines}; "
            "a process killed mid-write leaves one torn line): the other events are used"
        )


def load_events(run_dir: Path) -> EventLog:
    """Every readable event of a run. events.jsonl is only appended to, so a killed
    process leaves at most a torn line, but a damaged file (bad bytes, a garbled
    line) must not cost the report the rest of the run: such lines are skipped and
    listed, never an error."""
    path = run_dir / "events.jsonl"
    try:
        data = path.read_bytes() if path.is_file() else b""
    except OSError:
        data = b""
    log = EventLog(events=[], unreadable=[])
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            record = None
        if isinstance(record, dict) and isinstance(record.get("event"), str):
            log.events.append(record)
        else:
            log.unreadable.append(number)
    return log


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """Events of a run; unreadable lines (a torn last line from a killed process, a
    garbled one) are skipped (`load_events` lists them)."""
    return load_events(run_dir).events
