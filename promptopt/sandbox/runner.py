"""Running model-written code: only when asked, in a separate, limited process.

Nothing here runs unless the caller opts in (`Sandbox(allow_code_execution=True)`,
`--allow-code-execution` on the command line). Each program then runs in a
fresh `python -I -B` subprocess with these layers, each independent of the others:

- OS resource limits, set in `preexec_fn` before the interpreter starts:
  RLIMIT_AS (memory), RLIMIT_CPU (CPU seconds), RLIMIT_FSIZE (largest file it
  may write, which also caps its captured stdout/stderr), RLIMIT_NPROC
  (processes), RLIMIT_NOFILE and RLIMIT_CORE; plus a wall-clock timeout after
  which the whole process group is killed.
- A scratch temporary directory as its working directory, HOME and TMPDIR,
  deleted afterwards, and an environment with nothing of the caller's in it.
- When promptopt runs as root: the program runs as the unprivileged `nobody`
  user (so RLIMIT_NPROC holds, which root ignores, and file permissions stop
  writes anywhere but world-writable places and the scratch directory).
- Namespaces, where the platform allows (`unshare`, with a user namespace
  when not root): an empty network namespace (no network at all), and a mount
  namespace in which every mount but the scratch directory is read-only. Where
  `setpriv` is there too, the user's files are hidden in it: an empty tmpfs
  over /home, /root, the caller's home and working directory and promptopt's
  cache and data directories, /dev/null over /etc's account files (the
  interpreter's own directories are set back on top when they lie inside); a PID
  namespace with its own /proc keeps other processes (the caller's environment,
  its working directory) out of sight; and the program starts with no
  capabilities, so it cannot undo a mount.
- A guard inside the interpreter (a `sys.addaudithook` hook installed before
  the program runs) refuses writes outside the scratch directory, reads outside
  it and the Python installation (and /proc/self, a few devices, zoneinfo),
  starting processes, sockets that connect or bind, ctypes and raising
  resource limits, and reports each refusal. It is a second line against
  accidents, not a boundary against code written to escape it; the OS layers
  above are.

`Sandbox.protections()` says which layers are active on this machine.

Judging model-written code: `Sandbox.check(program, tests)`. The program and
its tests run in two such processes, each with every layer above. The program's
process runs program.py, which only defines functions, then answers calls: the
tests' process runs the tests with `sandbox_function(name)` standing for the
program's function, sends each call's arguments over a pipe and gets back the
return value as plain data (`promptopt.sandbox.wire`: JSON with tags for tuples,
sets, bytes, inf and nan; never pickle, never an object the program built), or
the name and message of the exception it raised, raised again in the tests'
process as a fresh exception of that name. The program's process never holds
the tests: they reach the tests' process on a pipe, and its scratch and output
directories, and any `hidden` paths (HumanEval's data file, which holds every
canonical solution), are hidden from the program (an empty tmpfs or /dev/null
over them, and refused by its guard). A call that hangs ends the run at the CPU
or wall-clock limit, as a timeout.

The verdict. stdout, argv and a whole process are the program's, so none of
them decides the status: stdout carries only the `sandbox_report` lines, which
are informational. The harness writes its one outcome record to a pipe of its
own (`pass_fds`), after a per-run token that the parent sends on a second pipe,
read and closed by the harness before any test runs (never in argv, the
environment or a file). The parent takes the record only when that pipe holds
exactly one line, starting with the token, with exactly the harness's fields,
and the process then exited with 0; otherwise the status comes from how the
process ended (`crashed` when nothing else applies). For `check`, that harness
is the tests' process: the program's process has no token, no verdict pipe
and no view of the other process (its own PID namespace; the tests' process is
also non-dumpable, so its /proc entries are closed to the same user where there
is no PID namespace). Whatever the program does in its own process (find
strings through frames and gc, write "passed" records to every descriptor,
install a trace function, patch builtins or the harness, return an object equal
to everything, exit with 0 right after defining its functions), the tests run
elsewhere with their own asserts and builtins, on values rebuilt from data: the
worst it can do is answer wrongly, or stop answering (then the status is how its
process ended, never "passed").

`Sandbox.run(program)` runs one program with its own asserts in one process;
its "passed" says the program ended normally, which a program written against
the harness can fake (it can find the token in the harness's frame, or skip its
asserts). It is kept for code that is not being judged; untrusted code is
judged with `check`.

What this cannot stop: a program can still write the function's body to detect
the tests' inputs and answer only those (the tests' values reach it, as they
must); it can read whatever the layers above leave readable (a copy of a
benchmark's solutions somewhere the hiding plan does not know); a guard
violation it hides from its own guard goes unreported (the guard is not a
boundary); arguments it mutates are not sent back. Without the namespaces (no
`unshare`, `isolate=False`) and running as the same user as the tests' process,
the program could reach that process through the kernel (signals; /proc only
if the non-dumpable flag could not be set), so the verdict is only as strong as
the OS layers that are active (`protections()`).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from promptopt.core import paths
from promptopt.core.errors import ConfigError
from promptopt.sandbox import wire as sandbox_wire

OPT_IN_FLAG = "--allow-code-execution"
NOBODY = 65534
_REPORT_TAG = "__promptopt_sandbox__"
_MAX_CAPTURE = 64_000

# The guard (see the module doc), shared by every harness below. It expects the
# globals `scratch` (the working directory), `_violations` (a list it appends each
# refusal to) and `_secrets` (paths it refuses to read even inside Python's
# directories: the tests' data files).
_GUARD = r"""
def _install_guard():
    realpath, isabs, join, fsdecode, sep = (
        os.path.realpath, os.path.isabs, os.path.join, os.fsdecode, os.sep
    )
    getpid = os.getpid
    python = {realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                     sys.base_exec_prefix) if p}
    readable = (scratch, "/proc/%d" % getpid(), "/usr/share/zoneinfo", *sorted(python))
    hidden = tuple(realpath(p) for p in _secrets)
    devices = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
    writing_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    path_events = {
        "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.chmod": (0,),
        "os.chown": (0,), "os.truncate": (0,), "os.utime": (0,), "os.chflags": (0,),
        "os.setxattr": (0,), "os.removexattr": (0,), "shutil.rmtree": (0,),
        "os.rename": (0, 1), "os.link": (0, 1), "os.symlink": (1,),
    }
    process_events = {
        "os.system", "subprocess.Popen", "os.fork", "os.forkpty", "os.exec",
        "os.posix_spawn", "os.spawn", "os.startfile", "pty.spawn",
    }
    network_events = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"}
    busy = []

    def resolve(path):
        path = fsdecode(path)
        return realpath(path if isabs(path) else join(os.getcwd(), path))

    def within(full, roots):
        return any(full == root or full.startswith(root.rstrip(sep) + sep) for root in roots)

    def inside(path):
        if isinstance(path, int) or path is None:
            return True
        full = resolve(path)
        return within(full, (scratch,)) or full == "/dev/null"

    def may_read(path):
        if isinstance(path, int) or path is None:
            return True
        full = resolve(path)
        return within(full, readable) or full in devices

    def unseen(path):
        return bool(hidden) and not isinstance(path, int) and path is not None and within(
            resolve(path), hidden
        )

    def deny(what):
        _violations.append(what)
        raise PermissionError("sandbox: " + what + " is not allowed")

    def hook(event, args):
        if busy:
            return
        busy.append(1)
        try:
            if event == "open":
                path, mode, flags = args
                writes = isinstance(mode, str) and any(c in mode for c in "wax+")
                if writes or (flags or 0) & writing_flags:
                    if not inside(path):
                        deny("writing %r outside the working directory" % (path,))
                elif unseen(path):
                    deny("reading %r, which is hidden from the program" % (path,))
                elif not may_read(path):
                    deny("reading %r outside the working directory and Python" % (path,))
            elif event == "sqlite3.connect":
                database = fsdecode(args[0])
                if database.startswith("file:"):
                    database = database[5:].split("?")[0]
                if not inside(database):
                    deny("opening the database %r outside the working directory" % (args[0],))
            elif event in path_events:
                for i in path_events[event]:
                    if not inside(args[i]):
                        deny("%s on %r outside the working directory" % (event, args[i]))
            elif event in process_events:
                deny("starting a process (%s)" % event)
            elif event in network_events:
                deny("network access (%s)" % event)
            elif event.startswith("ctypes."):
                deny("ctypes (%s)" % event)
            elif event == "resource.setrlimit":
                deny("changing resource limits")
            elif event in ("os.kill", "os.killpg") and args[0] not in (0, getpid()):
                deny("signalling another process")
        finally:
            busy.pop()

    sys.addaudithook(hook)


