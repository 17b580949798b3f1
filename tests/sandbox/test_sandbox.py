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

from promptopt.core import paths
from promptopt.core.errors import ConfigError
from promptopt.sandbox.runner import Sandbox, SandboxLimits, SandboxResult

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
    assert info["user_files_hidden"] == bool(info["hidden_paths"])


# The verdict: only the harness's record on its private pipe decides the status.

_FAKE_RESULT = '{"kind": "result", "status": "passed", "message": "", "violations": []}'


def test_a_verdict_forged_on_stdout_is_ignored(sandbox: Sandbox) -> None:
    forge = f"import os, sys\nprint(sys.argv[2] + {_FAKE_RESULT!r}, flush=True)\n"
    result = sandbox.run(forge + "os._exit(0)\n")
    assert result.status == "crashed" and not result.passed
    result = sandbox.run(forge + "assert 1 + 1 == 3, 'wrong'\n")
    assert result.status == "failed" and result.message == "AssertionError: wrong"
    result = sandbox.run(forge + "raise ValueError('after the fake record')\n")
    assert result.status == "error" and "after the fake record" in result.message
    result = sandbox.run(forge + "sandbox_report(step=1)\n")
    assert result.passed and result.reports == [{"step": 1}]  # reports still work


# Collects every string that could be a nonce or token (argv, environment, command
# line, everything gc and the frames can reach: the run's token is among them, in the
# harness's frame), then writes forged "passed" records with each of them, in the old
# and the new shape, to every file descriptor. Only a program that picks out the token
# and writes that one record to the verdict pipe alone could pass (see the module doc).
_SPRAY = r"""
import gc, json, os, re, sys
found = set(sys.argv) | set(os.environ.values())
with open("/proc/self/cmdline", "rb") as handle:
    found |= set(handle.read().decode("latin-1").split("\0"))
def collect(values):
    for value in values:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if isinstance(value, str) and re.search(r"[0-9a-f]{16}|sandbox|promptopt", value):
            found.add(value[:200])
for obj in gc.get_objects():
    if isinstance(obj, dict):
        collect(list(obj.values()))
    elif isinstance(obj, (list, tuple, set)) and obj is not found:
        collect(list(obj))
frame = sys._getframe()
while frame is not None:
    collect(frame.f_locals.values())
    frame = frame.f_back
bodies = [
    json.dumps({"kind": "result", "status": "passed", "message": "", "violations": []}),
    json.dumps({"status": "passed", "message": "", "violations": []}),
]
MODE
for fd in range(256):
    try:
        os.set_blocking(fd, False)
        os.write(fd, payload)
    except OSError:
        pass
sandbox_report(candidates=len(found))
os._exit(0)
"""


@pytest.mark.parametrize("guarded", [True, False])
def test_forged_records_on_every_descriptor_do_not_pass(
    sandbox: Sandbox, bare: Sandbox, guarded: bool
) -> None:
    box = sandbox if guarded else bare
    everything = 'payload = "".join(c + b + "\\n" for c in ["", *found] for b in bodies).encode()'
    one_line = 'payload = (bodies[1] + "\\n").encode()'
    wrong = "try:\n    assert 1 + 1 == 3\nexcept AssertionError:\n    pass\n"
    for mode in (everything, one_line):
        result = box.run(wrong + _SPRAY.replace("MODE", mode))
        # Not passed; "crashed", or "memory" when the spray's copy of the harness
        # source (from /proc/self/cmdline) on stderr mentions MemoryError.
        assert not result.passed and result.status in ("crashed", "memory"), result
        assert result.reports and result.reports[0]["candidates"] > 0


def test_programs_that_import_the_standard_library_pass(sandbox: Sandbox, bare: Sandbox) -> None:
    program = (
        "import collections, dataclasses, datetime, decimal, fractions, functools, heapq\n"
        "import itertools, json, math, random, re, statistics, string, typing\n"
        "assert json.loads(json.dumps({'a': [1, 2]})) == {'a': [1, 2]}\n"
        "assert re.findall(r'\\d+', 'a1b22') == ['1', '22']\n"
        "assert math.gcd(12, 18) == 6 and functools.reduce(int.__add__, range(5)) == 10\n"
        "assert collections.Counter('aab')['a'] == 2\n"
        "assert list(itertools.accumulate([1, 2, 3])) == [1, 3, 6]\n"
        "assert statistics.mean([1, 2, 3]) == 2 and fractions.Fraction(1, 2) * 2 == 1\n"
        "assert str(decimal.Decimal('0.1') + decimal.Decimal('0.2')) == '0.3'\n"
        "random.seed(0)\nassert 0 <= random.random() < 1\n"
    )
    for box in (sandbox, bare):
        result = box.run(program)
        assert result.passed, result


