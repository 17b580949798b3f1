"""The `hf` backend: any transformers causal LM on this machine.

    embedded                       the bundled SmolLM2-135M-Instruct (default)
    hf:<hub id | folder | .gguf>   any local transformers causal LM

A bare path to a folder or .gguf file means hf too. The model code (`llm/hf.py`,
torch) is imported only when a model is built or its files are read.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from promptopt.llm.backend import Backend, LocalFiles
from promptopt.llm.base import FULL_LOGPROBS, LLM, model_scope
from promptopt.llm.dtype_choice import AUTO, resolve_dtype

EMBEDDED = "embedded"


@dataclass(frozen=True)
class HFOptions:
    dtype: str = AUTO
    """float32, bfloat16, float16, or auto (`dtype_choice`: what runs fastest here)."""
    device: str = "cpu"
    batch_size: int = 16


class HFBackend(Backend):
    name = "hf"
    description = (
        "local transformers model: 'embedded' (default), a hub id, a local folder or a .gguf "
        "file; needs nothing more offline for local files"
    )
    usage = "'embedded', 'hf:<hub id|folder|file.gguf>'"
    examples = "embedded | hf:HuggingFaceTB/SmolLM2-360M-Instruct | hf:./model.gguf"
    Options = HFOptions
    local = True

    def claims(self, text: str) -> bool:
        return text == EMBEDDED or text.endswith(".gguf") or Path(text).expanduser().is_dir()

    def resolved(self, options: HFOptions) -> HFOptions:
        """`auto` replaced by the dtype it means here: resuming or extending a run on
        a machine where it means another dtype is refused instead of mixing float32
        and bfloat16 results; where it means the old default (bfloat16), runs
        recorded before `auto` existed stay resumable."""
        if options.dtype != AUTO:
            return options
        return replace(options, dtype=resolve_dtype(AUTO, options.device).dtype)

    def scope(self, model: str, options: HFOptions) -> dict[str, str]:
        return model_scope(dtype=self.resolved(options).dtype)

    def logprob_scope(self, options: HFOptions) -> str:
        return FULL_LOGPROBS

    def local_files(self, model: str) -> LocalFiles | None:
        from transformers import AutoConfig

        from promptopt.llm.hf import local_tokenizer, render_prompt
        from promptopt.llm.models import EMBEDDED_MODEL_NAME

        tokenizer = local_tokenizer(model)
        if tokenizer is None:
            return None
        config: Any = None
        with contextlib.suppress(OSError, ValueError):
            config = AutoConfig.from_pretrained(tokenizer.name_or_path, local_files_only=True)
        name = EMBEDDED_MODEL_NAME if model == EMBEDDED else model
        return LocalFiles(name, tokenizer, partial(render_prompt, tokenizer), config)

    def build(self, model: str, options: HFOptions) -> LLM:
        from promptopt.llm.hf import HFLLM

        return HFLLM(
            model, dtype=options.dtype, device=options.device, batch_size=options.batch_size
        )
