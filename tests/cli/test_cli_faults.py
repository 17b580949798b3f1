"""Damaged inputs and failing surroundings through the CLI (issue 14, items 5 and 8).

Each case asserts the documented exit code, one `error:` line naming the problem
and the fix, and no traceback; where the fault is in the inputs or outputs, it
is refused before any model is loaded. The model is the scripted fake wherever
it is not the point; the malformed-server cases talk to a real loopback server.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.llm.cache_files import open_cache
from promptopt.run import eval_run
from tests.fakes import ScriptedLLM, forbid_model_loading, plug_fake_model

runner = CliRunner()
SMALL = ["--task", "antonyms", "--dev-size", "2", "--test-size", "2"]
QUICK = [*SMALL, "-p", "num_subsamples=1", "-p", "proposals_per_subsample=1", "--no-report"]


@pytest.fixture(autouse=True)
def _env(data_dir: Path, isolated_cache: Path) -> None:
    pass


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def error_line(out: str, *, alone: bool = True) -> str:
    """The one `error:` line; with `alone`, the only line printed (nothing ran)."""
    assert "Traceback" not in out, out
    lines = out.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, out
    if alone:
        assert len(lines) == 1, out
    return errors[0]


def forbid_eval_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(spec: object) -> None:
        raise AssertionError(f"a model was loaded: {spec}")

    monkeypatch.setattr(eval_run, "build_llm", refuse)


def fake_eval_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eval_run, "build_llm", lambda spec: ScriptedLLM(lambda r, i: "x"))


def write_rows(path: Path, count: int = 30, offset: int = 0) -> Path:
    rows = [{"input": f"w{i + offset}", "target": f"t{i + offset}"} for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def export_body(task: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "format": "promptopt.prompt",
        "format_version": 1,
        "prompt": {"instruction": "Copy.", "template": "Input: {input}\nOutput:"},
        "task": task,
        "scores": {"test": {"score": 0.5, "n": 2}},
        "models": {"target": {"spec": {"backend": "hf", "model": "embedded"}}},
        **extra,
    }


def data_task(data: Path | str) -> dict[str, Any]:
    """An export's task entry as `search --data FILE` writes it."""
    return {
        "name": "rows",
        "ref": str(data),
        "sizes": {"train": 6, "dev": 2, "test": 2},
        "data_seed": 0,
        "data_file": {
            "path": str(data),
            "input_field": "input",
            "target_field": "target",
            "metric": "exact",
        },
    }


def write_export(path: Path, body: dict[str, Any]) -> Path:
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- not UTF-8


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json"])
def test_a_data_file_that_is_not_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    forbid_model_loading(monkeypatch)
    data = tmp_path / f"latin1{suffix}"
    head = {".jsonl": b'{"input": "a", "output": "b"}\n', ".csv": b"input,output\n"}
    data.write_bytes(head.get(suffix, b"[\n") + "caf\xe9".encode("latin-1") + b"\n")
    code, out = run("search", "--data", str(data))
    line = error_line(out)
    assert code == 3 and f"data file {data} is not UTF-8 text (byte 0xe9 on line 2)" in line
    assert "save it as UTF-8" in line


def test_a_task_file_that_is_not_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_model_loading(monkeypatch)
    task = tmp_path / "t.yaml"
    task.write_bytes(b"name: t\ndescription: caf\xe9\n")
    code, out = run("search", "--task", str(task))
    line = error_line(out)
    assert code == 2 and "is not UTF-8 text (byte 0xe9 on line 2)" in line


def test_an_export_that_is_not_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_eval_model(monkeypatch)
    body = json.dumps(export_body(data_task(write_rows(tmp_path / "rows.jsonl"))))
    export = tmp_path / "best.json"
    export.write_bytes(body.replace("Copy.", "Copy\xff.").encode("latin-1"))
    code, out = run("eval", "--prompt", str(export))
    line = error_line(out)
    assert code == 2 and f"prompt file {export} is not UTF-8 text (byte 0xff on line 1)" in line
    assert "re-export it with `promptopt search`" in line


