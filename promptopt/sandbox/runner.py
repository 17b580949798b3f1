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

The verdict. stdout, argv and the whole process are the program's too, so none
of them decides the status: stdout carries only the `sandbox_report` lines,
which are informational. The harness writes its one outcome record to a pipe of
its own (`pass_fds`), after a per-run token that the parent sends on a second
pipe, read and closed by the harness before the program starts (never in argv,
the environment or a file). The parent takes the record only when that pipe
holds exactly one line, starting with the token, with exactly the harness's
fields, and the process then exited with 0; otherwise the status comes from how
the process ended (`crashed` when nothing else applies). Printing a fake
record, writing one to every descriptor, exiting with 0 or raising afterwards
never passes, and the harness in a forked copy of the process stays silent.

What this cannot stop: the program runs in the harness's interpreter, so code
written against this harness can find the token in the harness's frame and
write the exact record itself, as it can skip its own asserts (a trace function
that jumps over them) or return objects equal to anything. No channel fixes
that: anything the harness does after the program returns, the program can do
first, and a supervising process learns nothing from this one that the program
could not fake (so there is none). Only running the tests outside the
candidate's process would.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.core import paths
from promptopt.core.errors import ConfigError

OPT_IN_FLAG = "--allow-code-execution"
NOBODY = 65534
_REPORT_TAG = "__promptopt_sandbox__"
_MAX_CAPTURE = 64_000

# The first code the sandboxed interpreter runs. It installs the audit-hook
# guard, runs program.py from the scratch directory in a fresh namespace, writes
# one tagged JSON line per report to stdout (informational only), and its one
# outcome record to the verdict pipe (see "The verdict" in the module doc).
_HARNESS = r"""
import gc, json, os, sys
scratch, nonce, guarded = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
verdict_fd, token_fd, harness_pid = int(sys.argv[4]), int(sys.argv[5]), os.getpid()
os.set_inheritable(verdict_fd, False)
os.chdir(scratch)
_write, _dumps, _getpid, _violations = os.write, json.dumps, os.getpid, []


def _emit(kind, data):
    line = "\n" + nonce + _dumps({"kind": kind, **data}, default=repr) + "\n"
    try:
        _write(1, line.encode("utf-8", "replace"))
    except OSError:
        pass


def sandbox_report(**data):
    _emit("report", data)


def _install_guard():
    realpath, isabs, join, fsdecode, sep = (
        os.path.realpath, os.path.isabs, os.path.join, os.fsdecode, os.sep
    )
    getpid = os.getpid
    python = {realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                     sys.base_exec_prefix) if p}
    readable = (scratch, "/proc/%d" % getpid(), "/usr/share/zoneinfo", *sorted(python))
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
# What the harness may write to the verdict pipe (`_verdict` accepts nothing else).
_HARNESS_STATUSES = frozenset({"passed", "failed", "error", "memory", "blocked"})
_VERDICT_KEYS = frozenset({"status", "message", "violations"})


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
        }

    def run(self, program: str) -> SandboxResult:
        """Run one program; never raises for anything the program does."""
        scratch = Path(tempfile.mkdtemp(prefix="promptopt-sandbox-"))
        captured = Path(tempfile.mkdtemp(prefix="promptopt-sandbox-out-"))
        try:
            (scratch / "program.py").write_text(program, encoding="utf-8")
            if self.user is not None:
                os.chown(scratch, self.user, self.user)
                os.chown(scratch / "program.py", self.user, self.user)
            return self._run(scratch, captured)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.rmtree(captured, ignore_errors=True)

    def _run(self, scratch: Path, captured: Path) -> SandboxResult:
        nonce = f"{_REPORT_TAG}{secrets.token_hex(8)}:"
        token = secrets.token_hex(16).encode()
        verdict_read, verdict_write = os.pipe()
        token_read, token_write = os.pipe()
        os.write(token_write, token)
        os.close(token_write)
        harness = [self.python, "-I", "-B", "-c", _HARNESS, str(scratch), nonce]
        harness += ["1" if self.guard else "0", str(verdict_write), str(token_read)]
        command = self.isolation.command(str(scratch), harness)
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
        started = time.perf_counter()
        timed_out = False
        try:
            with open(captured / "out", "wb") as out, open(captured / "err", "wb") as err:
                try:
                    proc = subprocess.Popen(
                        command,
                        cwd=scratch,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        start_new_session=True,
                        pass_fds=(verdict_write, token_read),
                        preexec_fn=_limiter(self.limits),
                        **privileges,
                    )
                except (OSError, subprocess.SubprocessError) as exc:
                    raise ConfigError(f"cannot start the code sandbox: {exc}") from exc
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


def _verdict(data: bytes, token: bytes, returncode: int | None) -> dict[str, Any] | None:
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
    if not isinstance(record, dict) or set(record) != _VERDICT_KEYS:
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
    result = SandboxResult(
        status="crashed",
        reports=reports,
        returncode=returncode,
        seconds=round(seconds, 3),
        stdout="\n".join(plain).strip()[:_MAX_CAPTURE],
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
# Python directories to keep visible, $3 paths to hide, newline-separated; then the
# command). Keep the scratch directory writable; cover each hidden directory with
# an empty tmpfs and each hidden file with /dev/null, after setting the Python
# directories inside them aside in the scratch directory and moving them back on
# top; make every mount read-only; then run the command (as a child, so that a
# signal that kills it shows in the exit status as 128 + N).
_MOUNT_SCRIPT = """set -ef
scratch="$1"; keep="$2"; hide="$3"; shift 3
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

    def command(self, scratch: str, interpreter: list[str]) -> list[str]:
        if not self.read_only:
            return [*self.prefix, *interpreter]
        lists = ["\n".join(self.keep), "\n".join(self.hidden)]
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
