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


def test_recorded_dtype_is_what_auto_means_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs record the resolved dtype: a run recorded before `auto` (bfloat16) stays
    resumable where auto means bfloat16, and is refused where it means float32."""
    from promptopt.llm import factory
    from promptopt.llm.dtype_choice import DtypeChoice

    monkeypatch.setattr(factory, "resolve_dtype", lambda d, device: DtypeChoice("float32", "x"))
    assert ModelSpec("hf", "embedded").dtype == "auto"
    assert ModelSpec("hf", "embedded").resolved() == ModelSpec("hf", "embedded", dtype="float32")
    explicit = ModelSpec("hf", "embedded", dtype="bfloat16")
    assert explicit.resolved() is explicit
    api = ModelSpec("openai", "gpt-4o-mini")
    assert api.resolved() is api
