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
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from promptopt.core.errors import ConfigError
from promptopt.sandbox.harness import HARNESS, SERVER, TESTER
from promptopt.sandbox.isolation import Isolation, sandbox_interpreter, strongest_isolation
from promptopt.sandbox.outcome import CheckEnds, SandboxResult, check_outcome, run_outcome
from promptopt.sandbox.process import (
    SandboxLimits,
    _feed,
    _kill_group,
    _limiter,
    _read,
    drain_verdict,
)

__all__ = ["NOBODY", "OPT_IN_FLAG", "Sandbox", "SandboxLimits", "SandboxResult", "require_opt_in"]

OPT_IN_FLAG = "--allow-code-execution"
NOBODY = 65534
_REPORT_TAG = "__promptopt_sandbox__"


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
        self.python = sandbox_interpreter(self.user)
        if self.python is None:  # no interpreter the unprivileged user may run
            self.user, self.python = None, sys.executable
        self.isolation = Isolation()
        if isolate:
            self.isolation = strongest_isolation(self.user, self.python)

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
                        scratch, HARNESS, args, (verdict_write, token_read), out, err
                    )
                finally:
                    os.close(verdict_write)
                    os.close(token_read)
                try:
                    proc.wait(timeout=self.limits.timeout_s)
                except subprocess.TimeoutExpired:
                    timed_out = True
                _kill_group(proc)
            verdict = drain_verdict(verdict_read)
        finally:
            os.close(verdict_read)
        seconds = time.perf_counter() - started
        full = any(
            (captured / name).stat().st_size >= self.limits.max_file_bytes
            for name in ("out", "err")
        )
        stdout = _read(captured / "out")
        stderr = _read(captured / "err")
        return run_outcome(
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
                            SERVER,
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
                            TESTER,
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
            verdict = drain_verdict(verdict_read)
            os.close(verdict_read)
        seconds = time.perf_counter() - started
        full = any(p.stat().st_size >= self.limits.max_file_bytes for p in files.values())
        program, tester = procs
        return check_outcome(
            CheckEnds(
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
