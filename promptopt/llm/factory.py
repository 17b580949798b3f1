"""Model specs as users write them, and building the backend they name.

    embedded                       the bundled SmolLM2-135M-Instruct (default)
    hf:<hub id | folder | .gguf>   any local transformers causal LM
    openai:<model>                 the OpenAI API, or with --base-url any
                                   OpenAI-compatible server (vLLM, llama.cpp, Ollama)

A bare path to a folder or .gguf file means hf.

openai models also take `timeout` (seconds per request) and `max_concurrency`
(requests in flight). They say how a model is called, not what it answers: a
spec records them, but they are not part of its identity (`model_identity`), so
a run resumes and a comparison extends with other values, and they never enter
a cache key.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from promptopt.core.errors import ConfigError
from promptopt.core.registry import BACKENDS, get_backend_class
from promptopt.llm.base import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_TIMEOUT,
    LLM,
    model_scope,
    public_url,
)
from promptopt.llm.dtype_choice import AUTO, resolve_dtype


@dataclass(frozen=True)
class ModelSpec:
    backend: str
    model: str
    base_url: str | None = None
    api: str = "chat"
    dtype: str = AUTO
    """hf models: float32, bfloat16, float16, or auto (`dtype_choice`: what runs
    fastest here)."""
    device: str = "cpu"
    batch_size: int = 16
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    """openai models: requests in flight at once."""
    timeout: float = DEFAULT_TIMEOUT
    """openai models: seconds each request may take (a run recorded before the
    option existed has no such key and gets this default)."""

    def __repr__(self) -> str:
        """Without a credential in the base URL, wherever a spec ends up printed."""
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"ModelSpec({fields})"

    def to_dict(self) -> dict[str, Any]:
        """What a run records: no credentials (base URLs are stripped of them)."""
        data = asdict(self)
        if self.base_url:
            data["base_url"] = public_url(self.base_url)
        return data

    def scope(self) -> dict[str, str]:
        """The cache scope the model this spec builds will have (`model_scope`)."""
        if self.backend == "hf":
            return model_scope(dtype=self.resolved().dtype)
        return model_scope(server=self.base_url)

    def resolved(self) -> ModelSpec:
        """This spec with `auto` replaced by the dtype it means on this machine.

        What runs and comparisons record, so that resuming or extending one on a
        machine where `auto` means another dtype is refused instead of mixing
        float32 and bfloat16 results; and on a machine where it means the old
        default (bfloat16), runs recorded before `auto` existed stay resumable.
        """
        if self.backend != "hf" or self.dtype != AUTO:
            return self
        return replace(self, dtype=resolve_dtype(AUTO, self.device).dtype)


CALL_SETTINGS = ("timeout", "max_concurrency")
"""ModelSpec fields that say how a model is called, not which model answers."""


def model_identity(spec: Any) -> Any:
    """A recorded spec (`ModelSpec.to_dict`) without `CALL_SETTINGS`: what must
    match to resume a run or extend a comparison. Anything else comes back as is."""
    if not isinstance(spec, dict):
        return spec
    return {k: v for k, v in spec.items() if k not in CALL_SETTINGS}


def with_call_settings(
    spec: ModelSpec, timeout: float | None = None, max_concurrency: int | None = None
) -> ModelSpec:
    """`spec` with the `--timeout` and `--max-concurrency` given (None keeps its own),
    checked: a bad value is a one-line ConfigError before anything runs."""
    if timeout is not None:
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ConfigError(
                f"--timeout must be a positive number of seconds, got {timeout:g}: "
                f"e.g. --timeout {DEFAULT_TIMEOUT:g}"
            )
        spec = replace(spec, timeout=float(timeout))
    if max_concurrency is not None:
        if max_concurrency < 1:
            raise ConfigError(
                f"--max-concurrency must be at least 1, got {max_concurrency}: "
                "e.g. --max-concurrency 1 for one request at a time"
            )
        spec = replace(spec, max_concurrency=max_concurrency)
    return spec


def parse_model_spec(
    text: str, timeout: float | None = None, max_concurrency: int | None = None, **options: Any
) -> ModelSpec:
    """A `--model` or `--proposer` value with its options; `timeout` and
    `max_concurrency` are checked (`with_call_settings`), None means the default."""
    spec = _parse_model_spec(text, **options)
    return with_call_settings(spec, timeout, max_concurrency)


def _parse_model_spec(text: str, **options: Any) -> ModelSpec:
    text = text.strip()
    if text == "embedded":
        return ModelSpec(backend="hf", model="embedded", **options)
    backend, sep, model = text.partition(":")
    if sep and backend in BACKENDS and model:
        return ModelSpec(backend=backend, model=model, **options)
    if text.endswith(".gguf") or Path(text).expanduser().is_dir():
        return ModelSpec(backend="hf", model=text, **options)
    raise ConfigError(
        f"cannot read model '{text}': write 'embedded', 'hf:<hub id|folder|file.gguf>' "
        "or 'openai:<model>' (see `promptopt models list`)"
    )


_LOADED: dict[ModelSpec, LLM] = {}


def build_llm(spec: ModelSpec) -> LLM:
    """One instance per spec per process: target and proposer may share a model."""
    if spec in _LOADED:
        return _LOADED[spec]
    cls = get_backend_class(spec.backend)
    if spec.backend == "hf":
        llm = cls(spec.model, dtype=spec.dtype, device=spec.device, batch_size=spec.batch_size)
    else:
        llm = cls(
            spec.model,
            base_url=spec.base_url,
            api=spec.api,
            max_concurrency=spec.max_concurrency,
            timeout=spec.timeout,
        )
    _LOADED[spec] = llm
    return llm
