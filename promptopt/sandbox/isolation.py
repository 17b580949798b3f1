"""The namespaces and the mount plan a sandboxed interpreter starts in, chosen once
per `Sandbox` by probing what this machine allows (`unshare`, `setpriv`), and
the interpreter the sandbox user may run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.core import paths

_PROBES: dict[tuple[Any, ...], Any] = {}


def sandbox_interpreter(user: int | None) -> str | None:
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
class Isolation:
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


def strongest_isolation(user: int | None, python: str) -> Isolation:
    """The strongest isolation `unshare` allows here, tried in order: network, mount
    and PID namespaces with the user's files hidden and capabilities dropped; a
    read-only mount namespace; an empty network namespace alone; nothing."""
    unshare, sh, setpriv = shutil.which("unshare"), shutil.which("sh"), shutil.which("setpriv")
    if unshare is None:
        return Isolation()
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
                    Isolation((*base, "--mount", *pid, *script), True, hidden, keep, no_caps)
                )
            candidates.append(Isolation((*base, "--mount", *script), True))
        found = Isolation()
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
            found = Isolation(base)
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
