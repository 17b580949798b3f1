"""A GGUF file as a saved transformers checkpoint, converted once per file.

transformers loads a GGUF file by de-quantizing it, which takes seconds; a saved
float32 copy loads in under one. The copy is keyed by the file's identity, so a
changed file gets a new copy.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from promptopt.core.paths import cache_root
from promptopt.llm.load_progress import loading_phase


def converted_copy_dir(gguf: Path) -> Path:
    """Where the transformers copy of a GGUF file lives, keyed by file identity."""
    stat = gguf.stat()
    digest = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return cache_root() / "models" / f"{gguf.stem}-{digest.hexdigest()[:12]}"


def ensure_converted(gguf: Path) -> Path:
    """Convert a GGUF file to a saved transformers checkpoint once, atomically.

    The copy is written to a temporary folder and renamed into place, so an
    interrupted conversion never leaves a half-written model behind.
    """
    target = converted_copy_dir(gguf)
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with loading_phase(f"converted {gguf.name} to a transformers checkpoint (once)"):
        _convert(gguf, target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    with _gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    # transformers refuses to save a GGUF-loaded model while it is still marked
    # as quantized, although its weights are already de-quantized in memory.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "config.json").is_file():  # lost a race only if it exists now
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """Within the block, each GGUF file is parsed once and gguf's tensor-name table
    is built once per architecture.

    transformers parses the file three times to convert it (for the tokenizer, the
    config and the weights: ~2.5 s each for SmolLM2-135M on a 2-core CPU) and
    rebuilds the name table for every one of the model's ~400 modules. Both are
    pure reads of an unchanged file, so sharing them changes nothing in the saved
    copy (tests/llm/test_gguf_convert.py compares it with an unshared conversion).
    transformers imports both names from `gguf` inside the functions that use
    them, which is what lets this swap them for the block alone. Conversion runs
    once, before any model thread starts, so swapping module attributes is safe.
    """
    import gguf

    real_reader, real_name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], Any] = {}

    def shared_reader(path: str | os.PathLike[str], mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = real_reader(path, mode)
        return readers[key]

    gguf.GGUFReader = shared_reader  # type: ignore[assignment]
    gguf.get_tensor_name_map = functools.cache(real_name_map)
    try:
        yield
    finally:
        gguf.GGUFReader = real_reader  # type: ignore[misc]
        gguf.get_tensor_name_map = real_name_map
