"""A backend added from outside the package (tests/plugin_backend.py, registered
here) works through `search`, `--dry-run`, `--resume`, `eval` and `models list`;
the entry-point path registers through the same function."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from promptopt.core.errors import ConfigError
from promptopt.llm import backend
from promptopt.llm.backend import get_backend, register_backend, unregister_backend
from promptopt.llm.factory import ModelSpec, build_llm, model_identity, parse_model_spec
from tests.cli_helpers import eval_json, invoke, search_via_cli
from tests.plugin_backend import ParrotBackend, ParrotLLM


@pytest.fixture
def parrot() -> Iterator[None]:
    register_backend(ParrotBackend)
    yield
    unregister_backend("parrot")


@pytest.fixture
def data(tmp_path: Path, isolated_cache: Path) -> Path:
    rows = [{"input": f"say w{i}", "output": f"w{i}"} for i in range(24)]
    path = tmp_path / "words.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_the_spec_is_the_backends_own(parrot: None) -> None:
    spec = parse_model_spec("parrot:upper", batch_size=2, dtype="float32", base_url=None)
    assert spec.to_dict() == {"backend": "parrot", "model": "upper", "batch_size": 2}
    assert ModelSpec(**spec.to_dict()) == spec
    assert model_identity(spec.to_dict()) == spec.to_dict()
    assert isinstance(build_llm(spec), ParrotLLM)
    with pytest.raises(ConfigError, match="parrot has modes plain, upper, not 'loud'"):
        parse_model_spec("parrot:loud")
    with pytest.raises(ConfigError, match="'parrot:plain|upper'"):
        parse_model_spec("no-such-model")


def test_search_dry_run_resume_and_eval_through_a_plugin_backend(
    parrot: None, data: Path, tmp_path: Path
) -> None:
    args = ["--data", str(data), "--model", "parrot:upper", "--proposer", "parrot:plain"]
    args += ["--budget", "40", "--batch-size", "2", "--demo-sets", "0"]
    dry = invoke("search", *args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "$0 (local model)" in dry.output

    export, run_dir = search_via_cli(tmp_path, "run", *args)
    target = export["models"]["target"]
    assert (target["kind"], target["model"]) == ("parrot", "upper")
    assert target["spec"] == {"backend": "parrot", "model": "upper", "batch_size": 2}
    assert export["usage"]["cost"]["local"] is True
    config = json.loads((run_dir / "config.json").read_text())
    assert config["proposer"] == {"backend": "parrot", "model": "plain", "batch_size": 2}

    resumed = invoke("search", "--resume", str(run_dir), "--out", str(tmp_path / "again.json"))
    assert resumed.exit_code == 0, resumed.output

    report = eval_json(tmp_path / "run.json")
    assert report["model"]["kind"] == "parrot", report["model"]
    listing = invoke("models", "list")
    assert "parrot:plain | parrot:upper" in listing.output


def test_model_and_proposer_options_reach_their_own_models(
    parrot: None, data: Path, tmp_path: Path
) -> None:
    args = ["--data", str(data), "--model", "parrot:upper", "--proposer", "parrot:plain"]
    args += ["--budget", "20", "--demo-sets", "0"]
    options = ["--model-option", "batch_size=3", "--proposer-option", "batch_size=5"]
    _, run_dir = search_via_cli(tmp_path, "run", *args, *options)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["target"]["batch_size"] == 3 and config["proposer"]["batch_size"] == 5
    bad = invoke("search", *args, "--proposer-option", "batch_size=x", "--dry-run")
    assert bad.exit_code == 2
    assert "--proposer-option batch_size=x: 'x' is not of type int" in bad.output


def test_entry_points_register_through_register_backend(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    group = backend.ENTRY_POINT_GROUP
    points = [
        EntryPoint("parrot", "tests.plugin_backend:ParrotBackend", group),
        EntryPoint("broken", "tests.no_such_module:Backend", group),
    ]
    monkeypatch.setattr(backend, "entry_points", lambda group: points)
    monkeypatch.setattr(backend, "_loaded", False)
    monkeypatch.setattr(backend, "_REGISTERED", {})
    assert isinstance(get_backend("parrot"), ParrotBackend)
    assert [b.name for b in backend.backends()] == ["hf", "openai", "parrot"]
    assert "backend plugin 'broken'" in caplog.text


def test_a_taken_name_is_refused(parrot: None) -> None:
    class Impostor(ParrotBackend):
        pass

    with pytest.raises(ConfigError, match="backend name 'parrot' is taken"):
        register_backend(Impostor)
    assert register_backend(ParrotBackend) is get_backend("parrot")
