from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptopt.errors import ConfigError
from promptopt.store import RunStore, load_run_config, read_events

CONFIG = {"task": "antonyms", "strategy": "ape", "params": {}, "seed": 0, "sizes": {}}


def test_events_are_appended_and_result_written(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", CONFIG)
    store.event("scored", instruction="x", score=0.5)
    store.finish({"ok": True})
    events = read_events(tmp_path / "run")
    assert [e["event"] for e in events] == ["started", "scored", "finished"]
    assert json.loads((tmp_path / "run" / "result.json").read_text()) == {"ok": True}
    assert load_run_config(tmp_path / "run")["task"] == "antonyms"


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", CONFIG)
    store.event("scored", score=1.0)
    store.close()
    with (tmp_path / "run" / "events.jsonl").open("a") as handle:
        handle.write('{"event": "scor')  # a process killed mid-write
    assert [e["event"] for e in read_events(tmp_path / "run")] == ["started", "scored"]


def test_new_run_refuses_an_existing_directory(tmp_path: Path) -> None:
    RunStore(tmp_path / "run", CONFIG).close()
    with pytest.raises(ConfigError, match="already holds a run"):
        RunStore(tmp_path / "run", CONFIG)


def test_resume_checks_the_config(tmp_path: Path) -> None:
    RunStore(tmp_path / "run", CONFIG).close()
    RunStore(tmp_path / "run", CONFIG, resume=True).close()
    with pytest.raises(ConfigError, match="seed=0"):
        RunStore(tmp_path / "run", {**CONFIG, "seed": 1}, resume=True)
    with pytest.raises(ConfigError, match="not a promptopt run directory"):
        RunStore(tmp_path / "elsewhere", CONFIG, resume=True)
