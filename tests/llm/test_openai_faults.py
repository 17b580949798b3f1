"""Faults of an OpenAI-compatible server, end to end (issue 14, item 4).

A loopback fake server (`fake_openai_server`) hangs, rejects the key, rate-limits
or fails; the backend and the CLI must fail fast with one line and the
documented exit code, retry what is worth retrying, and stop on Ctrl-C within
seconds leaving a run that resumes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.core.domain import GenerationRequest
from promptopt.core.errors import AuthError, ModelError
from promptopt.llm.openai_compat import OpenAICompatLLM
from promptopt.strategies.base import SearchContext
from tests.llm.fake_openai_server import FakeOpenAIServer

runner = CliRunner()
KEY = "sk-CANARY-4f00d"
SMALL_SEARCH = [
    "search",
    "--task",
    "antonyms",
    "--dev-size",
    "2",
    "--test-size",
    "2",
    "-p",
    "num_subsamples=1",
    "-p",
    "proposals_per_subsample=1",
    "--demo-sets",
    "0",
    "--no-report",
]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    fake = FakeOpenAIServer()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _env(data_dir: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def search_args(server: FakeOpenAIServer, *extra: str) -> list[str]:
    models = ["--model", "openai:fake", "--proposer", "openai:fake"]
    urls = ["--base-url", server.url, "--proposer-base-url", server.url]
    return [*SMALL_SEARCH, *models, *urls, *extra]


def error_line(out: str) -> str:
    """The one `error:` line of a failed command, which printed no traceback."""
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, out
    return errors[0]


def ask(llm: OpenAICompatLLM, text: str = "hi") -> list[str]:
    return llm.generate([GenerationRequest.chat(text, max_tokens=4)])[0].texts


# --- the CLI -------------------------------------------------------------------------


def test_a_hung_server_fails_within_the_timeout(server: FakeOpenAIServer, tmp_path: Path) -> None:
    server.hang = True
    result = runner.invoke(
        app, search_args(server, "--run-dir", str(tmp_path / "run"), "--timeout", "1")
    )
    waited = time.monotonic() - server.times[0]
    line = error_line(result.output)
    assert result.exit_code == 4, result.output
    assert f"the model server at {server.url} did not answer within 1 s (tried 2 times)" in line
    assert line.endswith("raise --timeout or check the server")
    assert waited < 6, f"took {waited:.1f} s after the first request"  # 2 x 1 s + a backoff


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_has_its_own_exit_code(
    server: FakeOpenAIServer, tmp_path: Path, status: int
) -> None:
    server.status = status
    args = search_args(server, "--run-dir", str(tmp_path / "run"), "--concurrency", "1")
    result = runner.invoke(app, args)
    line = error_line(result.output)
    assert result.exit_code == AuthError.exit_code == 6, result.output
    assert line == (
        f"error: {server.url} rejected the API key in OPENAI_API_KEY (HTTP {status}): "
        "export a valid key"
    )
    assert server.requests == 1  # a rejected key is not retried
    assert KEY not in result.output


def test_rate_limiting_is_retried_then_fails_with_exit_4(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.status, server.retry_after = 429, "0"
    args = search_args(server, "--run-dir", str(tmp_path / "run"), "--max-concurrency", "1")
    result = runner.invoke(app, args)
    line = error_line(result.output)
    assert result.exit_code == 4, result.output
    assert f"{server.url} kept rate-limiting requests (HTTP 429, tried 4 times)" in line
    assert "lower --concurrency or wait" in line
    assert server.requests == 4  # one request, three retries


def test_a_run_resumes_after_the_fault_with_other_call_settings(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    """A run stopped by a fault resumes with --timeout and --concurrency changed,
    also one recorded before those options existed (no such keys: the defaults)."""
    run_dir = tmp_path / "run"
    server.status = 401
    assert runner.invoke(app, search_args(server, "--run-dir", str(run_dir))).exit_code == 6
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for role in ("target", "proposer"):
        del config[role]["timeout"], config[role]["max_concurrency"]
    config_path.write_text(json.dumps(config), encoding="utf-8")

    server.status = None
    args = ["search", "--resume", str(run_dir), "--timeout", "5", "--concurrency", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    export = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    spec = export["models"]["target"]["spec"]
    assert (spec["timeout"], spec["max_concurrency"], spec["base_url"]) == (5.0, 2, server.url)
    # The export's model, with its recorded timeout, is what eval calls.
    result = runner.invoke(app, ["eval", "--prompt", str(run_dir / "result.json"), "--no-cache"])
    assert result.exit_code == 0, result.output


def test_bad_timeout_and_concurrency_are_usage_errors(tmp_path: Path) -> None:
    for option, value in (("--timeout", "0"), ("--timeout", "nan"), ("--concurrency", "0")):
        args = [*SMALL_SEARCH, "--model", "openai:x", option, value]
        result = runner.invoke(app, [*args, "--run-dir", str(tmp_path / "run")])
        line = error_line(result.output)
        assert result.exit_code == 2 and f"{option} must be" in line, result.output
        assert not (tmp_path / "run").exists()


# --- the backend ---------------------------------------------------------------------


def test_retry_after_is_obeyed_and_a_retried_request_succeeds(server: FakeOpenAIServer) -> None:
    server.status, server.failures, server.retry_after = 429, 1, "1"
    llm = OpenAICompatLLM("fake", base_url=server.url, max_retries=3)
    assert ask(llm) == ["ok"]
    assert server.requests == 2
    assert server.times[1] - server.times[0] >= 0.9


def test_rate_limiting_without_retry_after_backs_off_then_succeeds(
    server: FakeOpenAIServer,
) -> None:
    server.status, server.failures, server.retry_after = 429, 2, None
    llm = OpenAICompatLLM("fake", base_url=server.url, max_retries=3)
    assert ask(llm) == ["ok"]
    assert server.requests == 3
    times = server.times
    gaps = [times[i + 1] - times[i] for i in range(len(times) - 1)]
    assert gaps[0] >= 0.37 and gaps[1] >= 0.74  # backoff 0.5 s, then 1 s, less <= 25% jitter


def test_server_errors_are_retried_with_backoff(server: FakeOpenAIServer) -> None:
    server.status, server.failures = 500, 2
    llm = OpenAICompatLLM("fake", base_url=server.url, max_retries=3)
    assert ask(llm) == ["ok"]
    assert server.requests == 3
    with pytest.raises(ModelError, match=r"\(HTTP 500, tried 2 times\)"):
        server.failures = None
        ask(OpenAICompatLLM("fake", base_url=server.url, max_retries=1))


def test_without_a_key_a_401_says_to_export_one(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    server.status = 401
    with pytest.raises(AuthError) as info:
        ask(OpenAICompatLLM("fake", base_url=server.url))
    assert (
        str(info.value) == f"{server.url} wants an API key (HTTP 401): export it as OPENAI_API_KEY"
    )


def test_a_failure_does_not_wait_for_requests_in_flight(server: FakeOpenAIServer) -> None:
    """The first error is raised at once while another request still hangs (a
    ThreadPoolExecutor would hold it until that request timed out: 30 s here)."""
    server.hang = True
    llm = OpenAICompatLLM("fake", base_url=server.url, timeout=30, max_retries=0)

    def call(item: int) -> list[str]:
        if item == 0:
            assert server.wait_for_requests(1, timeout=10)
            raise ModelError("the first request failed")
        return ask(llm)

    started = time.monotonic()
    with pytest.raises(ModelError, match="the first request failed"):
        llm._run(call, [0, 1])
    # Well under the 30 s the hanging request would hold it, with room for a loaded CI machine.
    assert time.monotonic() - started < 15


# --- Ctrl-C ----------------------------------------------------------------------------


def promptopt(*args: str) -> list[str]:
    """The CLI as a terminal starts it. A shell without job control starts its
    background commands with Ctrl-C ignored, and children inherit that: a suite
    run with `&` would then test a search that cannot be interrupted at all."""
    start = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from promptopt.cli import main; main()"
    )
    return [sys.executable, "-c", start, *args]


def test_ctrl_c_stops_a_search_within_seconds_and_the_run_resumes(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.hang, server.hang_after = True, 2  # the start prompt's 2 dev answers, then hang
    # faulthandler: a search that does not stop is aborted and shows where it was.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    process = subprocess.Popen(  # in the default run directory, without the shared cache
        promptopt(*search_args(server, "--no-cache")),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.wait_for_requests(3, timeout=120), "the search never got past dev"
        time.sleep(0.5)  # let the other requests of the batch start too
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            pytest.fail(f"still running 30 s after Ctrl-C:\n{process.communicate()[1]}")
        stopped = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # The hung server would hold it 4 x 60 s; 15 s leaves room for a loaded machine.
    assert stopped < 15, f"took {stopped:.1f} s to stop:\n{err}"
    assert process.returncode == 130, err
    assert "Traceback" not in err, err
    match = re.search(r"interrupted: the run is saved in (\S+); resume it with `([^`]+)`", err)
    assert match, err
    run_dir = tmp_path / match.group(1)
    assert (run_dir / "config.json").is_file() and not (run_dir / "result.json").exists()
    command = shlex.split(match.group(2))
    assert command[:3] == ["promptopt", "search", "--resume"]

    answered, before = server.bodies[:2], server.requests
    server.release()  # the server answers now
    resumed = subprocess.run(
        promptopt(*command[1:]), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert (run_dir / "result.json").is_file()
    assert "Test: best prompt" in resumed.stdout
    # What was answered before Ctrl-C came from the run's journal, not the server.
    assert not [body for body in server.bodies[before:] if body in answered]


# --- a credential in the server URL ------------------------------------------------------

URL_SECRET = "sk-URL-CANARY-77ab"


def interrupt_at_second_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C once the start was scored and a candidate's calls were made."""
    record = SearchContext.record_candidate
    recorded = {"n": 0}

    def interrupted(self: SearchContext, *args: Any) -> None:
        recorded["n"] += 1
        if recorded["n"] == 2:
            raise KeyboardInterrupt
        record(self, *args)

    monkeypatch.setattr(SearchContext, "record_candidate", interrupted)


