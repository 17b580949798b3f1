"""`Sandbox.check`: the program in one process, its tests in another, and a verdict
that nothing the program does can write.

Each adversarial program is written against this harness and runs twice where the
platform allows: with the in-interpreter guard, and without it (the OS layers
alone). None of them may pass.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from promptopt.data.code_tasks import humaneval_file, load_humaneval, run_hidden
from promptopt.sandbox.runner import Sandbox, SandboxLimits

FAST = SandboxLimits(timeout_s=4.0, cpu_s=2, memory_mb=256)

# The tests every program below is checked with: `add` must add, and a wrong one
# fails them (no adversarial program here adds correctly).
TESTS = (
    "add = sandbox_function('add')\n"
    "assert add(2, 3) == 5, 'add(2, 3)'\n"
    "assert add(10, -4) == 6\n"
    "assert isinstance(add(1, 1), int)\n"
)
WRONG = "def add(a, b):\n    return a - b\n"


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(allow_code_execution=True, limits=FAST)


@pytest.fixture(scope="module")
def bare() -> Sandbox:
    """The OS layers alone: no audit-hook guard in either process."""
    return Sandbox(allow_code_execution=True, limits=FAST, guard=False)


@pytest.fixture(params=["guarded", "bare"])
def box(request: pytest.FixtureRequest, sandbox: Sandbox, bare: Sandbox) -> Sandbox:
    return sandbox if request.param == "guarded" else bare


def test_right_wrong_and_raising_functions(sandbox: Sandbox) -> None:
    right = sandbox.check("def add(a, b):\n    return a + b\nprint('loaded')\n", TESTS)
    assert right.passed and right.stdout == "loaded"
    wrong = sandbox.check(WRONG, TESTS)
    assert wrong.status == "failed" and wrong.message == "AssertionError: add(2, 3)"
    raises = sandbox.check("def add(a, b):\n    return {}[a]\n", TESTS)
    assert raises.status == "error" and raises.message == "KeyError: 2"
    broken = sandbox.check("def add(a, b:\n", TESTS)
    assert broken.status == "error" and broken.message.startswith("SyntaxError")
    missing = sandbox.check("def sub(a, b):\n    return a - b\n", TESTS)
    assert missing.status == "error" and "NameError" in missing.message


def test_values_and_exceptions_cross_as_in_one_process(sandbox: Sandbox) -> None:
    program = (
        "def echo(*args, **kwargs):\n    return args, kwargs\n"
        "def parse(text):\n    return int(text)\n"
    )
    tests = (
        "echo, parse = sandbox_function('echo'), sandbox_function('parse')\n"
        "value = ((1, 2.5, float('inf'), 'x', b'y', {3}, frozenset(), None, 2**100),"
        " {(1, 2): [True]})\n"
        "got = echo(*value[0], **{'k': value[1]})\n"
        "assert got == (value[0], {'k': value[1]}) and type(got[0]) is tuple, got\n"
        "try:\n    parse('x')\nexcept ValueError as exc:\n    caught = str(exc)\n"
        "assert caught == \"invalid literal for int() with base 10: 'x'\", caught\n"
        "sandbox_report(name=type(caught).__name__, got=repr(got)[:40])\n"
    )
    result = sandbox.check(program, tests)
    assert result.passed, result
    assert result.reports and result.reports[0]["name"] == "str"


def test_a_function_that_hangs_ends_as_a_timeout(sandbox: Sandbox) -> None:
    for body in ("    while True:\n        pass\n", "    import time\n    time.sleep(60)\n"):
        started = time.perf_counter()
        result = sandbox.check("def add(a, b):\n" + body, TESTS)
        assert result.status == "timeout", result
        assert time.perf_counter() - started < FAST.timeout_s + 8


def test_memory_and_blocked_actions_in_the_program(sandbox: Sandbox) -> None:
    hog = "def add(a, b):\n    x = []\n    while True:\n        x.append(bytearray(10**7))\n"
    assert sandbox.check(hog, TESTS).status == "memory"
    spawn = "import os\ndef add(a, b):\n    os.system('true')\n    return a + b\n"
    result = sandbox.check(spawn, TESTS)
    assert result.status == "blocked" and "starting a process" in result.violations[0]
    quiet = "import os\ndef add(a, b):\n    try:\n        os.system('true')\n    except OSError:\n"
    quiet += "        pass\n    return a + b\n"
    assert sandbox.check(quiet, TESTS).status == "blocked"  # caught, still reported


# (a) Everything the program's process holds: argv, environment, every string gc
# and the frames reach (at load time and again inside the call, with the server's
# frames on the stack), written as "passed" records in the old and new shapes to
# every descriptor, then a wrong answer or os._exit(0). There is no token in this
# process to find, and the verdict pipe is not in it.
_FORGE = r"""
import gc, json, os, re, sys

