"""Estimated cost of model tokens, from a price table you can extend.

Token counts are what promptopt measures; dollars are an estimate made from a
table of published prices (promptopt/llm/prices.yaml, dated inside), because API
bills depend on discounts and tiers promptopt cannot see. Local models (a backend
that says it is local, like hf and the embedded model) cost 0. An API model missing from every
table gets no number rather than a wrong one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from promptopt.core.errors import ConfigError
from promptopt.core.files import read_utf8
from promptopt.llm.backend import is_local

PRICES_ENV = "PROMPTOPT_PRICES"


@dataclass(frozen=True)
class Price:
    """US dollars per million input and output tokens."""

    input_per_m: float
    output_per_m: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_m + completion_tokens * self.output_per_m) / 1e6


@dataclass
class PriceTable:
    models: dict[str, Price] = field(default_factory=dict)
    read_on: str | None = None
    sources: list[str] = field(default_factory=list)

    def lookup(self, model: dict[str, Any]) -> Price | None:
        """The price of a model given as a ModelSpec dict ({"backend", "model", ...})."""
        backend, name = model.get("backend", ""), model.get("model", "")
        return self.models.get(f"{backend}:{name}") or self.models.get(name)


def _read_table(path: Path, text: str) -> PriceTable:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"price table {path} is not valid YAML ({error}): fix the file") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ConfigError(
            f"price table {path} has no 'models' mapping: write "
            "'models: {openai:NAME: {input: USD_PER_M, output: USD_PER_M}}'"
        )
    table = PriceTable(read_on=str(data["read_on"]) if data.get("read_on") else None)
    for key, row in models.items():
        try:
            table.models[str(key)] = Price(float(row["input"]), float(row["output"]))
        except (TypeError, KeyError, ValueError):
            raise ConfigError(
                f"price table {path}: '{key}' needs numeric 'input' and 'output' "
                "(US dollars per million tokens)"
            ) from None
    table.sources.append(str(path))
    return table


def load_prices(extra: Path | str | None = None) -> PriceTable:
    """The shipped table, extended and overridden by PROMPTOPT_PRICES, then by `extra`."""
    shipped = resources.files("promptopt.llm").joinpath("prices.yaml")
    table = _read_table(Path("promptopt/llm/prices.yaml"), shipped.read_text(encoding="utf-8"))
    table.sources = ["promptopt/llm/prices.yaml"]
    for source in (os.environ.get(PRICES_ENV), extra):
        if not source:
            continue
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"price table {path} not found: pass an existing YAML file to --prices "
                f"or {PRICES_ENV}"
            )
        more = _read_table(path, read_utf8(path, "price table"))
        table.models.update(more.models)
        table.sources.append(str(path))
        table.read_on = more.read_on or table.read_on
    return table


@dataclass
class CostEstimate:
    """Estimated dollars for some token use; `usd` is None when a price is missing."""

    usd: float | None
    local: bool
    """Every model involved is local (cost 0)."""
    unknown: list[str] = field(default_factory=list)
    """API models with no price in any table."""

    def describe(self) -> str:
        if self.unknown:
            names = ", ".join(self.unknown)
            return f"no price known for {names} (add it to a price table: --prices FILE)"
        if self.local:
            return "$0 (local model)"
        assert self.usd is not None
        return f"${self.usd:.4f} (estimated)"

    def to_dict(self) -> dict[str, Any]:
        return {"usd": self.usd, "local": self.local, "unknown_models": self.unknown}


def model_label(model: dict[str, Any]) -> str:
    name = model.get("model", "")
    return name if name == "embedded" else f"{model.get('backend', '')}:{name}"


def estimate_cost(table: PriceTable, parts: list[tuple[dict[str, Any], int, int]]) -> CostEstimate:
    """Sum over (model spec dict, prompt tokens, completion tokens) parts."""
    usd, local, unknown = 0.0, True, []
    for model, prompt_tokens, completion_tokens in parts:
        if is_local(model):
            continue
        local = False
        price = table.lookup(model)
        if price is None:
            label = model_label(model)
            if label not in unknown:
                unknown.append(label)
            continue
        usd += price.cost(prompt_tokens, completion_tokens)
    return CostEstimate(usd=None if unknown else round(usd, 6), local=local, unknown=unknown)
