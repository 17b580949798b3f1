"""Model specs as users write them, and building the backend they name.

    embedded                       the bundled SmolLM2-135M-Instruct (default)
    hf:<hub id | folder | .gguf>   any local transformers causal LM
    openai:<model>                 the OpenAI API, or with --base-url any
                                   OpenAI-compatible server (vLLM, llama.cpp, Ollama)

A bare path to a folder or .gguf file means hf.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError
from promptopt.llm.base import LLM, model_scope, public_url
from promptopt.llm.dtype_choice import AUTO, resolve_dtype
from promptopt.registry import BACKENDS, get_backend_class


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
    max_concurrency: int = 8

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


def parse_model_spec(text: str, **options: Any) -> ModelSpec:
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
        )
    _LOADED[spec] = llm
    return llm