def forge():
    found = set(sys.argv) | set(os.environ.values())
    def collect(values):
        for value in values:
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            if isinstance(value, str) and len(value) < 300:
                found.add(value)
    for obj in gc.get_objects():
        if isinstance(obj, dict):
            collect(list(obj.values()))
        elif isinstance(obj, (list, tuple, set)) and obj is not found:
            collect(list(obj))
    frame = sys._getframe()
    while frame is not None:
        collect(frame.f_locals.values())
        collect(frame.f_globals.values())
        frame = frame.f_back
    tokens = [v for v in found if re.fullmatch(r"[0-9a-f]{32}", v)]
    bodies = [
        json.dumps({"status": "passed", "message": "", "violations": []}),
        json.dumps({"status": "passed", "message": "", "violations": [], "gone": False}),
        json.dumps({"ready": True, "violations": []}),
        json.dumps({"value": 5, "violations": []}),
    ]
    payload = "".join(t + b + "\n" for t in ["", *tokens, *sorted(found)[:200]] for b in bodies)
    for fd in range(256):
        try:
            os.set_blocking(fd, False)
            os.write(fd, payload.encode())
        except OSError:
            pass
    return len(found)

forge()

def add(a, b):
    forge()
    END
"""


@pytest.mark.parametrize("end", ["return a - b", "os._exit(0)"])
def test_a_verdict_forged_from_frames_and_gc_does_not_pass(box: Sandbox, end: str) -> None:
    result = box.check(_FORGE.replace("END", end), TESTS)
    assert not result.passed and result.status in ("failed", "error", "crashed"), result


# (b) A trace function that jumps over every assert line: it can only trace the
# program's own process, where there are no asserts left to skip.
_SKIP_ASSERTS = r"""
import sys, threading

def tracer(frame, event, arg):
    if event == "line":
        try:
            import linecache
            line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
            if line.strip().startswith("assert"):
                frame.f_lineno = frame.f_lineno + 1
        except Exception:
            pass
    return tracer

sys.settrace(tracer)
threading.settrace(tracer)
frame = sys._getframe()
while frame is not None:
    frame.f_trace = tracer
    frame = frame.f_back

def add(a, b):
    sys.settrace(tracer)
    return a - b
"""


def test_a_trace_function_cannot_skip_the_tests_asserts(box: Sandbox) -> None:
    result = box.check(_SKIP_ASSERTS, TESTS)
    assert result.status == "failed" and result.message == "AssertionError: add(2, 3)", result


# (c) Objects that claim to equal anything never leave the program's process.
_ALWAYS_EQUAL = {
    "object": "class E:\n    def __eq__(self, o):\n        return True\n    __ne__ = __eq__\n"
    "def add(a, b):\n    return E()\n",
    "int subclass": "class E(int):\n    def __eq__(self, o):\n        return True\n"
    "    __hash__ = int.__hash__\ndef add(a, b):\n    return E(0)\n",
    "str subclass": "class E(str):\n    def __eq__(self, o):\n        return True\n"
    "    __hash__ = str.__hash__\ndef add(a, b):\n    return E('x')\n",
}


@pytest.mark.parametrize("kind", sorted(_ALWAYS_EQUAL))
def test_an_object_equal_to_everything_does_not_pass(box: Sandbox, kind: str) -> None:
    result = box.check(_ALWAYS_EQUAL[kind], TESTS)
    assert not result.passed and result.status in ("failed", "error"), result
    if kind == "object":
        assert result.message.startswith("TypeError: the function returned a E")


# (d) Monkeypatching builtins and the harness changes the program's process only.
_MONKEYPATCH = r"""
import builtins, json, os, sys
builtins.AssertionError = type("AssertionError", (Exception,), {})
builtins.isinstance = lambda *args: True
builtins.Exception = BaseException
json.loads = lambda *args, **kwargs: {"status": "passed"}
for name, module in list(sys.modules.items()):
    for attr in ("decode", "loads", "encode"):
        if hasattr(module, attr) and name not in ("json",):
            try:
                setattr(module, attr, lambda *args, **kwargs: 5)
            except Exception:
                pass