# Hiding the user's files. Each canary stands for one kind of the user's files: it
# sits in a directory anyone may read (so only the sandbox can keep it from the
# program), which is the caller's working directory, its HOME, or promptopt's cache.

_READ_ALL = """
import os
found = {}
for path in PATHS:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            found[path] = handle.read()
    except OSError as exc:
        found[path] = type(exc).__name__
    try:
        found[os.path.dirname(path) + "/"] = sorted(os.listdir(os.path.dirname(path)))
    except OSError as exc:
        found[os.path.dirname(path) + "/"] = type(exc).__name__
sandbox_report(**found)
"""


@pytest.fixture
def user_files(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Canary files in a working directory, a home and a cache directory of the
    caller's, each readable by anyone; the environment points promptopt at them."""
    root = Path(tempfile.mkdtemp(prefix="promptopt-test-user-"))
    canaries = {}
    for name in ("cwd", "home", "cache"):
        folder = root / name
        folder.mkdir()
        canary = folder / "secret.txt"
        canary.write_text(f"canary-{name}-{os.urandom(8).hex()}", encoding="utf-8")
        canaries[name] = canary
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    monkeypatch.chdir(root / "cwd")
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(root / "cache"))
    yield canaries
    shutil.rmtree(root, ignore_errors=True)


def _leaks(result: SandboxResult, secrets: list[str]) -> list[str]:
    seen = repr(result.reports) + result.stdout + result.stderr + result.message
    return [s for s in secrets if s in seen]


def test_the_users_files_are_out_of_reach(user_files: dict[str, Path]) -> None:
    secrets = [p.read_text(encoding="utf-8") for p in user_files.values()]
    program = _READ_ALL.replace("PATHS", repr([str(p) for p in user_files.values()]))
    # Without the sandbox's layers the sandbox user can read every canary: the test can fail.
    exposed = Sandbox(allow_code_execution=True, limits=FAST, isolate=False, guard=False)
    assert _leaks(exposed.run(program), secrets) == secrets
    guarded = Sandbox(allow_code_execution=True, limits=FAST)
    result = guarded.run(program)
    assert result.status == "blocked" and "reading" in result.violations[0]
    assert _leaks(result, secrets) == []
    bare = Sandbox(allow_code_execution=True, limits=FAST, guard=False)
    hidden = bare.protections()["hidden_paths"]
    if not bare.protections()["user_files_hidden"]:
        pytest.skip("no mount namespace here: only the guard keeps the user's files out")
    for name in ("cwd", "home", "cache"):
        assert str(user_files[name].parent) in hidden
    result = bare.run(program)
    assert result.passed and _leaks(result, secrets) == []
    for path in user_files.values():  # an empty directory in its place
        assert result.reports[0][str(path)] == "FileNotFoundError"
        assert result.reports[0][str(path.parent) + "/"] == []


def test_account_files_and_the_real_cache_are_out_of_reach(sandbox: Sandbox, bare: Sandbox) -> None:
    passwd = Path("/etc/passwd").read_text(encoding="utf-8")
    cache = paths.cache_root()
    cache_files = [p for p in cache.rglob("*") if p.is_file()][:5] if cache.is_dir() else []
    program = _READ_ALL.replace("PATHS", repr(["/etc/passwd", *map(str, cache_files)]))
    result = sandbox.run(program)
    assert result.status == "blocked" and "reading '/etc/passwd'" in result.violations[0]
    assert "root:" not in result.reports[0]["/etc/passwd"]
    if not bare.protections()["user_files_hidden"]:
        pytest.skip("no mount namespace here: only the guard keeps the user's files out")
    result = bare.run(program)
    assert passwd and result.passed and result.reports[0]["/etc/passwd"] == ""
    for path in cache_files:
        assert result.reports[0][str(path)] in ("FileNotFoundError", "PermissionError")


def test_hidden_directories_keep_an_interpreter_that_lives_inside_them(
    user_files: dict[str, Path],
) -> None:
    """As root without dropping privileges the sandbox runs promptopt's own Python,
    which may live under a hidden directory (here: pyenv in /root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    box = Sandbox(allow_code_execution=True, limits=FAST, guard=False, drop_privileges=False)
    if not box.protections()["user_files_hidden"]:
        pytest.skip("no mount namespace here")
    secrets = [p.read_text(encoding="utf-8") for p in user_files.values()]
    program = _READ_ALL.replace("PATHS", repr([str(p) for p in user_files.values()]))
    result = box.run("import json, re, decimal\n" + program)
    assert result.passed, result
    assert _leaks(result, secrets) == []
