from __future__ import annotations

import pytest

from promptopt.errors import ConfigError
from promptopt.llm.factory import ModelSpec, parse_model_spec


def test_model_specs() -> None:
    assert parse_model_spec("embedded") == ModelSpec("hf", "embedded")
    assert parse_model_spec("hf:org/model").model == "org/model"
    spec = parse_model_spec("openai:gpt-4o-mini", base_url="http://127.0.0.1:8080/v1")
    assert (spec.backend, spec.model, spec.base_url) == (
        "openai",
        "gpt-4o-mini",
        "http://127.0.0.1:8080/v1",
    )
    assert parse_model_spec("./weights/model.gguf").backend == "hf"
    with pytest.raises(ConfigError, match="cannot read model 'gpt4'"):
        parse_model_spec("gpt4")


def test_recorded_spec_has_no_credentials() -> None:
    spec = ModelSpec("openai", "m", base_url="https://user:secret@host.example/v1")
    assert "secret" not in str(spec.to_dict())
    assert spec.to_dict()["base_url"] == "https://host.example/v1"
