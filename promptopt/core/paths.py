"""Where promptopt reads data and keeps its caches; every location is overridable."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Root for the model-call cache and converted models (PROMPTOPT_CACHE_DIR)."""
    env = os.environ.get("PROMPTOPT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "promptopt"


def data_dir() -> Path | None:
    """Directory holding benchmark data sets (PROMPTOPT_DATA_DIR), if set."""
    env = os.environ.get("PROMPTOPT_DATA_DIR")
    return Path(env).expanduser() if env else None


def _resource_dir(name: str) -> Path:
    """Built-in `tasks/` or `prompts/`: inside a wheel, or at the repository root."""
    packaged = Path(__file__).parent.parent / "_data" / name
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / name


def builtin_tasks_dir() -> Path:
    return _resource_dir("tasks")


def prompts_dir() -> Path:
    return _resource_dir("prompts")


def read_prompt_template(name: str) -> str:
    """A meta-prompt text file from `prompts/`, e.g. 'ape_forward.txt'."""
    return (prompts_dir() / name).read_text(encoding="utf-8")
