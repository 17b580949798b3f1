"""How a sandboxed run ended, read from what its processes left: the verdict pipe,
the exit status, the captured output and the clock. The verdict rules are in
`sandbox.runner`'s module doc ("The verdict").
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from typing import Any

from promptopt.sandbox.process import MAX_CAPTURE, SandboxLimits

# What the harness may write to the verdict pipe (`_verdict` accepts nothing else).
_HARNESS_STATUSES = frozenset({"passed", "failed", "error", "memory", "blocked"})
_VERDICT_KEYS = frozenset({"status", "message", "violations"})
_CHECK_KEYS = _VERDICT_KEYS | {"gone"}


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


def run_outcome(
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
        stderr=stderr.strip()[-MAX_CAPTURE:],
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
    return reports, "\n".join(plain).strip()[:MAX_CAPTURE]


@dataclass(frozen=True)
class CheckEnds:
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


def check_outcome(ends: CheckEnds, limits: SandboxLimits) -> SandboxResult:
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
        stderr=stderr.strip()[-MAX_CAPTURE:],
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