"""

# The first code the sandboxed interpreter runs for `Sandbox.run`. It installs the
# guard, runs program.py from the scratch directory in a fresh namespace, writes
# one tagged JSON line per report to stdout (informational only), and its one
# outcome record to the verdict pipe (see "The verdict" in the module doc).
_HARNESS_HEAD = r"""
import gc, json, os, sys
scratch, nonce, guarded = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
verdict_fd, token_fd, harness_pid = int(sys.argv[4]), int(sys.argv[5]), os.getpid()
os.set_inheritable(verdict_fd, False)
os.chdir(scratch)
_write, _dumps, _getpid, _violations, _secrets = os.write, json.dumps, os.getpid, [], ()


def _emit(kind, data):
    line = "\n" + nonce + _dumps({"kind": kind, **data}, default=repr) + "\n"
    try:
        _write(1, line.encode("utf-8", "replace"))
    except OSError:
        pass


def sandbox_report(**data):
    _emit("report", data)


"""
_HARNESS_MAIN = r"""
def _take_token():
    # The parent's per-run token, read and the pipe closed before the program runs;
    # from here on it is only a local of _main.
    token = os.read(token_fd, 64)
    os.close(token_fd)
    return token


def _main(token):
    status, message = "passed", ""
    try:
        with open("program.py", encoding="utf-8") as handle:
            source = handle.read()
        if guarded:
            _install_guard()
        namespace = {"__name__": "__sandbox__", "__builtins__": __builtins__}
        namespace["sandbox_report"] = sandbox_report
        exec(compile(source, "program.py", "exec"), namespace)
    except AssertionError as exc:
        status, message = "failed", ("AssertionError: " + str(exc)).strip().rstrip(":")
    except MemoryError:
        namespace = None
        gc.collect()
        status, message = "memory", "MemoryError: the memory limit was reached"
    except SystemExit as exc:
        status, message = "error", "the program called exit(%s)" % (exc.code,)
    except BaseException as exc:
        status, message = "error", (type(exc).__name__ + ": " + str(exc)).strip().rstrip(":")
    if _violations:
        status = "blocked"
        message = message or ("sandbox: " + _violations[0] + " is not allowed")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    if _getpid() != harness_pid:  # a process the program forked has no say in the verdict
        os._exit(1)
    record = {"status": status, "message": message[:500],
              "violations": [str(v)[:200] for v in _violations[:10]]}
    try:
        _write(verdict_fd, token + (_dumps(record) + "\n").encode("utf-8", "replace"))
    except BaseException:
        pass
    os._exit(0)


_main(_take_token())
"""
_HARNESS = _HARNESS_HEAD + _GUARD + _HARNESS_MAIN
# `Sandbox.check`, the program's process: it installs the guard, runs program.py
# (which only defines functions) in a fresh namespace, says on the answers pipe
# whether that worked, then answers each call the tests' process sends on the calls
# pipe with the return value or the exception's type and message, as plain data
# (`sandbox_wire`). Everything here is the program's to change: what it sends is
# only ever read as the program's answers, never as a verdict.
_SERVER_MAIN = r"""
import gc, sys
scratch, guarded = os.path.realpath(sys.argv[1]), sys.argv[2] == "1"
calls_fd, answers_fd = int(sys.argv[3]), int(sys.argv[4])
_secrets, _violations, _sent = tuple(sys.argv[5:]), [], [0]
for _fd in (calls_fd, answers_fd):
    os.set_inheritable(_fd, False)
