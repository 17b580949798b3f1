"""The user's files, read and written with one-line errors instead of tracebacks.

Reading: a file that is not UTF-8 (a data set saved as Latin-1, a half-copied
export) raised UnicodeDecodeError out of whichever loader met it first.
`read_utf8` says which file, which byte and which line, and how to fix it.

Writing: an `--out` or `--run-dir` nobody may write was found only when the
result was written, after the whole search had run. `require_writable` refuses
it up front, before any model is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from promptopt.core.errors import ConfigError, PromptoptError

UTF8_FIX = "save it as UTF-8 (e.g. iconv -f latin1 -t utf-8 FILE > NEW)"


def read_utf8(
    path: Path,
    what: str,
    fix: str = UTF8_FIX,
    error: type[PromptoptError] = ConfigError,
) -> str:
    """The text of `path`. A file that is not UTF-8 is an `error` naming `what` it
    is, the first bad byte and its line, and the `fix`; one that cannot be read at
    all (a directory, no permission) is an `error` too."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(
            f"cannot read {what} {path} ({exc.strerror or exc}): check the path and its permissions"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): {fix}"
        ) from None


def require_writable(path: Path, option: str, *, directory: bool = False) -> None:
    """Refuse an output path that cannot be written, before any work is done for it.

    `path` need not exist: its nearest existing ancestor must be a directory this
    process may write into (parents are created later). An existing `path` must be
    a directory when `directory`, and a writable file otherwise.
    """
    where = f"{option} {path}"
    if path.exists():
        if directory and not path.is_dir():
            raise ConfigError(f"{where} is a file, not a directory: pass a folder path")
        if not directory and path.is_dir():
            raise ConfigError(f"{where} is a directory: give a file name")
        if not os.access(path, os.W_OK | os.X_OK if directory else os.W_OK):
            raise ConfigError(
                f"{where} is not writable: choose another {option} or fix its permissions"
            )
        return
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(
            f"{where} cannot be created: {ancestor} is a file, not a directory: "
            f"choose another {option}"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{where} cannot be created: no permission to write in {ancestor}: "
            f"choose another {option} or make {ancestor} writable"
        )
