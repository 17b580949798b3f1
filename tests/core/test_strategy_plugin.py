"""A strategy added from outside the package (tests/plugin_strategy.py) by an entry
point works through `strategies list`, `strategies show`, `search --dry-run` and
`search`, with the plugin backend as its model (no promptopt file edited)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from promptopt.core import registry
from promptopt.core.errors import ConfigError
from promptopt.llm.backend import register_backend, unregister_backend
from tests.cli_helpers import invoke, search_via_cli
from tests.plugin_backend import ParrotBackend

POINT = EntryPoint("suffixes", "tests.plugin_strategy:Suffixes", registry.ENTRY_POINT_GROUP)


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def installed(group: str) -> list[EntryPoint]:
        return [POINT] if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry, "entry_points", installed)
    register_backend(ParrotBackend)
    yield
    unregister_backend("parrot")


def test_the_plugin_is_listed_and_shown(plugins: None) -> None:
    listed = invoke("strategies", "list")
    assert listed.exit_code == 0 and "suffixes" in listed.output
    assert "Answer-format sentences appended" in listed.output
    shown = invoke("strategies", "show", "suffixes")
    assert shown.exit_code == 0 and "answer-format sentences tried" in shown.output


def test_a_plugin_cannot_take_a_shipped_name(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = EntryPoint("ape", "tests.plugin_strategy:Suffixes", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [taken])
    assert registry.strategies()["ape"][0] == "promptopt.strategies.ape:APE"
    with pytest.raises(ConfigError, match="unknown strategy 'sufixes'"):
        registry.get_strategy("sufixes")


def test_dry_run_and_search_through_a_plugin_strategy(
    plugins: None, tmp_path: Path, isolated_cache: Path
) -> None:
    rows = [{"input": f"say w{i}", "output": f"W{i}"} for i in range(24)]
    data = tmp_path / "words.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["--data", str(data), "--model", "parrot:upper", "--proposer", "parrot:plain"]
    args += ["--strategy", "suffixes", "--demo-sets", "0", "--budget", "60"]
    dry = invoke("search", *args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    export, run_dir = search_via_cli(tmp_path, "run", *args)
    assert export["strategy"]["name"] == "suffixes"
    origins = {row["origin"] for row in export["leaderboard"]}
    assert {"start", "suffix"} <= origins
    assert export["usage"]["search"]["calls"] <= 60