os.chdir(scratch)
_write = os.write
"""
_SERVER_LOOP = r"""
def _text(exc):
    if isinstance(exc, SystemExit):
        return "the program called exit(%s)" % (exc.code,)
    try:
        return str(exc)[:2000]
    except BaseException:
        return ""


def _answer(message):
    message["violations"] = [str(v)[:200] for v in _violations[_sent[0]:][:10]]
    _sent[0] = len(_violations)
    write_all(answers_fd, dumps(message))


def _serve():
    namespace = {"__name__": "__sandbox__", "__builtins__": __builtins__}
    try:
        with open("program.py", encoding="utf-8") as handle:
            source = handle.read()
        if guarded:
            _install_guard()
        exec(compile(source, "program.py", "exec"), namespace)
        _answer({"ready": True})
    except MemoryError:
        namespace = None
        gc.collect()
        _answer({"ready": False, "raised": "MemoryError",
                 "message": "MemoryError: the memory limit was reached"})
        return
    except BaseException as exc:
        text = _text(exc)
        if not isinstance(exc, SystemExit):
            text = (type(exc).__name__ + ": " + text).strip().rstrip(":")
        _answer({"ready": False, "raised": type(exc).__name__, "message": text})
        return
    calls = LineReader(calls_fd)
    while True:
        line = calls.readline()
        if line is None:  # the tests are done
            return
        call = loads(line)
        value = None
        try:
            function = namespace.get(call["call"])
            if not callable(function):
                raise NameError("name %r is not defined" % (call["call"],))
            value = function(*decode(call["args"]), **decode(call["kwargs"]))
            try:
                answer = {"value": encode(value)}
            except WireError as exc:
                answer = {"raised": "TypeError", "message": "the function returned " + str(exc)}
        except MemoryError:
            value = None
            gc.collect()
            answer = {"raised": "MemoryError", "message": "the memory limit was reached"}
        except BaseException as exc:
            answer = {"raised": type(exc).__name__, "message": _text(exc)}
        value = None
        _answer(answer)


try:
    _serve()
except BaseException:
    pass
for _stream in (sys.stdout, sys.stderr):
    try:
        _stream.flush()
    except BaseException:
        pass
os._exit(0)
"""

# `Sandbox.check`, the tests' process: trusted test code, run with the same layers.
# It reads the run's token and the tests from a pipe the parent closes behind them,
# waits for the program's process to say it loaded, runs the tests with
# `sandbox_function(name)` standing for the program's function (each call goes to
# the other process; only data comes back), and writes its one outcome record to
# its verdict pipe, which only this process holds. "gone" says the program's
# process ended or stopped answering first: the parent then takes the status from
# how that process ended.
_TESTER_MAIN = r"""
import builtins, gc, sys
scratch, nonce, guarded = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
verdict_fd, input_fd, calls_fd, answers_fd = (int(a) for a in sys.argv[4:8])
_secrets, _violations, harness_pid = tuple(sys.argv[8:]), [], os.getpid()
for _fd in (verdict_fd, calls_fd, answers_fd):
    os.set_inheritable(_fd, False)
os.chdir(scratch)
_write, _dumps, _getpid = os.write, json.dumps, os.getpid
"""
_TESTER_RUN = r"""
class _ProgramGone(BaseException):
    # Not an Exception: a test's `except Exception` must not carry on without the program.
    pass


_state = {"gone": False, "violations": []}
_answers = LineReader(answers_fd)
_errors = {}


def _program_error(name, message):
    # The program's exception, rebuilt here as a fresh class with its type's name
    # (a subclass of the built-in exception of that name, when there is one, so a
    # test's `except ValueError` works as in one process); only its message is kept.
    name = str(name)[:100] or "Exception"
    kind = _errors.get(name)
    if kind is None:
        base = getattr(builtins, name, None)
        if not (isinstance(base, type) and issubclass(base, Exception)):
            base = Exception
        body = {"__str__": lambda self: str(self.args[0]) if self.args else "",
                "__module__": "program"}
        try:
            kind = type(name, (base,), body)
            kind("probe")
        except Exception:
            kind = type(name, (Exception,), body)
        _errors[name] = kind
    return kind(str(message)[:2000])


def _unreadable(why):
    return _program_error("ValueError", "the program's answer cannot be read: %s" % (why,))


def _receive():
    try:
        line = _answers.readline()
        message = None if line is None else loads(line)
    except WireError as exc:
        raise _unreadable(exc) from None
    if message is None:
        _state["gone"] = True
        raise _ProgramGone("the program's process ended before answering the tests")
    violations = message.get("violations")
    if type(violations) is list:
        _state["violations"].extend(str(v)[:200] for v in violations[:10])
    return message


def _call(name, args, kwargs):
    if _state["gone"]:
        raise _ProgramGone("the program's process ended before answering the tests")
    try:
        request = dumps({"call": name, "args": encode(list(args)), "kwargs": encode(kwargs)})
    except WireError as exc:
        raise TypeError("the tests passed a value that cannot be sent: %s" % (exc,)) from None
    try:
        write_all(calls_fd, request)
    except OSError:
        _state["gone"] = True
        raise _ProgramGone("the program's process ended before answering the tests") from None
    message = _receive()
    if "raised" in message:
        raise _program_error(message["raised"], message.get("message", ""))
    if "value" not in message:
        raise _unreadable("no value")
    try:
        return decode(message["value"])
    except (ValueError, TypeError) as exc:
        raise _unreadable(exc) from None


def sandbox_function(name):
    # What the tests call instead of the program's function `name`.
    def call(*args, **kwargs):
        return _call(name, args, kwargs)

    call.__name__ = call.__qualname__ = str(name)
    return call


def _undumpable():
    # Where there is no PID namespace, a process of the same user could open this
    # one's /proc entries (its pipes, its memory); a non-dumpable process's are root's.
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except BaseException:
        pass


