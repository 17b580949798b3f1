"""A search's run directory: its config, an append-only event log, a call
journal that makes `--resume` free, and the final result.

    RUN_DIR/config.json    what was asked (task, strategy, params, models, seed)
    RUN_DIR/events.jsonl   one JSON object per line, appended and flushed
    RUN_DIR/calls/         diskcache journal of every model call of this run
    RUN_DIR/result.json    written last, atomically

Resume reruns the same seeded search: every call the interrupted process made
is answered from the journal (and charged as it was), so no finished work is
repeated and the search continues where it stopped.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import diskcache

from promptopt.errors import ConfigError
from promptopt.llm.cache import open_cache
from promptopt.types import Usage

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
            saved = json.loads(config_path.read_text(encoding="utf-8"))
            for key in RESUME_KEYS:
                if saved.get(key) != config.get(key):
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
        self._events = open(run_dir / "events.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self.event("resumed" if resume else "started")

    def journal(self) -> diskcache.Cache:
        return open_cache(self.run_dir / "calls")

    def aux_cache(self, name: str) -> diskcache.Cache:
        """A strategy's own memo inside the run (e.g. InstructZero's writer outputs)."""
        return open_cache(self.run_dir / name)

    def event(self, kind: str, **data: Any) -> None:
        record: dict[str, Any] = {"t": round(time.time(), 3), "event": kind}
        if self.usage is not None:
            record["calls"] = self.usage.calls
            record["tokens"] = self.usage.tokens
        record.update(data)
        self._events.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._events.flush()

    def finish(self, result: dict[str, Any]) -> None:
        write_json_atomic(self.run_dir / "result.json", result)
        self.event("finished")
        self._events.close()

    def close(self) -> None:
        if not self._events.closed:
            self._events.close()


def load_run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.json"
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} is not a promptopt run directory (no config.json): "
            "pass the folder a search printed as its run directory"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise ConfigError(f"{path} is corrupt: start a new run") from None


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """Events of a run; a torn last line from a killed process is skipped."""
    events = []
    path = run_dir / "events.jsonl"
    if not path.is_file():
        return events
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