# --------------------------------------------------------------------------- export fields


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format_version": "1"}, "format_version must be a whole number, got '1'"),
        ({"task": ["antonyms"]}, "task must be an object"),
        ({"task": {"ref": 7}}, "task.ref must be a string, got 7"),
        ({"task": {"ref": "antonyms", "sizes": {"test": "ten"}}}, "task.sizes.test must be"),
        ({"task": {"ref": "antonyms", "sizes": [50]}}, "task.sizes must be an object"),
        ({"task": {"ref": "antonyms", "data_seed": "0"}}, "task.data_seed must be a whole"),
        ({"task": {"ref": "x", "data_file": {"path": 3}}}, "task.data_file.path must be a str"),
        ({"models": {"target": {"spec": "embedded"}}}, "models.target.spec must be an object"),
        (
            {"models": {"target": {"spec": {"backend": "hf", "model": "embedded", "gpu": 1}}}},
            "models.target.spec must be keyed by backend, model",
        ),
        (
            {"models": {"target": {"spec": {"backend": "hf", "model": "x", "batch_size": "8"}}}},
            "models.target.spec.batch_size must be a whole number, got '8'",
        ),
        ({"scores": {"test": {"score": "high"}}}, "scores.test.score must be a number"),
        ({"prompt": {"instruction": 5, "template": "{input}"}}, "prompt.instruction must be a"),
        (
            {"prompt": {"instruction": "x", "template": "{input}", "demonstrations": ["a"]}},
            "prompt.demonstrations[0] must be an object",
        ),
        ({"kind": "ensemble", "ensemble": {"members": "abc"}}, "ensemble must be an object"),
        (
            {
                "kind": "ensemble",
                "ensemble": {
                    "members": [{"instruction": "x", "template": "{input}"}],
                    "samples": 0,
                },
            },
            "malformed ensemble (an ensemble needs at least one sample per member)",
        ),
    ],
)
def test_an_export_with_wrong_field_types(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], field: str
) -> None:
    forbid_eval_model(monkeypatch)
    body = {**export_body({"ref": "antonyms", "name": "antonyms"}), **change}
    code, out = run("eval", "--prompt", str(write_export(tmp_path / "best.json", body)))
    line = error_line(out)
    assert code == 2 and field in line
    assert "re-export it with `promptopt search`" in line


# --------------------------------------------------------------------------- caches


def garble(database: Path) -> bytes:
    database.parent.mkdir(parents=True, exist_ok=True)
    database.write_bytes(b"this is not a SQLite database " * 40)
    return database.read_bytes()


