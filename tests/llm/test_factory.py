from __future__ import annotations

import re

import pytest

from promptopt.core.errors import ConfigError
from promptopt.llm.factory import ModelSpec, parse_model_spec, with_model_options


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
    from promptopt.llm import hf_backend
    from promptopt.llm.dtype_choice import DtypeChoice

    monkeypatch.setattr(hf_backend, "resolve_dtype", lambda d, device: DtypeChoice("float32", "x"))
    assert ModelSpec("hf", "embedded").dtype == "auto"
    assert ModelSpec("hf", "embedded").resolved() == ModelSpec("hf", "embedded", dtype="float32")
    explicit = ModelSpec("hf", "embedded", dtype="bfloat16")
    assert explicit.resolved() is explicit
    api = ModelSpec("openai", "gpt-4o-mini")
    assert api.resolved() is api


def test_timeout_and_concurrency_are_recorded_but_are_not_the_model() -> None:
    """A run records how its openai models are called, resumes from that record
    (a record from before the options existed gets the defaults), and a resume or
    a later compare may call them differently: it is still the same model."""
    from promptopt.llm.factory import build_llm, model_identity

    spec = parse_model_spec(
        "openai:m", base_url="http://127.0.0.1:9/v1", timeout=5, max_concurrency=2
    )
    recorded = spec.to_dict()
    assert (recorded["timeout"], recorded["max_concurrency"]) == (5.0, 2)
    assert ModelSpec(**recorded) == spec
    old = {k: v for k, v in recorded.items() if k not in ("timeout", "max_concurrency")}
    assert (ModelSpec(**old).timeout, ModelSpec(**old).max_concurrency) == (60.0, None)
    assert (
        model_identity(old)
        == model_identity(recorded)
        == model_identity(ModelSpec(**old).to_dict())
    )
    assert model_identity(None) is None
    llm = build_llm(spec)
    assert (llm.timeout, llm.max_concurrency) == (5.0, 2)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "--timeout must be a positive number of seconds, got 0"),
        ({"timeout": float("inf")}, "--timeout must be a positive number of seconds, got inf"),
        ({"max_concurrency": 0}, "--concurrency must be at least 1, got 0"),
    ],
)
def test_bad_call_settings_are_config_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_model_spec("openai:m", **options)


def test_records_from_before_backends_owned_their_options_still_load() -> None:
    """Every spec used to record every backend's options; those of another backend are
    ignored, so old run configs resume and old exports evaluate, and cache scopes hold."""
    old_hf = {
        "backend": "hf",
        "model": "embedded",
        "base_url": None,
        "api": "chat",
        "dtype": "bfloat16",
        "device": "cpu",
        "batch_size": 16,
        "max_concurrency": 8,
        "timeout": 60.0,
    }
    spec = ModelSpec(**old_hf)
    assert spec == parse_model_spec("embedded", dtype="bfloat16")
    assert spec.to_dict() == {
        "backend": "hf",
        "model": "embedded",
        "dtype": "bfloat16",
        "device": "cpu",
        "batch_size": 16,
    }
    assert spec.scope() == {}
    old_api = {**old_hf, "backend": "openai", "model": "m", "base_url": "http://h/v1"}
    api = ModelSpec(**old_api)
    assert api.scope() == {"server": "http://h/v1"}
    assert "dtype" not in api.to_dict()
    from promptopt.llm.factory import model_identity

    assert model_identity(old_hf) == model_identity(spec.to_dict())
    assert model_identity(old_api) == model_identity(api.to_dict())
    with pytest.raises(ConfigError, match="model backend 'hf' has no option 'gpu'"):
        ModelSpec("hf", "embedded", gpu=1)


def test_model_options_are_read_as_their_fields_types() -> None:
    spec = with_model_options(parse_model_spec("embedded"), ["batch_size=4", "device=cuda"])
    assert (spec.batch_size, spec.device, spec.dtype) == (4, "cuda", "auto")
    remote = with_model_options(
        parse_model_spec("openai:m", base_url="http://127.0.0.1:1/v1"),
        ["timeout=2.5", "base_url=none"],
    )
    assert (remote.timeout, remote.base_url) == (2.5, None)
    assert with_model_options(spec, None) is spec


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        (["base_url=http://x"], "model backend 'hf' has no option 'base_url': its options are "),
        (["batch_size=many"], "--model-option batch_size=many: 'many' is not of type int"),
        (["batch_size"], "--model-option expects KEY=VALUE, got 'batch_size'"),
    ],
)
def test_bad_model_options_are_one_line_errors(items: list[str], problem: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(problem)) as caught:
        with_model_options(parse_model_spec("embedded"), items)
    assert "\n" not in str(caught.value)
    if "no option" in problem:
        assert "dtype, device, batch_size" in str(caught.value)
