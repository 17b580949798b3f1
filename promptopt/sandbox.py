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
  namespace in which every mount but the scratch directory is read-only.
- A guard inside the interpreter (a `sys.addaudithook` hook installed before
  the program runs) refuses writes outside the scratch directory, starting
  processes, sockets that connect or bind, ctypes and raising resource limits,
  and reports each refusal. It is a second line against accidents, not a
  boundary against code written to escape it; the OS layers above are.

`Sandbox.protections()` says which layers are active on this machine.
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

from promptopt.errors import ConfigError

OPT_IN_FLAG = "--allow-code-execution"
NOBODY = 65534
_REPORT_TAG = "__promptopt_sandbox__"
_MAX_CAPTURE = 64_000

# The first code the sandboxed interpreter runs. It installs the audit-hook
# guard, runs program.py from the scratch directory in a fresh namespace, and
# writes one tagged JSON line per report and a final one with the outcome.
_HARNESS = r"""
import gc, json, os, sys
scratch, nonce, guarded = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
os.chdir(scratch)
_write, _violations = os.write, []


def _emit(kind, data):
    line = "\n" + nonce + json.dumps({"kind": kind, **data}, default=repr) + "\n"
    try:
        _write(1, line.encode("utf-8", "replace"))
    except OSError:
        pass


def sandbox_report(**data):
    _emit("report", data)


def _install_guard():
    realpath, isabs, join, fsdecode = os.path.realpath, os.path.isabs, os.path.join, os.fsdecode
    getpid = os.getpid
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

    def inside(path):
        if isinstance(path, int) or path is None:
            return True
        path = fsdecode(path)
        full = realpath(path if isabs(path) else join(os.getcwd(), path))
        return full == scratch or full.startswith(scratch + os.sep) or full == "/dev/null"

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
                if (writes or (flags or 0) & writing_flags) and not inside(path):
                    deny("writing %r outside the working directory" % (path,))
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
_emit("result", {"status": status, "message": message[:500], "violations": _violations})
os._exit(0)
"""


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
        self.prefix, self.read_only = (None, False)
        if isolate:
            self.prefix, self.read_only = _isolation(self.user, self.python)

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
            "no_network": self.prefix is not None,
            "read_only_filesystem": self.read_only,
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
        prefix = self.prefix or []
        if self.read_only:
            prefix = [*prefix, str(scratch)]
        command = [
            *prefix,
            self.python,
            "-I",
            "-B",
            "-c",
            _HARNESS,
            str(scratch),
            nonce,
            "1" if self.guard else "0",
        ]
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
                    preexec_fn=_limiter(self.limits),
                    **privileges,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise ConfigError(f"cannot start the code sandbox: {exc}") from exc
            try:
                proc.wait(timeout=self.limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_group(proc)
        seconds = time.perf_counter() - started
        full = any(
            (captured / name).stat().st_size >= self.limits.max_file_bytes
            for name in ("out", "err")
        )
        stdout = _read(captured / "out")
        stderr = _read(captured / "err")
        return _outcome(
            nonce, stdout, stderr, proc.returncode, timed_out, full, seconds, self.limits
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


def _outcome(
    nonce: str,
    stdout: str,
    stderr: str,
    returncode: int,
    timed_out: bool,
    output_full: bool,
    seconds: float,
    limits: SandboxLimits,
) -> SandboxResult:
    reports: list[dict[str, Any]] = []
    final: dict[str, Any] | None = None
    plain = []
    for line in stdout.split("\n"):
        if line.startswith(nonce):
            try:
                data = json.loads(line[len(nonce) :])
            except json.JSONDecodeError:
                continue
            if data.pop("kind", None) == "result":
                final = data
            else:
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
    if final is not None and not timed_out:
        result.status = str(final.get("status", "crashed"))
        result.message = str(final.get("message", ""))
        result.violations = list(final.get("violations", []))
        return result
    killed_by = -returncode if returncode is not None and returncode < 0 else None
    if timed_out:
        result.status = "timeout"
        result.message = f"killed after the {limits.timeout_s:g} s time limit"
    elif killed_by in (signal.SIGXCPU, signal.SIGKILL):
        result.status = "timeout"
        result.message = f"killed at the {limits.cpu_s} s CPU limit"
    elif killed_by == signal.SIGXFSZ or output_full:
        result.status = "output_limit"
        result.message = f"wrote more than the {limits.max_file_bytes} byte file-size limit"
    elif "MemoryError" in stderr:
        result.status = "memory"
        result.message = "MemoryError: the memory limit was reached"
    else:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        result.message = f"exited with code {returncode} without a report" + (
            f": {last[:200]}" if last else ""
        )
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


# Run inside the new namespaces, before the interpreter: keep the scratch directory
# writable and make every other mount read-only, then exec the interpreter.
_READ_ONLY_SCRIPT = """set -e
scratch="$1"; shift
mount --bind "$scratch" "$scratch"
for m in $(awk '{print $2}' /proc/self/mounts | sort -u); do
  [ "$m" = "$scratch" ] || mount -o remount,bind,ro "$m" 2>/dev/null || true
done
exec "$@"
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


def _isolation(user: int | None, python: str) -> tuple[list[str] | None, bool]:
    """The command prefix for an empty network namespace and a read-only file
    system but for the scratch directory, where `unshare` allows; and whether
    the file system part works here."""
    unshare, sh = shutil.which("unshare"), shutil.which("sh")
    if unshare is None:
        return None, False
    base = [unshare, "--net"]
    if user is not None or os.geteuid() != 0:
        base.append("--map-root-user")  # unprivileged: a user namespace owns the new ones
    key = ("isolation", tuple(base), user, python)
    if key not in _PROBES:
        found: tuple[list[str] | None, bool] = (None, False)
        if sh is not None:
            read_only = [*base, "--mount", sh, "-c", _READ_ONLY_SCRIPT, "sh"]
            scratch = Path(tempfile.mkdtemp(prefix="promptopt-sandbox-probe-"))
            try:
                if user is not None:
                    os.chown(scratch, user, user)
                ok = _probe([*read_only, str(scratch), python], user, _READ_ONLY_CHECK, scratch)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            if ok:
                found = (read_only, True)
        if found[0] is None and _probe([*base, python], user):
            found = (base, False)
        _PROBES[key] = found
    return _PROBES[key]


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
