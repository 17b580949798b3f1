"""Starting and ending one sandboxed process: its resource limits, feeding its
input pipe, killing its process group, reading what it wrote.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from promptopt.sandbox import wire as sandbox_wire

MAX_CAPTURE = 64_000
"""Characters of a program's stdout or stderr kept in its result."""


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
        return handle.read(MAX_CAPTURE * 4).decode("utf-8", "replace")


def drain_verdict(fd: int, limit: int = 65_536) -> bytes:
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
