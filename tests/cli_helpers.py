"""Run the `promptopt` CLI in tests the way a user does, and read back what it wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from promptopt.cli import app

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def search_via_cli(tmp_path: Path, name: str, *args: str) -> tuple[dict[str, Any], Path]:
    """`promptopt search ARGS` must succeed; returns its export (NAME.json) and run dir."""
    out, run_dir = tmp_path / f"{name}.json", tmp_path / name
    result = invoke("search", *args, "--out", str(out), "--run-dir", str(run_dir))
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text()), run_dir


def eval_json(prompt: Path, *args: str) -> dict[str, Any]:
    """`promptopt eval --prompt PROMPT --json ARGS` must succeed; returns its report."""
    result = invoke("eval", "--prompt", str(prompt), "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