def _take_input():
    chunks = []
    while True:
        chunk = os.read(input_fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(input_fd)
    token, _, tests = b"".join(chunks).partition(b"\n")
    return token, tests.decode("utf-8", "replace")


def _describe(exc):
    return (type(exc).__name__ + ": " + str(exc)).strip().rstrip(":")


def _main(token, tests):
    status, message = "passed", ""
    try:
        if guarded:
            _install_guard()
        loaded = _receive()
        if loaded.get("ready") is not True:
            raised = str(loaded.get("raised", ""))
            status = {"MemoryError": "memory", "AssertionError": "failed"}.get(raised, "error")
            message = str(loaded.get("message", "")) or "the program did not load"
        else:
            namespace = {"__name__": "__tests__", "__builtins__": __builtins__,
                         "sandbox_report": sandbox_report, "sandbox_function": sandbox_function}
            exec(compile(tests, "tests.py", "exec"), namespace)
    except _ProgramGone as exc:
        status, message = "error", str(exc)
    except AssertionError as exc:
        status, message = "failed", _describe(exc)
    except MemoryError:
        namespace = None
        gc.collect()
        status, message = "memory", "MemoryError: the memory limit was reached"
    except SystemExit as exc:
        status, message = "error", "the tests called exit(%s)" % (exc.code,)
    except BaseException as exc:
        status, message = "error", _describe(exc)
    violations = _state["violations"] + [str(v)[:200] for v in _violations]
    if violations:
        status = "blocked"
        message = message or ("sandbox: " + violations[0] + " is not allowed")
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    if _getpid() != harness_pid:
        os._exit(1)
    record = {"status": status, "message": message[:500], "violations": violations[:10],
              "gone": bool(_state["gone"])}
    try:
        _write(verdict_fd, token + (_dumps(record) + "\n").encode("utf-8", "replace"))
    except BaseException:
        pass
    os._exit(0)


_undumpable()
_main(*_take_input())
"""
_WIRE = inspect.getsource(sandbox_wire)
_SERVER = _WIRE + _SERVER_MAIN + _GUARD + _SERVER_LOOP
_EMIT = _HARNESS_HEAD[_HARNESS_HEAD.index("def _emit") :]
_TESTER = _WIRE + _TESTER_MAIN + _EMIT + _GUARD + _TESTER_RUN
# What the harness may write to the verdict pipe (`_verdict` accepts nothing else).
_HARNESS_STATUSES = frozenset({"passed", "failed", "error", "memory", "blocked"})
_VERDICT_KEYS = frozenset({"status", "message", "violations"})
_CHECK_KEYS = _VERDICT_KEYS | {"gone"}


@dataclass(frozen=True)
class SandboxLimits:
    """What one sandboxed program may use."""

    timeout_s: float = 5.0
    """Wall-clock seconds before the process group is killed."""
    cpu_s: int = 5
    """RLIMIT_CPU: CPU seconds."""
    memory_mb: int = 512
    """RLIMIT_AS: address space, MiB."""
    max_file_bytes: int = 1_000_000
    """RLIMIT_FSIZE: the largest file it may write (stdout and stderr included)."""
    max_processes: int = 32
    """RLIMIT_NPROC: processes of the sandbox user (enforced when not root)."""
    max_open_files: int = 64
    """RLIMIT_NOFILE."""


@dataclass
class SandboxResult:
    """The outcome of one program.

    status: passed | failed (an assertion failed) | error (any other exception,
    or the program called exit) | timeout (wall clock or CPU limit) | memory |
    output_limit (wrote past the file-size limit) | blocked (the guard refused
    an action) | crashed (died without a report).
    """

    status: str
    message: str = ""
    reports: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    returncode: int | None = None
    seconds: float = 0.0
    stdout: str = ""
    stderr: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def require_opt_in(allowed: bool) -> None:
    """The one-line refusal when code execution was not asked for."""
    if not allowed:
        raise ConfigError(
            "this task runs model-written code: pass --allow-code-execution to run it in "
            "promptopt's sandbox (separate process, time, memory and process limits, "
            "scratch directory, no network where possible; see README)"
        )


class Sandbox:
    """Runs Python programs in a separate, limited process (see the module doc)."""

    def __init__(
        self,
        *,
        allow_code_execution: bool,
        limits: SandboxLimits | None = None,
        isolate: bool = True,
        drop_privileges: bool = True,
        guard: bool = True,
    ) -> None:
        require_opt_in(allow_code_execution)
        self.limits = limits or SandboxLimits()
        self.guard = guard
        self.user = NOBODY if drop_privileges and os.geteuid() == 0 else None
        self.python = _interpreter(self.user)
        if self.python is None:  # no interpreter the unprivileged user may run
            self.user, self.python = None, sys.executable
        self.isolation = _Isolation()
        if isolate:
            self.isolation = _isolation(self.user, self.python)

    def protections(self) -> dict[str, Any]:
        """Which layers are active here, for reports and the README's claims."""
        lim = self.limits
        return {
            "separate_process": True,
            "interpreter": self.python,
            "timeout_s": lim.timeout_s,
            "cpu_s": lim.cpu_s,
            "memory_mb": lim.memory_mb,
            "max_file_bytes": lim.max_file_bytes,
            "max_processes": lim.max_processes,
            "scratch_directory": True,
            "unprivileged_user": self.user is not None,
            "no_network": bool(self.isolation.prefix),
            "read_only_filesystem": self.isolation.read_only,
            "user_files_hidden": bool(self.isolation.hidden),
            "hidden_paths": list(self.isolation.hidden),
            "guard": self.guard,
            "tests_in_separate_process": True,
        }

    def run(self, program: str) -> SandboxResult:
        """Run one program; never raises for anything the program does.

        The status says how the program itself ended (its own asserts decide
        "passed"), so a program written against this harness can fake it: judge
        untrusted code with `check`, which runs the tests in another process.
        """
        scratch = Path(tempfile.mkdtemp(prefix="promptopt-sandbox-"))
        captured = Path(tempfile.mkdtemp(prefix="promptopt-sandbox-out-"))
        try:
            (scratch / "program.py").write_text(program, encoding="utf-8", errors="replace")
            if self.user is not None:
                os.chown(scratch, self.user, self.user)
                os.chown(scratch / "program.py", self.user, self.user)
            return self._run(scratch, captured)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(captured, ignore_errors=True)

    def check(
        self, program: str, tests: str, *, hidden: Sequence[str | os.PathLike[str]] = ()
    ) -> SandboxResult:
        """Run `program` (untrusted: it should only define functions) and `tests`
        (trusted) in two sandboxed processes; never raises for anything the
        program does.

        In `tests`, `sandbox_function(name)` is a stand-in for the program's
        function `name`: each call is sent to the program's process and only its
        return value comes back, as plain data (`sandbox_wire`); an exception
        the function raised comes back as one of the same name. `sandbox_report`
        works as in `run`. The status is "passed" when the tests ran to their
        end, which only the tests' process can say (see "The verdict" in the
        module doc). `hidden` are more paths the program may not see (the files
        the tests come from); the tests' own directories are hidden from it too.
        """
        program_dir = Path(tempfile.mkdtemp(prefix="promptopt-sandbox-"))
        tests_dir = Path(tempfile.mkdtemp(prefix="promptopt-sandbox-tests-"))
        captured = Path(tempfile.mkdtemp(prefix="promptopt-sandbox-out-"))
        try:
            (program_dir / "program.py").write_text(program, encoding="utf-8", errors="replace")
            if self.user is not None:
                for path in (program_dir, program_dir / "program.py", tests_dir):
                    os.chown(path, self.user, self.user)
            unseen = [os.path.realpath(p) for p in hidden if os.path.exists(p)]
            unseen = [p for p in unseen if "\n" not in p]
            return self._check(program_dir, tests_dir, captured, tests, unseen)
        finally:
            for path in (program_dir, tests_dir, captured):
                shutil.rmtree(path, ignore_errors=True)

    def _spawn(
        self,
        scratch: Path,
        code: str,
        args: list[str],
        pass_fds: tuple[int, ...],
        out: IO[bytes],
        err: IO[bytes],
        unseen: Sequence[str] = (),
    ) -> subprocess.Popen:  # type: ignore[type-arg]
        """One sandboxed interpreter running `code` with argv [scratch, *args]."""
        interpreter = [self.python, "-I", "-B", "-c", code, str(scratch), *args]
        command = self.isolation.command(str(scratch), interpreter, tuple(unseen))
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
        }
        privileges: dict[str, Any] = {}
        if self.user is not None:
            privileges = {"user": self.user, "group": self.user, "extra_groups": []}
        try:
            return subprocess.Popen(
                command,
                cwd=scratch,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                pass_fds=pass_fds,
                preexec_fn=_limiter(self.limits),
                **privileges,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ConfigError(f"cannot start the code sandbox: {exc}") from exc

    def _run(self, scratch: Path, captured: Path) -> SandboxResult:
        nonce = f"{_REPORT_TAG}{secrets.token_hex(8)}:"
        token = secrets.token_hex(16).encode()
        verdict_read, verdict_write = os.pipe()
        token_read, token_write = os.pipe()
        os.write(token_write, token)
        os.close(token_write)
        args = [nonce, "1" if self.guard else "0", str(verdict_write), str(token_read)]
        started = time.perf_counter()
        timed_out = False
        try:
            with open(captured / "out", "wb") as out, open(captured / "err", "wb") as err:
                try:
                    proc = self._spawn(
                        scratch, _HARNESS, args, (verdict_write, token_read), out, err
                    )
                finally:
                    os.close(verdict_write)
                    os.close(token_read)
                try:
                    proc.wait(timeout=self.limits.timeout_s)
                except subprocess.TimeoutExpired:
                    timed_out = True
                _kill_group(proc)
            verdict = _drain(verdict_read)
        finally:
            os.close(verdict_read)
        seconds = time.perf_counter() - started
        full = any(
            (captured / name).stat().st_size >= self.limits.max_file_bytes
            for name in ("out", "err")
        )
        stdout = _read(captured / "out")
        stderr = _read(captured / "err")
        return _outcome(
            nonce,
            token,
            verdict,
            stdout,
            stderr,
            proc.returncode,
            timed_out,
            full,
            seconds,
            self.limits,
        )

    def _check(
        self, program_dir: Path, tests_dir: Path, captured: Path, tests: str, unseen: list[str]
    ) -> SandboxResult:
        nonce = f"{_REPORT_TAG}{secrets.token_hex(8)}:"
        token = secrets.token_hex(16).encode()
        calls_read, calls_write = os.pipe()
        answers_read, answers_write = os.pipe()
        verdict_read, verdict_write = os.pipe()
        input_read, input_write = os.pipe()
        guarded = "1" if self.guard else "0"
        feeder = threading.Thread(
            target=_feed,
            args=(input_write, token + b"\n" + tests.encode("utf-8", "replace")),
            daemon=True,
        )
        procs: list[subprocess.Popen] = []  # type: ignore[type-arg]
        timed_out, program_ended = False, False
        started = time.perf_counter()
        files = {name: captured / name for name in ("out", "err", "tests-out", "tests-err")}
        try:
            with contextlib.ExitStack() as stack:
                handles = {name: stack.enter_context(open(p, "wb")) for name, p in files.items()}
                try:
                    # The program may not see the tests' directories nor the files
                    # the tests come from; the tests' process is hidden the same way.
                    program_unseen = [*unseen, str(tests_dir), str(captured)]
                    procs.append(
                        self._spawn(
                            program_dir,
                            _SERVER,
                            [guarded, str(calls_read), str(answers_write), *program_unseen],
                            (calls_read, answers_write),
                            handles["out"],
                            handles["err"],
                            program_unseen,
                        )
                    )
                    tester_fds = (verdict_write, input_read, calls_write, answers_read)
                    procs.append(
                        self._spawn(
                            tests_dir,
                            _TESTER,
                            [nonce, guarded, *map(str, tester_fds), *unseen],
                            tester_fds,
                            handles["tests-out"],
                            handles["tests-err"],
                            unseen,
                        )
                    )
                finally:
                    for fd in (calls_read, calls_write, answers_read, answers_write):
                        os.close(fd)
                    os.close(verdict_write)
                    os.close(input_read)
                feeder.start()
                program, tester = procs
                deadline = started + self.limits.timeout_s
                try:
                    tester.wait(timeout=max(0.0, deadline - time.perf_counter()))
                except subprocess.TimeoutExpired:
                    timed_out = True
                else:  # the program's process ends when the tests close its pipe
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        program.wait(timeout=max(0.0, min(1.0, deadline - time.perf_counter())))
                program_ended = program.poll() is not None
        finally:
            for proc in procs:
                _kill_group(proc)
            if not feeder.is_alive() and not feeder.ident:
                os.close(input_write)  # never started: nothing else closes it
            feeder.join(timeout=5)
            verdict = _drain(verdict_read)
            os.close(verdict_read)
        seconds = time.perf_counter() - started
        full = any(p.stat().st_size >= self.limits.max_file_bytes for p in files.values())
        program, tester = procs
        return _check_outcome(
            _Ends(
                nonce=nonce,
                token=token,
                verdict=verdict,
                stdout=_read(files["out"]),
                stderr=_read(files["err"]),
                tests_stdout=_read(files["tests-out"]),
                tests_stderr=_read(files["tests-err"]),
                returncode=program.returncode,
                tests_returncode=tester.returncode,
                program_ended=program_ended,
                timed_out=timed_out,
                output_full=full,
                seconds=seconds,
            ),
            self.limits,
        )


def _feed(fd: int, data: bytes) -> None:
    """Write the tests' input and close the pipe (a thread: it may exceed the pipe's buffer)."""
    try:
        sandbox_wire.write_all(fd, data)
    except OSError:
        pass  # the tests' process is gone; its fate decides
    finally:
        os.close(fd)


def _limiter(limits: SandboxLimits):  # type: ignore[no-untyped-def]
    """The preexec_fn: resource limits, set in the child between fork and exec."""
    memory = limits.memory_mb * 1024 * 1024
    values = {
        resource.RLIMIT_AS: memory,
        resource.RLIMIT_CPU: limits.cpu_s,
        resource.RLIMIT_FSIZE: limits.max_file_bytes,
        resource.RLIMIT_NPROC: limits.max_processes,
        resource.RLIMIT_NOFILE: limits.max_open_files,
        resource.RLIMIT_CORE: 0,
    }

    def apply() -> None:
        for kind, value in values.items():
            resource.setrlimit(kind, (value, value))

    return apply


def _kill_group(proc: subprocess.Popen, grace_s: float = 2.0) -> None:  # type: ignore[type-arg]
    """Kill the program and everything it started, and give the system a moment
    to reap them, so the next program starts under an empty process limit."""
    pid = proc.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)


