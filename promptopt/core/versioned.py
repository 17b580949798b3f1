"""The format name and version every JSON file promptopt writes for itself carries.

Exports, run results and compare results are read back by later promptopt
versions, and an older promptopt may meet a file a newer one wrote. One check
here makes both cases one line naming the file and the fix, for every format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptopt.core.errors import ConfigError

UPGRADE = "upgrade promptopt (pip install -U promptopt) to read it"


def format_version(path: Path, data: Any, *, name: str, newest: int, what: str, fix: str) -> int:
    """The version of a file of format `name`, after checking it can be read.

    A file without the format name is not one of ours (`what` says what was
    expected, `fix` what to pass instead); a version above `newest` was written
    by a newer promptopt. A file without a version predates versions: 0.
    """
    if not isinstance(data, dict) or data.get("format") != name:
        raise ConfigError(f'{path} is not {what} (no "format": "{name}"): {fix}')
    version = data.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigError(
            f"{path}: format_version must be a whole number, got {version!r}: fix it, or {fix}"
        )
    refuse_newer(path, data, newest)
    return version


def refuse_newer(path: Path, data: dict[str, Any], newest: int) -> None:
    """A file whose format_version is above `newest` was written by a newer promptopt."""
    version = data.get("format_version", 0)
    if isinstance(version, int) and version > newest:
        raise ConfigError(
            f"{path} was written by a newer promptopt (format {version}; this one reads up "
            f"to {newest}): {UPGRADE}"
        )
