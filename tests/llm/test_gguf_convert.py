"""The GGUF file is parsed once per conversion, and sharing the parse changes nothing."""

from __future__ import annotations

import gguf
import numpy as np
from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

from promptopt.llm.gguf_convert import _gguf_parsed_once
from promptopt.llm.models import embedded_gguf_path


def test_a_shared_parse_reads_the_same_config_and_tokenizer_once() -> None:
    path = str(embedded_gguf_path())
    alone = load_gguf_checkpoint(path)
    built: list[str] = []
    real = gguf.GGUFReader

    def counting(*args: object, **kwargs: object) -> object:
        built.append(str(args[0]))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    gguf.GGUFReader = counting  # type: ignore[assignment,misc]
    try:
        with _gguf_parsed_once():
            first = load_gguf_checkpoint(path)
            second = load_gguf_checkpoint(path)
    finally:
        gguf.GGUFReader = real  # type: ignore[misc]
    assert built == [path]
    assert gguf.GGUFReader is real, "the block must restore gguf's own reader"
    for shared in (first, second):
        assert shared["config"] == alone["config"]
        assert shared["tokenizer_config"] == alone["tokenizer_config"]
        for key, value in alone["tokenizer"].items():
            assert np.array_equal(np.asarray(shared["tokenizer"][key]), np.asarray(value)), key


def test_the_tensor_name_table_is_built_once_per_architecture_inside_the_block() -> None:
    real = gguf.get_tensor_name_map
    with _gguf_parsed_once():
        assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 30) is gguf.get_tensor_name_map(
            gguf.MODEL_ARCH.LLAMA, 30
        )
    assert gguf.get_tensor_name_map is real