def _read(path: Path) -> str:
    with open(path, "rb") as handle:
        return handle.read(_MAX_CAPTURE * 4).decode("utf-8", "replace")


def _drain(fd: int, limit: int = 65_536) -> bytes:
    """What is in the verdict pipe now. Every process that held its write end is
    gone by the time this runs, but it never waits, to be safe."""
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        try:
            chunk = os.read(fd, limit - size)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _verdict(
    data: bytes, token: bytes, returncode: int | None, keys: frozenset[str] = _VERDICT_KEYS
) -> dict[str, Any] | None:
    """The harness's outcome record, or None when the pipe holds anything else:
    exactly one line, the run's token then JSON with exactly the harness's keys,
    from a process that then exited with 0. More than one line means the program
    wrote there too, so none of them counts."""
    if returncode != 0 or data.count(b"\n") != 1 or not data.endswith(b"\n"):
        return None
    if not data.startswith(token):
        return None
    try:
        record = json.loads(data[len(token) :])
    except ValueError:
        return None
    if not isinstance(record, dict) or set(record) != keys:
        return None
    if "gone" in keys and not isinstance(record["gone"], bool):
        return None
    status, message, violations = record["status"], record["message"], record["violations"]
    if status not in _HARNESS_STATUSES or not isinstance(message, str):
        return None
    if not isinstance(violations, list) or not all(isinstance(v, str) for v in violations):
        return None
    return record


