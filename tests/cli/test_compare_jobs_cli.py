"""`promptopt compare --jobs/--ray` on the command line: one line per cell, and a clear
error when Ray is missing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptopt.llm.backend import register_backend, unregister_backend
from tests.cli_helpers import invoke
from tests.plugin_backend import ParrotBackend

pytestmark = pytest.mark.usefixtures("data_dir", "isolated_cache")
ARGS = [
    "compare", "--task", "antonyms", "--strategies", "ape", "--seeds", "2", "--budget", "30",
    "--model", "parrot:plain", "--proposer", "parrot:upper", "--dev-size", "5",
    "--test-size", "6", "--no-report", "--no-cache",
]  # fmt: skip


@pytest.fixture(autouse=True)
def parrot() -> Iterator[None]:
    register_backend(ParrotBackend)
    yield
    unregister_backend("parrot")


def test_jobs_prints_one_line_per_cell_start_and_finish(tmp_path: Path) -> None:
    result = invoke(*ARGS, "--out-dir", str(tmp_path / "cmp"), "--jobs", "2")
    assert result.exit_code == 0, result.output
    for cell in ("ape-seed0", "ape-seed1"):
        assert f"start {cell}" in result.output and f"done {cell}" in result.output
    assert (tmp_path / "cmp" / "compare.json").is_file()


def test_ray_without_ray_installed_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    result = invoke(*ARGS, "--out-dir", str(tmp_path / "cmp"), "--ray")
    assert result.exit_code == 2, result.output
    assert "pip install 'promptopt[ray]'" in result.output


def test_jobs_below_one_is_refused(tmp_path: Path) -> None:
    result = invoke(*ARGS, "--out-dir", str(tmp_path / "cmp"), "--jobs", "0")
    assert result.exit_code == 2 and "--jobs must be at least 1, got 0" in result.output


@pytest.mark.parametrize("flag", ["--model-option", "--proposer-option"])
def test_compare_refuses_an_option_the_backend_lacks_before_any_run(
    tmp_path: Path, flag: str
) -> None:
    out = ["--out-dir", str(tmp_path / "cmp")]
    bad = invoke(*ARGS, *out, flag, "bogus=1")
    assert bad.exit_code == 2
    assert "has no option 'bogus'" in bad.output and not (tmp_path / "cmp").exists()
