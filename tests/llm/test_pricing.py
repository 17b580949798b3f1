from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.core.errors import ConfigError
from promptopt.llm.pricing import Price, estimate_cost, load_prices

HF = {"backend": "hf", "model": "embedded"}
MINI = {"backend": "openai", "model": "gpt-4o-mini"}
UNKNOWN = {"backend": "openai", "model": "my-model"}


def test_shipped_table_is_dated_and_prices_known_models() -> None:
    table = load_prices()
    assert table.read_on
    assert table.lookup(MINI) == Price(0.15, 0.60)
    cost = estimate_cost(table, [(MINI, 1_000_000, 1_000_000)])
    assert cost.usd == pytest.approx(0.75) and not cost.local
    assert cost.describe() == "$0.7500 (estimated)"


def test_local_models_cost_nothing_and_unknown_ones_say_so() -> None:
    table = load_prices()
    local = estimate_cost(table, [(HF, 10_000, 10_000)])
    assert local.usd == 0 and local.local and "local" in local.describe()
    unknown = estimate_cost(table, [(HF, 1, 1), (UNKNOWN, 1000, 1000)])
    assert unknown.usd is None
    assert unknown.describe() == (
        "no price known for openai:my-model (add it to a price table: --prices FILE)"
    )


def test_override_by_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / "env.yaml"
    env.write_text("models:\n  openai:my-model: {input: 1.0, output: 2.0}\n")
    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "read_on: '2030-01-01'\nmodels:\n  openai:gpt-4o-mini: {input: 0, output: 0}\n"
    )
    monkeypatch.setenv("PROMPTOPT_PRICES", str(env))
    table = load_prices(extra)
    assert table.lookup(UNKNOWN) == Price(1.0, 2.0)
    assert table.lookup(MINI) == Price(0.0, 0.0)
    assert table.read_on == "2030-01-01"
    assert estimate_cost(table, [(UNKNOWN, 500_000, 250_000)]).usd == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: [1, 2]", "no 'models' mapping"),
        ("models:\n  openai:x: {input: cheap}\n", "numeric 'input' and 'output'"),
        ("models: {unclosed", "not valid YAML"),
    ],
)
def test_bad_tables_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_prices(path)
    with pytest.raises(ConfigError, match="not found"):
        load_prices(tmp_path / "missing.yaml")


def test_a_price_table_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"models:\n  openai:caf\xe9: {input: 1, output: 2}\n")
    with pytest.raises(
        ConfigError, match=r"price table .* is not UTF-8 text \(byte 0xe9 on line 2"
    ):
        load_prices(path)


def test_a_search_is_priced_on_its_new_calls_only() -> None:
    """Cache hits count against the budget but cost nothing: the estimate prices the
    tokens the models were asked for, per model."""
    from promptopt.core.domain import Usage
    from promptopt.llm.factory import ModelSpec
    from promptopt.run.search import SearchSpec, usage_report

    spec = SearchSpec(task="antonyms", target=ModelSpec("openai", "gpt-4o-mini"))
    search = Usage(calls=30, prompt_tokens=3_000_000, cache_hits=20)
    search.cached_prompt_tokens = 2_000_000
    target = Usage(calls=20, prompt_tokens=2_000_000, cache_hits=10)
    target.cached_prompt_tokens = 1_000_000  # half of the target's calls from the cache
    report = usage_report(spec, search, target, Usage(calls=4, prompt_tokens=1_000_000))
    assert report["search"]["new_calls"] == 10 and report["search"]["cache_hits"] == 20
    proposer = report["search_by_model"]["proposer"]
    assert (proposer["calls"], proposer["cache_hits"], proposer["new_prompt_tokens"]) == (
        10,
        10,
        0,
    )
    # The target's new million tokens at $0.15; the proposer is the local embedded model.
    assert report["cost"]["search_usd"] == pytest.approx(0.15)
    assert report["cost"]["total_usd"] == pytest.approx(0.30)