def _signal_of(returncode: int | None) -> int | None:
    """The signal that killed the interpreter: negative for a direct child,
    128 + N when the mount script's shell reports it."""
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    return returncode - 128 if returncode > 128 else None


def _outcome(
    nonce: str,
    token: bytes,
    verdict: bytes,
    stdout: str,
    stderr: str,
    returncode: int | None,
    timed_out: bool,
    output_full: bool,
    seconds: float,
    limits: SandboxLimits,
) -> SandboxResult:
    """The status comes from what the verdict pipe held (`_verdict`) and the
    process's fate only. Lines on stdout tagged with `nonce` are reports, which
    the program can forge and which decide nothing."""
    final = _verdict(verdict, token, returncode)
    reports, plain = _reports(stdout, nonce)
    result = SandboxResult(
        status="crashed",
        reports=reports,
        returncode=returncode,
        seconds=round(seconds, 3),
        stdout=plain,
        stderr=stderr.strip()[-_MAX_CAPTURE:],
    )
    killed_by = _signal_of(returncode)
    if timed_out:
        result.status = "timeout"
        result.message = f"killed after the {limits.timeout_s:g} s time limit"
    elif output_full or (final is None and killed_by == signal.SIGXFSZ):
        result.status = "output_limit"
        result.message = f"wrote more than the {limits.max_file_bytes} byte file-size limit"
    elif final is not None:
        result.status = str(final["status"])
        result.message = str(final["message"])
        result.violations = list(final["violations"])
    elif killed_by in (signal.SIGXCPU, signal.SIGKILL):
        result.status = "timeout"
        result.message = f"killed at the {limits.cpu_s} s CPU limit"
    elif "MemoryError" in stderr:
        result.status = "memory"
        result.message = "MemoryError: the memory limit was reached"
    else:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        result.message = f"exited with code {returncode} without a report" + (
            f": {last[:200]}" if last else ""
        )
        if verdict:
            result.message += " (and an invalid verdict record)"
    return result


