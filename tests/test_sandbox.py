"""The sandbox for model-written code: opt-in, limits, containment, and that the toolkit goes on.

Each dangerous behaviour is tested twice where the platform allows: with the
in-interpreter guard (what normally stops it first), and with the guard off, so
the OS layer behind it (resource limits, read-only mounts, no network, the
unprivileged user) is shown to stop it on its own.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from promptopt.errors import ConfigError
from promptopt.sandbox import Sandbox, SandboxLimits

FAST = SandboxLimits(timeout_s=3.0, cpu_s=2, memory_mb=256)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(allow_code_execution=True, limits=FAST)


@pytest.fixture(scope="module")
def bare() -> Sandbox:
    """The OS layers alone: no audit-hook guard."""
    return Sandbox(allow_code_execution=True, limits=FAST, guard=False)


@pytest.fixture
def open_dir():  # type: ignore[no-untyped-def]
    """A directory anyone may reach and write to (as /tmp is): only the sandbox
    can keep a program out of it."""
    target = Path(tempfile.mkdtemp(prefix="promptopt-test-outside-"))
    target.chmod(0o777)
    yield target
    shutil.rmtree(target, ignore_errors=True)


def test_refuses_without_the_opt_in() -> None:
    with pytest.raises(ConfigError, match="--allow-code-execution"):
        Sandbox(allow_code_execution=False)


def test_correct_code_passes_and_reports(sandbox: Sandbox) -> None:
    result = sandbox.run(
        "def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\n"
        "sandbox_report(got=add(1, 1))\nprint('hello')\n"
    )
    assert result.passed and result.status == "passed"
    assert result.reports == [{"got": 2}]
    assert result.stdout == "hello"


def test_wrong_code_fails_with_its_assertion(sandbox: Sandbox) -> None:
    result = sandbox.run("def add(a, b):\n    return a - b\n\nassert add(2, 3) == 5, 'add(2, 3)'\n")
    assert result.status == "failed" and not result.passed
    assert result.message == "AssertionError: add(2, 3)"


def test_broken_code_and_exit_are_errors_not_passes(sandbox: Sandbox) -> None:
    assert sandbox.run("def f(:\n").status == "error"
    assert "NameError" in sandbox.run("undefined_name + 1").message
    result = sandbox.run("import sys\nsys.exit(0)\n")
    assert result.status == "error" and "exit" in result.message
    assert sandbox.run("import os\nos._exit(0)\n").status == "crashed"


def test_an_infinite_loop_is_killed_at_the_time_limit(sandbox: Sandbox) -> None:
    started = time.perf_counter()
    result = sandbox.run("while True:\n    pass\n")
    assert result.status == "timeout"
    assert time.perf_counter() - started < FAST.timeout_s + 5
    assert sandbox.run("import time\ntime.sleep(60)\n").status == "timeout"


def test_the_cpu_limit_stops_a_loop_before_the_wall_clock() -> None:
    patient = Sandbox(
        allow_code_execution=True, limits=SandboxLimits(timeout_s=30.0, cpu_s=1), guard=False
    )
    started = time.perf_counter()
    result = patient.run("while True:\n    pass\n")
    assert result.status == "timeout" and "CPU" in result.message
    assert time.perf_counter() - started < 25


@pytest.mark.parametrize("guarded", [True, False])
def test_unbounded_allocation_hits_the_memory_limit(
    sandbox: Sandbox, bare: Sandbox, guarded: bool
) -> None:
    box = sandbox if guarded else bare
    result = box.run("blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))\n")
    assert result.status == "memory"


def test_writing_outside_the_scratch_directory_is_blocked(sandbox: Sandbox, open_dir: Path) -> None:
    escape = open_dir / "escape.txt"
    for program in (
        f"open({str(escape)!r}, 'w').write('x')",
        f"import os\nos.close(os.open({str(escape)!r}, os.O_WRONLY | os.O_CREAT))",
        "open('../escape.txt', 'w').write('x')",
        f"import shutil\nshutil.copy('program.py', {str(escape)!r})",
        f"import os\nos.rename('program.py', {str(escape)!r})",
    ):
        result = sandbox.run(program)
        assert result.status == "blocked", program
        assert "outside the working directory" in result.violations[0]
        assert not escape.exists()
    # Inside its own directory it may write.
    assert sandbox.run(
        "open('notes.txt', 'w').write('ok')\nimport os\nos.remove('notes.txt')"
    ).passed


def test_a_caught_violation_still_fails_the_program(sandbox: Sandbox, open_dir: Path) -> None:
    target = open_dir / "quiet.txt"
    result = sandbox.run(f"try:\n    open({str(target)!r}, 'w')\nexcept OSError:\n    pass\n")
    assert result.status == "blocked" and not target.exists()


def test_the_os_stops_writes_outside_without_the_guard(bare: Sandbox, open_dir: Path) -> None:
    if not bare.protections()["read_only_filesystem"]:
        pytest.skip("no mount namespace here: only the guard stops writes to world-writable places")
    escape = open_dir / "escape.txt"
    result = bare.run(f"open({str(escape)!r}, 'w').write('x')")
    assert result.status == "error" and "Read-only file system" in result.message
    assert not escape.exists()


def test_starting_processes_is_blocked(sandbox: Sandbox, open_dir: Path) -> None:
    marker = open_dir / "spawned"
    for program in (
        f"import os\nos.system('touch {marker}')",
        f"import subprocess\nsubprocess.run(['touch', {str(marker)!r}])",
        "import os\nos.fork()",
    ):
        result = sandbox.run(program)
        assert result.status == "blocked" and "starting a process" in result.violations[0]
    assert not marker.exists()


def test_a_fork_bomb_meets_the_process_limit_without_the_guard(bare: Sandbox) -> None:
    if os.geteuid() == 0 and not bare.protections()["unprivileged_user"]:
        pytest.skip("running as root without an unprivileged user: RLIMIT_NPROC does not apply")
    result = bare.run("import os\nwhile True:\n    os.fork()\n")
    assert result.status in ("error", "timeout")
    assert "Resource temporarily unavailable" in result.message or result.status == "timeout"
    # Everything it started is gone: the next program runs normally.
    assert bare.run("assert 1 + 1 == 2").passed


@pytest.fixture
def listener():  # type: ignore[no-untyped-def]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    yield server.getsockname()[1]
    server.close()


def test_no_network(sandbox: Sandbox, bare: Sandbox, listener: int) -> None:
    program = f"import socket\nsocket.create_connection(('127.0.0.1', {listener}), timeout=2)\n"
    socket.create_connection(("127.0.0.1", listener), timeout=2).close()  # reachable from here
    result = sandbox.run(program)
    assert result.status == "blocked" and "network" in result.violations[0]
    if not bare.protections()["no_network"]:
        pytest.skip("no network namespace here: only the guard refuses connections")
    result = bare.run(program)
    assert result.status == "error" and (
        "unreachable" in result.message or "refused" in result.message
    )


def test_output_is_capped(sandbox: Sandbox) -> None:
    result = sandbox.run("while True:\n    print('x' * 1000)\n")
    assert result.status == "output_limit"
    assert len(result.stdout) <= 64_000


def test_the_scratch_directory_is_private_and_removed(sandbox: Sandbox) -> None:
    result = sandbox.run(
        "import os\nsandbox_report(cwd=os.getcwd(), home=os.environ.get('HOME'), "
        "keys=sorted(os.environ))\n"
    )
    assert result.passed
    report = result.reports[0]
    assert report["cwd"] == report["home"]
    assert not Path(report["cwd"]).exists()
    assert "PROMPTOPT_DATA_DIR" not in report["keys"] and "OPENAI_API_KEY" not in report["keys"]


def test_the_toolkit_keeps_going_after_every_kind_of_bad_program(
    sandbox: Sandbox, open_dir: Path
) -> None:
    programs = [
        ("while True:\n    pass\n", "timeout"),
        ("x = []\nwhile True:\n    x.append(bytearray(10**7))\n", "memory"),
        (f"open({str(open_dir / 'e')!r}, 'w')", "blocked"),
        ("import os\nos.system('true')", "blocked"),
        ("raise RuntimeError('boom')", "error"),
        ("assert sum(range(4)) == 6", "passed"),
    ]
    assert [sandbox.run(p).status for p, _ in programs] == [s for _, s in programs]


def test_protections_say_what_is_active(sandbox: Sandbox) -> None:
    info = sandbox.protections()
    assert info["separate_process"] and info["scratch_directory"] and info["guard"]
    assert info["memory_mb"] == FAST.memory_mb and info["timeout_s"] == FAST.timeout_s
    if os.geteuid() == 0:
        assert info["unprivileged_user"]  # this machine: root drops to nobody