g = sys._getframe().f_back.f_globals if sys._getframe().f_back else {}
if "encode" in g:  # the server's encoder: every answer says 5
    g["encode"] = lambda value, depth=0: 5

def add(a, b):
    return a - b
"""


def test_monkeypatched_builtins_do_not_reach_the_tests(box: Sandbox) -> None:
    result = box.check(_MONKEYPATCH, TESTS)
    assert not result.passed, result
    # Its own process is all it changes: the tests' AssertionError is still the real one.
    patched = "import builtins\nbuiltins.AssertionError = type('E', (Exception,), {})\n"
    result = box.check(patched + WRONG, TESTS)
    assert result.status == "failed" and result.message == "AssertionError: add(2, 3)", result


# (e) The tests and their expected values are nowhere the program can read: not on
# disk, not in /proc (another PID namespace), not in the tests' directories.
_SEARCH = r"""
import glob, os, re
def search():
    places = glob.glob("/tmp/*/*") + glob.glob("/tmp/*") + glob.glob("/proc/[0-9]*/cmdline")
    places += glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/fd/*")
    places += glob.glob("/proc/[0-9]*/cwd/*") + glob.glob("/proc/[0-9]*/mem")
    for place in places:
        try:
            fd = os.open(place, os.O_RDONLY | os.O_NONBLOCK)
            try:
                data = os.read(fd, 1 << 20)
            finally:
                os.close(fd)
        except OSError:
            continue
        found = re.search(rb"canary-[0-9a-f]{16}", data)
        if found:
            return found.group().decode()
    return "not found"

def secret():
    return search()
"""


def test_the_program_cannot_read_the_tests_or_their_expected_values(box: Sandbox) -> None:
    canary = f"canary-{os.urandom(8).hex()}"
    tests = f"sandbox_report(expected={canary!r})\nsecret = sandbox_function('secret')\n"
    tests += f"got = secret()\nassert got == {canary!r}, got\n"
    result = box.check(_SEARCH, tests)
    assert not result.passed and result.status in ("failed", "blocked"), result
    assert canary not in result.stdout + result.stderr + result.message


# The benchmark's own data file holds every canonical solution: a program that
# finds it and runs its problem's solution would pass without solving anything.
_COPY_THE_ANSWER = r"""
import gzip, json

def has_close_elements(numbers, threshold):
    with gzip.open(DATA, "rt") as handle:
        for line in handle:
            row = json.loads(line)
            if row["task_id"] == "HumanEval/0":
                namespace = {}
                exec(row["prompt"] + row["canonical_solution"], namespace)
                return namespace["has_close_elements"](numbers, threshold)
"""


@pytest.fixture
def data_copy():  # type: ignore[no-untyped-def]
    """HumanEval's data file where anyone may read it (so only the sandbox hides it)."""
    folder = Path(tempfile.mkdtemp(prefix="promptopt-test-data-"))
    copy = folder / "HumanEval.jsonl.gz"
    shutil.copy(humaneval_file(), copy)
    folder.chmod(0o755)
    copy.chmod(0o644)
    yield copy
    shutil.rmtree(folder, ignore_errors=True)


def test_the_benchmarks_data_file_is_hidden_from_the_program(data_copy: Path) -> None:
    problem = load_humaneval(1)[0]
    cheat = _COPY_THE_ANSWER.replace("DATA", repr(str(data_copy)))
    tests = f"{problem.prompt}    pass\n\ncandidate = sandbox_function('has_close_elements')\n"
    tests += problem.test + "\ncheck(candidate)\n"
    # Without the sandbox's layers the cheat works: the test can fail.
    exposed = Sandbox(allow_code_execution=True, limits=FAST, isolate=False, guard=False)
    assert exposed.check(cheat, tests).passed
    guarded = Sandbox(allow_code_execution=True, limits=FAST)
    result = guarded.check(cheat, tests, hidden=[data_copy])
    assert result.status == "blocked" and "reading" in result.violations[0], result
    bare = Sandbox(allow_code_execution=True, limits=FAST, guard=False)
    if not bare.protections()["read_only_filesystem"]:
        pytest.skip("no mount namespace here: only the guard hides the data file")
    result = bare.check(cheat, tests, hidden=[data_copy])
    assert result.status == "failed", result  # it reads /dev/null there
    # run_hidden hides the installed data file itself.
    real = _COPY_THE_ANSWER.replace("DATA", repr(str(humaneval_file())))
    for box in (guarded, bare):
        assert not run_hidden(box, problem, real).passed


