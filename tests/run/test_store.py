from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptopt.core.errors import ConfigError
from promptopt.run.store import RunStore, load_events, load_run_config, read_events

CONFIG = {"task": "antonyms", "strategy": "ape", "params": {}, "seed": 0, "sizes": {}}


def test_events_are_appended_and_result_written(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", CONFIG)
    store.event("scored", instruction="x", score=0.5)
    store.finish({"ok": True})
    events = read_events(tmp_path / "run")
    assert [e["event"] for e in events] == ["started", "scored", "finished"]
    assert json.loads((tmp_path / "run" / "result.json").read_text()) == {"ok": True}
    assert load_run_config(tmp_path / "run")["task"] == "antonyms"


def torn_run(run_dir: Path) -> None:
    """A run whose process was killed while writing its second event."""
    store = RunStore(run_dir, CONFIG)
    store.event("scored", score=1.0)
    store.close()
    with (run_dir / "events.jsonl").open("a") as handle:
        handle.write('{"event": "scor')


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    torn_run(tmp_path / "run")
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


def test_garbled_event_lines_are_skipped_and_listed(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", CONFIG)
    store.event("scored", score=1.0)
    store.close()
    with (tmp_path / "run" / "events.jsonl").open("ab") as handle:
        handle.write(b'\xff{"event": "x"}\n[1, 2]\n{"no_event": 1}\n{"event": "later"}\n')
    log = load_events(tmp_path / "run")
    assert [e["event"] for e in log.events] == ["started", "scored", "later"]
    assert log.unreadable == [3, 4, 5]
    assert "skipped 3 unreadable line(s)" in log.describe(Path("events.jsonl"))


def test_a_run_config_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    RunStore(tmp_path / "run", CONFIG).close()
    (tmp_path / "run" / "config.json").write_bytes(b'{"task": "\xff"}')
    with pytest.raises(ConfigError, match="not UTF-8 text .*: start a new run"):
        load_run_config(tmp_path / "run")


def test_a_resumed_run_writes_no_event_twice(tmp_path: Path) -> None:
    """The resumed search replays from its start: the events the log holds are not
    written again; from the first one that differs, every event is."""
    store = RunStore(tmp_path / "run", CONFIG)
    store.event("scored", score=0.5)
    store.event("scored", score=0.75)
    store.close()
    resumed = RunStore(tmp_path / "run", CONFIG, resume=True)
    resumed.event("scored", score=0.5)
    resumed.event("scored", score=0.75)
    resumed.event("scored", score=1.0)
    resumed.close()
    events = read_events(tmp_path / "run")
    assert [(e["event"], e.get("score")) for e in events] == [
        ("started", None), ("scored", 0.5), ("scored", 0.75), ("resumed", None), ("scored", 1.0)
    ]  # fmt: skip

    again = RunStore(tmp_path / "run", CONFIG, resume=True)
    again.event("scored", score=0.5)
    again.event("other")  # the replay went another way: written, and all after it
    again.event("scored", score=0.75)
    again.close()
    kinds = [e["event"] for e in read_events(tmp_path / "run")]
    assert kinds[5:] == ["resumed", "other", "scored"]


def test_a_resumed_run_starts_a_line_after_a_torn_one(tmp_path: Path) -> None:
    torn_run(tmp_path / "run")
    resumed = RunStore(tmp_path / "run", CONFIG, resume=True)
    resumed.event("scored", score=1.0)
    resumed.event("later")
    resumed.close()
    log = load_events(tmp_path / "run")
    assert [e["event"] for e in log.events] == ["started", "scored", "resumed", "later"]
    assert log.unreadable == [3]
