"""Model loading in logs: one line per phase instead of progress bars.

transformers draws tqdm bars while it converts a GGUF file ("Converting and
de-quantizing GGUF tensors") and loads weights ("Loading weights"). On a
terminal they redraw in place; in a CI log or a `compare` log file every redraw
is a new carriage-return line, hundreds per load. So when stderr is not a
terminal the bars are switched off for the phase and one line says what was
done and how long it took (logger `promptopt.llm.load_progress`, level INFO).
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

GGUF_MODULE = "transformers.modeling_gguf_pytorch_utils"
"""Draws its bar with tqdm directly, past transformers' own switch."""


def bars_wanted() -> bool:
    """Progress bars only where they redraw in place: a terminal."""
    return sys.stderr.isatty()


@contextmanager
def loading_phase(done: str) -> Iterator[None]:
    """Run a loading phase quietly off a terminal and log `done` with its time."""
    if bars_wanted():
        yield
        return
    started = time.perf_counter()
    with progress_bars_off():
        yield
    log.info("%s in %.1f s", done, time.perf_counter() - started)


@contextmanager
def progress_bars_off() -> Iterator[None]:
    """Switch off transformers', the hub's and the GGUF converter's bars; restore after."""
    from huggingface_hub import utils as hub
    from transformers.utils import logging as hf_logging

    transformers_on = hf_logging.is_progress_bar_enabled()
    hub_off = hub.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()  # also the hub's
    gguf = _gguf_module()
    gguf_tqdm = getattr(gguf, "tqdm", None)
    if gguf_tqdm is not None:
        gguf.tqdm = functools.partial(gguf_tqdm, disable=True)
    try:
        yield
    finally:
        if gguf_tqdm is not None:
            gguf.tqdm = gguf_tqdm
        if transformers_on:
            hf_logging.enable_progress_bar()
        if hub_off:
            hub.disable_progress_bars()


def _gguf_module() -> object | None:
    try:
        return importlib.import_module(GGUF_MODULE)
    except ImportError:  # no gguf package, or transformers moved it: nothing to silence
        return None