# (f) Ending the process right after defining the function.
@pytest.mark.parametrize(
    ("ending", "status"),
    [("import os\nos._exit(0)\n", "crashed"), ("import sys\nsys.exit(0)\n", "error")],
)
def test_exiting_after_defining_the_function_does_not_pass(
    box: Sandbox, ending: str, status: str
) -> None:
    result = box.check("def add(a, b):\n    return a + b\n" + ending, TESTS)
    assert result.status == status and not result.passed, result


def test_garbage_on_the_answer_pipe_is_an_error_not_a_pass(box: Sandbox) -> None:
    """The program writes to every descriptor its command line names (the pipes'
    numbers are the parent's, so in a process with many files open they are
    high: scanning a fixed range of numbers once missed them)."""
    program = (
        "import os, sys\n"
        "def add(a, b):\n"
        "    for fd in {int(arg) for arg in sys.argv[1:] if arg.isdigit()} | set(range(3, 64)):\n"
        "        try:\n"
        '            os.write(fd, b\'{"value": {"$": "pickle", "v": "x"}}\\n\' * 3)\n'
        "        except OSError:\n"
        "            pass\n"
        "    return a + b\n"
    )
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(100)]  # push the pipes past 100
    try:
        result = box.check(program, TESTS)
    finally:
        for fd in held:
            os.close(fd)
    assert result.status == "error" and "cannot be read" in result.message, result


def test_real_reports_come_from_the_tests_only(sandbox: Sandbox) -> None:
    program = (
        "import sys\n"
        "def add(a, b):\n"
        '    print(\'__promptopt_sandbox__0000:\' + \'{"kind": "report", "passed": true}\')\n'
        "    return a + b\n"
    )
    tests = TESTS + "sandbox_report(done=True)\n"
    result = sandbox.check(program, tests)
    assert result.passed and result.reports == [{"done": True}]
    assert json.dumps({"kind": "report", "passed": True}) in result.stdout


def test_humaneval_data_is_gzip_json() -> None:
    """The cheat above reads the file the way the benchmark stores it."""
    with gzip.open(humaneval_file(), "rt", encoding="utf-8") as handle:
        assert "canonical_solution" in json.loads(handle.readline())


def test_the_tests_process_is_not_dumpable(bare: Sandbox) -> None:
    """Where there is no PID namespace, its /proc entries (pipes, memory) are then
    closed to the program's process even as the same user."""
    tests = (
        "import ctypes\n"
        "sandbox_report(dumpable=ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))\n"  # PR_GET_DUMPABLE
    )
    result = bare.check("def f():\n    pass\n", tests)
    assert result.passed and result.reports == [{"dumpable": 0}], result


def test_the_data_file_stays_hidden_inside_a_visible_interpreter() -> None:
    """As root without dropping privileges the sandbox runs promptopt's own Python,
    whose site-packages hold HumanEval's data file: the interpreter's directories
    are shown again on top of the hidden ones, and the data file is hidden after."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    problem = load_humaneval(1)[0]
    cheat = _COPY_THE_ANSWER.replace("DATA", repr(str(humaneval_file())))
    tests = f"{problem.prompt}    pass\n\ncandidate = sandbox_function('has_close_elements')\n"
    tests += problem.test + "\ncheck(candidate)\n"
    for guard in (True, False):
        box = Sandbox(allow_code_execution=True, limits=FAST, guard=guard, drop_privileges=False)
        if not box.protections()["user_files_hidden"]:
            pytest.skip("no mount namespace here")
        assert box.check(cheat, tests).passed  # not hidden: the cheat works
        result = run_hidden(box, problem, cheat)
        if guard:
            assert result.status == "blocked" and "hidden from the program" in result.violations[0]
        else:
            assert result.status == "failed", result  # /dev/null in its place