@pytest.mark.parametrize("given", ["url", "key"])
def test_a_resume_gets_the_credential_of_the_server_url_again(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    """`--base-url http://user:KEY@host/v1` is saved without its credential, so a
    resume is given the URL again: with the credential, or explicitly without it
    (the server then takes the key in OPENAI_API_KEY). Without it, or with another
    server, one line says what to pass, before any request; the credential is
    never written anywhere."""
    basic = "Basic " + base64.b64encode(f"user:{URL_SECRET}".encode()).decode()
    server.authorizations = {basic, f"Bearer {URL_SECRET}"}
    server.reply = lambda body: "Give the antonym." if "nstruction" in str(body) else "cold"
    monkeypatch.delenv("OPENAI_API_KEY")
    url = server.url.replace("http://", f"http://user:{URL_SECRET}@")
    run_dir = tmp_path / "run"
    urls = ["--base-url", url, "--proposer-base-url", url]
    models = ["--model", "openai:fake", "--proposer", "openai:fake", "--run-dir", str(run_dir)]
    record = SearchContext.record_candidate
    interrupt_at_second_candidate(monkeypatch)
    started = runner.invoke(app, [*SMALL_SEARCH, *models, *urls, "--out", str(tmp_path / "o.json")])
    monkeypatch.setattr(SearchContext, "record_candidate", record)
    assert started.exit_code == 130, started.output
    assert "plus --base-url and --proposer-base-url with the credential again" in started.output
    outputs, requests = [started.output], server.requests
    resume = ["search", "--resume", str(run_dir)]

    placeholder = server.url.replace("http://", "http://USER:KEY@")
    for extra, expected in [
        ([], f"--base-url ({server.url}), which is never saved: pass it again, --base-url "),
        (urls[:2], f"--proposer-base-url ({server.url}), which is never saved"),
        (["--base-url", "http://user:x@127.0.0.1:1/v1"], f"--base-url {server.url}, not "),
    ]:
        result = runner.invoke(app, [*resume, *extra])
        outputs.append(result.output)
        assert result.exit_code == 2, result.output
        assert expected in error_line(result.output), result.output
    assert f"--base-url '{placeholder}' (or --base-url {server.url} to resume" in outputs[1]
    assert server.requests == requests  # refused before any model call

    if given == "key":
        monkeypatch.setenv("OPENAI_API_KEY", URL_SECRET)
        urls = ["--base-url", server.url, "--proposer-base-url", server.url]
    result = runner.invoke(app, [*resume, *urls])
    outputs.append(result.output)
    assert result.exit_code == 0, result.output
    export = json.loads((tmp_path / "o.json").read_text(encoding="utf-8"))
    assert export["models"]["target"]["spec"]["base_url"] == server.url
    assert server.requests > requests
    assert not [out for out in outputs if URL_SECRET in out]
    written = [
        p for p in tmp_path.rglob("*") if p.is_file() and URL_SECRET.encode() in p.read_bytes()
    ]
    assert written == []