def _reports(stdout: str, nonce: str) -> tuple[list[dict[str, Any]], str]:
    """The report lines tagged with `nonce`, and the rest of stdout."""
    reports: list[dict[str, Any]] = []
    plain = []
    for line in stdout.split("\n"):
        if line.startswith(nonce):
            try:
                data = json.loads(line[len(nonce) :])
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and data.pop("kind", None) == "report":
                reports.append(data)
        else:
            plain.append(line)
    return reports, "\n".join(plain).strip()[:_MAX_CAPTURE]


@dataclass(frozen=True)
class _Ends:
    """How the two processes of one `Sandbox.check` ended."""

    nonce: str
    token: bytes
    verdict: bytes
    """What the tests' verdict pipe held."""
    stdout: str
    stderr: str
    tests_stdout: str
    tests_stderr: str
    returncode: int | None
    """The program's process."""
    tests_returncode: int | None
    program_ended: bool
    """The program's process had ended by itself before it was killed."""
    timed_out: bool
    output_full: bool
    seconds: float


def _check_outcome(ends: _Ends, limits: SandboxLimits) -> SandboxResult:
    """The status of a `check`: the tests' record on their verdict pipe (`_verdict`)
    and how the two processes ended; nothing the program wrote anywhere. Reports
    come from the tests' stdout only; stdout and stderr are the program's (the
    tests' stderr is appended when it has anything)."""
    final = _verdict(ends.verdict, ends.token, ends.tests_returncode, _CHECK_KEYS)
    reports, _ = _reports(ends.tests_stdout, ends.nonce)
    _, stdout = _reports(ends.stdout, ends.nonce)
    stderr = ends.stderr.strip()
    if ends.tests_stderr.strip():
        stderr += "\n[tests] " + ends.tests_stderr.strip()
    result = SandboxResult(
        status="crashed",
        reports=reports,
        returncode=ends.returncode,
        seconds=round(ends.seconds, 3),
        stdout=stdout,
        stderr=stderr.strip()[-_MAX_CAPTURE:],
    )
    program_signal = _signal_of(ends.returncode) if ends.program_ended else None
    tests_signal = _signal_of(ends.tests_returncode)
    cpu_limit = f"killed at the {limits.cpu_s} s CPU limit"
    if ends.timed_out:
        result.status = "timeout"
        result.message = f"killed after the {limits.timeout_s:g} s time limit"
    elif (
        ends.output_full
        or program_signal == signal.SIGXFSZ
        or (final is None and tests_signal == signal.SIGXFSZ)
    ):
        result.status = "output_limit"
        result.message = f"wrote more than the {limits.max_file_bytes} byte file-size limit"
    elif final is None:  # the tests' own process failed: never a pass
        if tests_signal in (signal.SIGXCPU, signal.SIGKILL):
            result.status, result.message = "timeout", f"the tests were {cpu_limit}"
        elif "MemoryError" in ends.tests_stderr:
            result.status = "memory"
            result.message = "MemoryError: the tests reached the memory limit"
        else:
            last = ends.tests_stderr.strip().splitlines()[-1:] or [""]
            result.message = (
                f"the tests' process exited with code {ends.tests_returncode} without a verdict"
                + (f": {last[0][:200]}" if last[0] else "")
            )
    elif final["gone"]:  # the program's process ended or stopped answering first
        if program_signal in (signal.SIGXCPU, signal.SIGKILL):
            result.status, result.message = "timeout", cpu_limit
        elif "MemoryError" in ends.stderr:
            result.status = "memory"
            result.message = "MemoryError: the memory limit was reached"
        else:
            last = ends.stderr.strip().splitlines()[-1:] or [""]
            how = (
                f"ended with code {ends.returncode}" if ends.program_ended else "stopped answering"
            )
            result.message = f"the program's process {how} before the tests finished" + (
                f": {last[0][:200]}" if last[0] else ""
            )
    else:
        result.status = str(final["status"])
        result.message = str(final["message"])
        result.violations = list(final["violations"])
    return result


_PROBES: dict[tuple[Any, ...], Any] = {}


def _interpreter(user: int | None) -> str | None:
    """A Python the sandbox user can run: ours, else the system's python3."""
    if user is None:
        return sys.executable
    key = ("python", user)
    if key not in _PROBES:
        found = None
        for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
            if candidate and Path(candidate).is_file() and _probe([candidate], user):
                found = candidate
                break
        _PROBES[key] = found
    return _PROBES[key]


# Run inside the new namespaces, before the interpreter ($1 scratch directory, $2
# Python directories to keep visible, $3 paths to hide, $4 paths to hide after the
# Python directories are back (this run's: the tests' files), newline-separated;
# then the command). Keep the scratch directory writable; cover each hidden directory with
# an empty tmpfs and each hidden file with /dev/null, after setting the Python
# directories inside them aside in the scratch directory and moving them back on
# top; make every mount read-only; then run the command (as a child, so that a
# signal that kills it shows in the exit status as 128 + N).
_MOUNT_SCRIPT = """set -ef
scratch="$1"; keep="$2"; hide="$3"; unseen="$4"; shift 4
IFS='
'
mount --bind "$scratch" "$scratch"
n=0
for path in $keep; do
  n=$((n + 1)); mkdir "$scratch/.keep$n"; mount --bind "$path" "$scratch/.keep$n"
done
for path in $hide; do
  if [ -d "$path" ]; then mount -t tmpfs -o size=1m,mode=755 promptopt-hidden "$path"
  elif [ -e "$path" ]; then mount --bind /dev/null "$path"
  fi
done
n=0
for path in $keep; do
  n=$((n + 1)); mkdir -p "$path"; mount --move "$scratch/.keep$n" "$path"
  rmdir "$scratch/.keep$n"
done
for path in $unseen; do
  if [ -d "$path" ]; then mount -t tmpfs -o size=1m,mode=755 promptopt-hidden "$path"
  elif [ -e "$path" ]; then mount --bind /dev/null "$path"
  fi
done
for m in $(awk '{print $2}' /proc/self/mounts | sort -u); do
  [ "$m" = "$scratch" ] || mount -o remount,bind,ro "$m" 2>/dev/null || true
done
"$@"
"""
# Succeeds only where a write outside the scratch directory fails with EROFS.
_READ_ONLY_CHECK = """
import errno, os, sys
try:
    open(os.path.join(os.path.dirname(os.getcwd()), ".promptopt-probe"), "w").close()
except OSError as exc:
    sys.exit(0 if exc.errno == errno.EROFS else 1)
sys.exit(1)
"""
# The directories an interpreter needs: its prefixes and its executable's directory.
_PYTHON_DIRS = """
import json, os, sys
dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
dirs.add(os.path.dirname(os.path.realpath(sys.executable)))
print(json.dumps(sorted(os.path.realpath(d) for d in dirs if d)))
"""
# Never hidden, nor anything inside them (the system the interpreter runs on);
# only /etc's account files are.
_SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run")
_SYSTEM_DIRS += ("/sbin", "/sys", "/usr")
_ACCOUNT_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")


