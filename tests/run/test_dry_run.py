"""Budgets as hard stops and `search --dry-run` projections, on a scripted model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.core.domain import Budget
from promptopt.core.errors import BudgetExhausted
from promptopt.core.registry import get_strategy
from promptopt.llm.factory import ModelSpec
from promptopt.run.dry_run import StandInLLM, formula_calls, project_search
from promptopt.run.search import SearchSpec, run_search
from promptopt.strategies.base import build_config
from tests.fakes import forbid_model_loading, plug_fake_model

runner = CliRunner()
APE_SMALL = {"num_subsamples": "2", "proposals_per_subsample": "3"}


@pytest.fixture(autouse=True)
def _env(data_dir: Path, isolated_cache: Path) -> None:
    pass


def spec(tmp_path: Path, name: str, budget: Budget | None = None, **kw: object) -> SearchSpec:
    return SearchSpec(
        task="antonyms",
        strategy=str(kw.pop("strategy", "ape")),
        params=dict(kw.pop("params", APE_SMALL)),  # type: ignore[arg-type]
        sizes={"dev": 8, "test": 6},
        budget=budget or Budget(),
        run_dir=tmp_path / name,
        use_cache=False,
    )


@pytest.mark.parametrize("budget", [None, 12, 25])
def test_ape_projection_matches_the_real_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int | None
) -> None:
    """APE's flow does not depend on answers: with distinct proposals the projected
    calls are exactly the calls a run makes, with or without a budget stop."""
    forbid_model_loading(monkeypatch)
    projection = project_search(spec(tmp_path, "dry", Budget(max_calls=budget)))
    assert projection.method == "simulated"
    plug_fake_model(monkeypatch)
    export = run_search(spec(tmp_path, "real", Budget(max_calls=budget)))
    assert projection.search.calls == export["usage"]["search"]["calls"]
    assert projection.test_eval.calls == export["usage"]["test_eval"]["calls"]
    assert projection.stopped_by_budget == export["stopped_by_budget"]
    if budget is not None:
        assert export["usage"]["search"]["calls"] <= budget


def test_projection_foresees_a_budget_too_small_to_score_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Less than the starting prompt's dev scoring (8 calls) cannot run at all."""
    forbid_model_loading(monkeypatch)
    projection = project_search(spec(tmp_path, "dry", Budget(max_calls=7)))
    assert projection.stopped_by_budget and "exit 5" in " ".join(projection.notes)
    plug_fake_model(monkeypatch)
    with pytest.raises(BudgetExhausted, match="starting prompt on dev"):
        run_search(spec(tmp_path, "real", Budget(max_calls=7)))


def test_a_budget_that_only_scores_the_start_exports_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plug_fake_model(monkeypatch)
    export = run_search(spec(tmp_path, "real", Budget(max_calls=9)))
    assert export["stopped_by_budget"] is True and export["improved"] is False
    assert export["prompt"] == export["start"]["prompt"]
    assert export["usage"]["search"]["calls"] <= 9


def test_call_budget_stop_saves_a_usable_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = plug_fake_model(monkeypatch)
    export = run_search(spec(tmp_path, "run", Budget(max_calls=10)))
    assert export["stopped_by_budget"] is True
    assert export["usage"]["search"]["calls"] <= 10
    assert export["prompt"]["instruction"]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["prompt"] == export["prompt"]
    rows = json.loads((tmp_path / "run" / "test_examples.json").read_text())
    assert len(rows["best"]) == 6 and len(rows["baseline"]) == 6
    search_calls = export["usage"]["search"]["calls"]
    assert fake.generate_calls == search_calls + export["usage"]["test_eval"]["calls"]


@pytest.mark.parametrize(("strategy", "cap"), [("ape", 1500), ("reflexion", 1000)])
def test_token_budget_is_never_crossed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str, cap: int
) -> None:
    plug_fake_model(monkeypatch)
    params = APE_SMALL if strategy == "ape" else {}
    export = run_search(
        spec(tmp_path, "run", Budget(max_tokens=cap), strategy=strategy, params=params)
    )
    search = export["usage"]["search"]
    assert export["stopped_by_budget"] is True
    assert 0 < search["prompt_tokens"] + search["completion_tokens"] <= cap
    assert (tmp_path / "run" / "result.json").is_file()


def test_budget_too_small_for_anything_exits_5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plug_fake_model(monkeypatch)
    result = runner.invoke(
        app,
        ["search", "--task", "antonyms", "--budget-tokens", "10", "--run-dir", str(tmp_path / "r")],
    )
    assert result.exit_code == 5 and "raise --budget-tokens" in result.output


def test_dry_run_cli_loads_no_model_and_prices_api_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_model_loading(monkeypatch)
    monkeypatch.chdir(tmp_path)
    base = ["search", "--task", "antonyms", "--dev-size", "8", "--test-size", "6", "--dry-run"]
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "no model was loaded" in result.output and "$0 (local model)" in result.output
    assert "This is a projection" in result.output
    result = runner.invoke(app, [*base, "--model", "openai:gpt-4o-mini", "--budget", "20"])
    assert result.exit_code == 0, result.output
    calls = int(re.search(r"search: +(\d+) model calls", result.output).group(1))
    assert 8 <= calls <= 20 and "(estimated)" in result.output
    assert "stop at its budget" in result.output
    result = runner.invoke(app, [*base, "--model", "openai:mystery"])
    assert "no price known for openai:mystery" in result.output
    prices = tmp_path / "p.yaml"
    prices.write_text("models:\n  openai:mystery: {input: 1.0, output: 1.0}\n")
    result = runner.invoke(app, [*base, "--model", "openai:mystery", "--prices", str(prices)])
    assert "(estimated)" in result.output
    assert not (tmp_path / "runs").exists()  # no run directory either


@pytest.mark.parametrize("strategy", ["instructzero", "rlprompt"])
def test_strategies_needing_a_real_model_get_a_formula(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    forbid_model_loading(monkeypatch)
    projection = project_search(spec(tmp_path, "dry", strategy=strategy, params={}))
    assert projection.method == "formula"
    config = build_config(get_strategy(strategy).Config, {})
    target, writer = formula_calls(strategy, config, 8)
    assert projection.search.calls == target + writer
    capped = project_search(
        spec(tmp_path, "dry2", Budget(max_calls=40), strategy=strategy, params={})
    )
    assert capped.search.calls <= 40 and capped.stopped_by_budget


def test_instructzero_formula() -> None:
    config = build_config(get_strategy("instructzero").Config, {"rounds": "3", "dev_subset": "5"})
    # 6 initial points + 3 rounds x 2 points, each one writer call + 5 dev examples,
    # and the starting prompt and the best candidate on all 8 dev examples
    assert formula_calls("instructzero", config, 8) == (12 * 5 + 2 * 8, 12)


def test_stand_in_is_deterministic_and_distinct() -> None:
    from promptopt.core.domain import GenerationRequest

    llm = StandInLLM(ModelSpec("hf", "embedded"), "proposer")
    request = GenerationRequest.chat("write an instruction", n=3, temperature=1.0, max_tokens=7)
    first = llm.generate([request])[0]
    assert first.texts == llm.generate([request])[0].texts and len(set(first.texts)) == 3
    assert first.completion_tokens == 21