def truncate(database: Path) -> bytes:
    """A real cache with entries, cut in half as a full disk or a killed copy leaves it."""
    cache = open_cache(database.parent)
    for i in range(2000):
        cache.set(f"k{i}", {"text": "x" * 200})
    cache.close()
    with database.open("r+b") as handle:
        handle.truncate(database.stat().st_size // 2)
    return database.read_bytes()


@pytest.mark.parametrize("damage", [garble, truncate])
def test_a_corrupt_call_cache_is_one_line_and_clear_fixes_it(
    isolated_cache: Path, damage: Any
) -> None:
    database = isolated_cache / "calls" / "cache.db"
    damage(database)
    code, out = run("cache", "stats")
    line = error_line(out)
    assert code == 2 and f"the call cache at {database.parent} is corrupt or truncated" in line
    assert "run `promptopt cache clear`" in line and "or pass --no-cache" in line

    code, out = run("cache", "clear")
    assert code == 0 and "removed the corrupt cache" in out and "Traceback" not in out
    code, out = run("cache", "stats")
    assert code == 0 and "0 entries" in out


def test_a_search_on_a_corrupt_cache_stops_before_any_model_and_keeps_the_file(
    isolated_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = isolated_cache / "calls" / "cache.db"
    before = garble(database)
    forbid_model_loading(monkeypatch)
    code, out = run("search", *QUICK, "--run-dir", str(tmp_path / "run"))
    line = error_line(out)
    assert code == 2 and "is corrupt or truncated" in line
    assert "`promptopt cache clear`" in line and "--no-cache" in line
    assert database.read_bytes() == before  # nothing deleted or reset behind the user's back

    plug_fake_model(monkeypatch)  # the fix the message names works
    code, out = run("search", *QUICK, "--no-cache", "--run-dir", str(tmp_path / "run2"))
    assert code == 0, out


def test_a_corrupt_run_journal_on_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plug_fake_model(monkeypatch)
    run_dir = tmp_path / "run"
    code, out = run("search", *QUICK, "--run-dir", str(run_dir))
    assert code == 0, out
    garble(run_dir / "calls" / "cache.db")
    forbid_model_loading(monkeypatch)
    code, out = run("search", "--resume", str(run_dir), "--no-report")
    line = error_line(out)
    assert code == 2 and f"the run journal at {run_dir / 'calls'} is corrupt" in line
    assert f"delete {run_dir / 'calls'} and resume" in line


# --------------------------------------------------------------------------- events.jsonl


def test_report_skips_garbled_event_lines_with_a_warning(tmp_path: Path) -> None:
    from tests.report.fixtures import make_run

    run_dir = make_run(tmp_path / "run")
    events = run_dir / "events.jsonl"
    n = len(events.read_text(encoding="utf-8").splitlines())
    with events.open("ab") as handle:
        handle.write(b"\xff\xfe\x00 not text\n42\n")
        handle.write(b'{"event": "candidate", "calls": Infinity, "dev_score": NaN}\n')
        handle.write(b'{"t": 30, "event": "fini')  # torn by a killed process
    code, out = run("report", str(run_dir))
    assert code == 0 and "Traceback" not in out, out
    warning = next(line for line in out.splitlines() if line.startswith("warning: "))
    assert "skipped 3 unreadable line(s)" in warning
    assert f"(line {n + 1}, {n + 2}, {n + 4};" in warning
    html = (run_dir / "report" / "report.html").read_text(encoding="utf-8")
    assert "Skipped 3 unreadable line(s)" in html
    assert "1 candidate event(s) carry no call count" in html


def test_a_report_that_fails_does_not_fail_the_finished_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plug_fake_model(monkeypatch)

    def broken(path: Path, out: Path | None = None) -> Path:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr("promptopt.report.write_report", broken)
    out_file = tmp_path / "best.json"
    code, out = run("search", *QUICK[:-1], "--out", str(out_file), "--run-dir", str(tmp_path / "r"))
    assert code == 0 and out_file.is_file() and "Traceback" not in out, out
    assert f"retry with `promptopt report {tmp_path / 'r'}`" in out


# --------------------------------------------------------------------------- outputs


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    """A regular file: nothing can be created under it."""
    path = tmp_path / "blocker"
    path.write_text("a file\n")
    return path


@pytest.mark.parametrize("option", ["--out", "--run-dir"])
def test_search_refuses_an_output_under_a_file_before_any_model(
    blocker: Path, monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    forbid_model_loading(monkeypatch)
    target = blocker / "x"
    code, out = run("search", *QUICK, option, str(target))
    line = error_line(out)
    assert code == 2 and f"{option} {target} cannot be created: {blocker} is a file" in line
    assert f"choose another {option}" in line


def test_search_refuses_an_out_that_is_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_model_loading(monkeypatch)
    code, out = run("search", *QUICK, "--out", str(tmp_path))
    assert code == 2 and "is a directory: give a file name" in error_line(out)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only directories")
def test_search_refuses_a_read_only_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_model_loading(monkeypatch)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, out = run("search", *QUICK, "--run-dir", str(locked / "run"))
    finally:
        locked.chmod(0o700)
    assert code == 2 and f"no permission to write in {locked}" in error_line(out)


def test_compare_refuses_an_out_dir_under_a_file(
    blocker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_model_loading(monkeypatch)
    code, out = run("compare", *SMALL, "--seeds", "1", "--out-dir", str(blocker / "cmp"))
    line = error_line(out)
    assert code == 2 and f"--out-dir {blocker / 'cmp'} cannot be created" in line


@pytest.mark.parametrize("option", ["--json-out", "--junit-out", "--markdown-out"])
def test_eval_refuses_a_report_output_under_a_file_before_any_model(
    tmp_path: Path, blocker: Path, monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    forbid_eval_model(monkeypatch)
    export = write_export(
        tmp_path / "best.json", export_body(data_task(write_rows(tmp_path / "rows.jsonl")))
    )
    code, out = run("eval", "--prompt", str(export), option, str(blocker / "r"))
    line = error_line(out)
    assert code == 2 and f"{option} {blocker / 'r'} cannot be created" in line


# --------------------------------------------------------------------------- task paths


def mini_task(folder: Path) -> Path:
    """A task file whose data sits beside it (train and test with distinct inputs)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_rows(folder / "train.jsonl")
    write_rows(folder / "test.jsonl", offset=100)
    task = folder / "mini.yaml"
    task.write_text(
        "name: mini\nsource: {kind: jsonl, train: train.jsonl, test: test.jsonl}\n"
        'template: "Input: {input}\\nOutput:"\nbaseline_instruction: Copy.\n'
    )
    return task


@pytest.mark.parametrize("how", ["task", "data"])
def test_eval_from_another_directory_finds_a_relative_task_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    here, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    mini_task(here / "tasks")
    elsewhere.mkdir()
    plug_fake_model(monkeypatch)
    monkeypatch.chdir(here)
    given = ["--task", "tasks/mini.yaml"] if how == "task" else ["--data", "tasks/train.jsonl"]
    extra = ["--input-field", "input", "--target-field", "target"] if how == "data" else []
    code, out = run("search", *given, *extra, *QUICK[2:], "--out", "best.json", "--run-dir", "run")
    assert code == 0, out
    task = json.loads((here / "best.json").read_text())["task"]
    assert Path(task["ref"]).is_absolute()
    if how == "data":
        assert task["data_file"]["path"] == str(here / "tasks" / "train.jsonl")

    monkeypatch.chdir(elsewhere)
    fake_eval_model(monkeypatch)
    code, out = run("eval", "--prompt", str(here / "best.json"))
    assert code == 0 and "score" in out, out


@pytest.mark.parametrize("how", ["task", "data"])
def test_eval_reads_old_exports_with_paths_relative_to_where_the_search_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Exports written before paths were absolute: the search ran where --out put
    the export, so a path relative to the export's folder is the one meant."""
    here, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    mini_task(here / "tasks")
    elsewhere.mkdir()
    if how == "task":
        task = {"name": "mini", "ref": "tasks/mini.yaml", "sizes": {"test": 2}, "data_seed": 0}
    else:
        task = data_task("tasks/train.jsonl")
    export = write_export(here / "best.json", export_body(task))
    monkeypatch.chdir(elsewhere)
    fake_eval_model(monkeypatch)
    code, out = run("eval", "--prompt", str(export))
    assert code == 0 and "score" in out, out


@pytest.mark.parametrize(("how", "code"), [("task", 2), ("data", 3)])
def test_eval_names_a_task_path_it_cannot_find_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, code: int
) -> None:
    forbid_eval_model(monkeypatch)
    if how == "task":
        task = {"name": "gone", "ref": "tasks/gone.yaml", "sizes": {"test": 2}}
    else:
        task = data_task("tasks/gone.jsonl")
    export = write_export(tmp_path / "best.json", export_body(task))
    monkeypatch.chdir(tmp_path.parent)
    got, out = run("eval", "--prompt", str(export))
    line = error_line(out)
    assert got == code and f"named by {export} not found" in line
    assert "run eval from the directory the search ran in" in line


# --------------------------------------------------------------------------- servers


class GarbageServer:
    """A loopback HTTP server that answers every POST with one fixed body."""

    def __init__(self) -> None:
        self.body, self.content_type = b"", "application/json"
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                owner.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Type", owner.content_type)
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def garbage_server() -> Iterator[GarbageServer]:
    server = GarbageServer()
    yield server
    server.stop()


SECRET = "sk-CANARY-93f1c2"


@pytest.mark.parametrize(
    ("content_type", "body", "problem"),
    [
        ("application/json", b'{"choices": [{"mess', "cannot be parsed as JSON"),
        ("text/html", b"<html>502 Bad Gateway</html>", "something other than an OpenAI JSON"),
        ("application/json", b'{"choices": "none"}', "chat completion response that is not in"),
        ("application/json", b"[1, 2, 3]", "something other than an OpenAI JSON"),
    ],
)
def test_a_server_that_answers_garbage_is_a_model_error_without_the_credential(
    tmp_path: Path,
    garbage_server: GarbageServer,
    content_type: str,
    body: bytes,
    problem: str,
) -> None:
    garbage_server.content_type, garbage_server.body = content_type, body
    export = write_export(
        tmp_path / "best.json", export_body(data_task(write_rows(tmp_path / "rows.jsonl")))
    )
    url = f"http://user:{SECRET}@127.0.0.1:{garbage_server.port}/v1"
    code, out = run("eval", "--prompt", str(export), "--model", "openai:smol", "--base-url", url)
    line = error_line(out, alone=False)
    assert code == 4 and garbage_server.requests >= 1
    assert f"the model server at http://127.0.0.1:{garbage_server.port}/v1" in line
    assert problem in line and "check that --base-url points at an OpenAI-compatible" in line
    assert SECRET not in out and "user:" not in out


def test_an_unreachable_server_error_never_shows_the_credential(tmp_path: Path) -> None:
    export = write_export(
        tmp_path / "best.json", export_body(data_task(write_rows(tmp_path / "rows.jsonl")))
    )
    url = f"http://me:{SECRET}@127.0.0.1:9/v1"
    code, out = run("eval", "--prompt", str(export), "--model", "openai:smol", "--base-url", url)
    line = error_line(out, alone=False)
    assert code == 4 and "cannot reach the model server at http://127.0.0.1:9/v1" in line
    assert SECRET not in out
