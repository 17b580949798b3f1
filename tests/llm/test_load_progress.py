"""Off a terminal, model loading writes one line per phase and no progress bars."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers.utils import logging as hf_logging

from promptopt.llm import load_progress
from promptopt.llm.load_progress import GGUF_MODULE, loading_phase, progress_bars_off


def test_bars_are_off_inside_and_restored_after() -> None:
    gguf = importlib.import_module(GGUF_MODULE)
    before_tqdm, before_on = gguf.tqdm, hf_logging.is_progress_bar_enabled()
    with progress_bars_off():
        assert not hf_logging.is_progress_bar_enabled()
        assert gguf.tqdm is not before_tqdm
    assert gguf.tqdm is before_tqdm
    assert hf_logging.is_progress_bar_enabled() == before_on


def test_a_phase_off_a_terminal_is_one_line_and_no_bar(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    gguf = importlib.import_module(GGUF_MODULE)
    caplog.set_level(logging.INFO, logger="promptopt")
    with loading_phase("converted m.gguf"):  # pytest's stderr is not a terminal
        for _ in gguf.tqdm(range(50), desc="Converting and de-quantizing GGUF tensors..."):
            pass
        for _ in hf_logging.tqdm(range(50), desc="Loading weights"):
            pass
    assert "\r" not in capsys.readouterr().err
    lines = [r.getMessage() for r in caplog.records if r.name == load_progress.__name__]
    assert len(lines) == 1 and lines[0].startswith("converted m.gguf in ")


def test_on_a_terminal_the_bars_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load_progress, "bars_wanted", lambda: True)
    gguf = importlib.import_module(GGUF_MODULE)
    before = gguf.tqdm
    with loading_phase("loaded m"):
        assert gguf.tqdm is before


@pytest.mark.integration
def test_converting_the_embedded_model_in_a_log(tmp_path: Path) -> None:
    """A fresh cache: GGUF conversion and loading, stderr to a pipe as in CI or compare."""
    code = (
        "from promptopt.cli.common import setup_logging; setup_logging()\n"
        "from promptopt.llm.hf import HFLLM; HFLLM()\n"
    )
    env = {**os.environ, "PROMPTOPT_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    env.pop("CI", None)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\r" not in done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("converted SmolLM2-135M-Instruct.Q4_1.gguf") for line in lines)
    assert any(line.startswith("loaded SmolLM2-135M-Instruct (") for line in lines)
