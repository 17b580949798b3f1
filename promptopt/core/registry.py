"""Name -> lazy "module:attr" registry of strategies (backends: `llm/backend.py`).

Lazy so that `promptopt --help` and `tasks list` never import torch. The
strategies promptopt ships are listed here; a package adds one with an entry
point in the `promptopt.strategies` group (`name = "package.module:Class"`), so a
new strategy is one file and one registration line, here or in its own package.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Any

from promptopt.core.errors import ConfigError, did_you_mean

STRATEGIES: dict[str, tuple[str, str]] = {
    "ape": (
        "promptopt.strategies.ape:APE",
        "APE (Zhou et al. 2022): proposer writes instructions from demonstrations; "
        "successive halving or UCB selects; optional resampling",
    ),
    "rlprompt": (
        "promptopt.strategies.rlprompt:RLPrompt",
        "RLPrompt (Deng et al. 2022): an MLP on the frozen proposer LM learns, by policy "
        "gradient on the task reward, to write short discrete prompts",
    ),
    "instructzero": (
        "promptopt.strategies.instructzero:InstructZero",
        "InstructZero (Chen et al. 2023): Bayesian optimization over a soft prompt that makes "
        "a local writer model (the proposer) write the instruction; any target model",
    ),
    "reflexion": (
        "promptopt.strategies.reflexion:Reflexion",
        "Reflexion (Shinn et al. 2023): reflect on a minibatch's failures, keep the last "
        "reflections in memory, revise the prompt from them; best on dev kept",
    ),
    "mipro": (
        "promptopt.strategies.mipro:Mipro",
        "Joint instruction x demonstration search after MIPROv2 (Opsahl-Ong et al. 2024): "
        "bootstrapped and random demo sets, grounded and proposed instructions, a GP over "
        "the choices picks each minibatch trial; the best pair confirmed on all of dev",
    ),
    "boosted": (
        "promptopt.strategies.boosting:Boosted",
        "Boosted prompt ensembles (Pitis et al. 2023): few-shot prompts built step by step "
        "from the questions the ensemble gets wrong or is unsure of; answers voted",
    ),
}


ENTRY_POINT_GROUP = "promptopt.strategies"
log = logging.getLogger(__name__)


def strategies() -> dict[str, tuple[str, str]]:
    """Every strategy: name -> ("module:attr", one-line description), the ones
    shipped first, then those of installed packages (which cannot replace them)."""
    found = dict(STRATEGIES)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in found:
            log.warning(
                "strategy plugin '%s' (%s) ignored: the name is taken", point.name, point.value
            )
            continue
        found[point.name] = (point.value, _plugin_description(point.value))
    return found


def _plugin_description(entry: str) -> str:
    """The first line of a plugin class's docstring, read when it is listed."""
    try:
        doc = _load(entry).__doc__ or ""
    except Exception as error:  # a broken plugin must not break the listing
        return f"(cannot be loaded: {error})"
    return doc.strip().split("\n")[0] or entry


def _load(entry: str) -> Any:
    module, attr = entry.split(":")
    return getattr(importlib.import_module(module), attr)


def get_strategy(name: str) -> Any:
    known = STRATEGIES if name in STRATEGIES else strategies()
    if name not in known:
        raise ConfigError(
            f"unknown strategy '{name}'{did_you_mean(name, list(known))}: "
            "run `promptopt strategies list`"
        )
    return _load(known[name][0])()