@dataclass(frozen=True)
class _Isolation:
    """How the interpreter is started: `prefix` runs it in new namespaces (none:
    directly); with `read_only` the prefix ends in the mount script, which takes
    the scratch directory, `keep` and `hidden` before `launcher` and the command."""

    prefix: tuple[str, ...] = ()
    read_only: bool = False
    hidden: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    launcher: tuple[str, ...] = ()

    def command(
        self, scratch: str, interpreter: list[str], unseen: tuple[str, ...] = ()
    ) -> list[str]:
        """The command line; `unseen` are more paths to hide for this run only
        (hidden last, so even inside the interpreter's directories)."""
        if not self.read_only:
            return [*self.prefix, *interpreter]
        lists = ["\n".join(self.keep), "\n".join(self.hidden), "\n".join(unseen)]
        return [*self.prefix, scratch, *lists, *self.launcher, *interpreter]


def _isolation(user: int | None, python: str) -> _Isolation:
    """The strongest isolation `unshare` allows here, tried in order: network, mount
    and PID namespaces with the user's files hidden and capabilities dropped; a
    read-only mount namespace; an empty network namespace alone; nothing."""
    unshare, sh, setpriv = shutil.which("unshare"), shutil.which("sh"), shutil.which("setpriv")
    if unshare is None:
        return _Isolation()
    base = (unshare, "--net")
    if user is not None or os.geteuid() != 0:
        base += ("--map-root-user",)  # unprivileged: a user namespace owns the new ones
    hidden, keep = _hiding_plan(_python_dirs(python, user))
    key = ("isolation", base, user, python, hidden, keep)
    if key not in _PROBES:
        candidates = []
        if sh is not None:
            script = (sh, "-c", _MOUNT_SCRIPT, "sh")
            if setpriv is not None and hidden:
                no_caps = (setpriv, "--inh-caps=-all", "--bounding-set=-all", "--")
                pid = ("--pid", "--fork", "--mount-proc")
                candidates.append(
                    _Isolation((*base, "--mount", *pid, *script), True, hidden, keep, no_caps)
                )
            candidates.append(_Isolation((*base, "--mount", *script), True))
        found = _Isolation()
        for candidate in candidates:
            scratch = Path(tempfile.mkdtemp(prefix="promptopt-sandbox-probe-"))
            try:
                if user is not None:
                    os.chown(scratch, user, user)
                command = candidate.command(str(scratch), [python])
                ok = _probe(command, user, _READ_ONLY_CHECK, scratch)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            if ok:
                found = candidate
                break
        if not found.prefix and _probe([*base, python], user):
            found = _Isolation(base)
        _PROBES[key] = found
    return _PROBES[key]


def _python_dirs(python: str, user: int | None) -> list[str]:
    """`_PYTHON_DIRS` of the sandbox's interpreter, run as the sandbox user."""
    key = ("python_dirs", python, user)
    if key not in _PROBES:
        extra: dict[str, Any] = {}
        if user is not None:
            extra = {"user": user, "group": user, "extra_groups": []}
        dirs: list[str] = []
        with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
            done = subprocess.run(
                [python, "-I", "-c", _PYTHON_DIRS],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=20,
                check=True,
                cwd="/",
                **extra,
            )
            dirs = [str(d) for d in json.loads(done.stdout)]
        _PROBES[key] = dirs
    return list(_PROBES[key])


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _hiding_plan(python_dirs: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What to hide from the program: /home, /root, the caller's home, working
    directory, promptopt's cache and data directories, and /etc's account files;
    and which of the interpreter's directories lie inside them (shown again on
    top). Never the system, the temporary directory, or the interpreter itself."""
    wanted = ["/home", "/root", *_ACCOUNT_FILES, str(paths.cache_root())]
    data = paths.data_dir()
    if data is not None:
        wanted.append(str(data))
    with contextlib.suppress(OSError, RuntimeError, KeyError):
        wanted.append(str(Path.home()))
    with contextlib.suppress(OSError):
        wanted.append(os.getcwd())
    temporary = os.path.realpath(tempfile.gettempdir())
    hidden: list[str] = []
    for path in sorted({os.path.realpath(p) for p in wanted}):  # parents before children
        if "\n" in path or not os.path.exists(path) or path in python_dirs:
            continue
        if _within(temporary, path) or (
            path not in _ACCOUNT_FILES
            and any(_within(path, d) or _within(d, path) for d in _SYSTEM_DIRS)
        ):
            continue
        if not any(_within(path, h) for h in hidden):
            hidden.append(path)
    keep: list[str] = []
    for d in sorted(python_dirs):
        if any(_within(d, h) for h in hidden) and not any(_within(d, k) for k in keep):
            keep.append(d)
    return tuple(hidden), tuple(keep)


def _probe(
    command: list[str], user: int | None, code: str = "pass", cwd: Path | None = None
) -> bool:
    extra: dict[str, Any] = {}
    if user is not None:
        extra = {"user": user, "group": user, "extra_groups": []}
    try:
        done = subprocess.run(
            [*command, "-I", "-c", code],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=20,
            check=False,
            cwd=cwd or "/",
            **extra,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0
