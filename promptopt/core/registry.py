"""Name -> lazy "module:attr" registry of strategies (backends: `llm/backend.py`).

Lazy so that `promptopt --help` and `tasks list` never import torch.
"""

from __future__ import annotations

import importlib
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


def _load(entry: str) -> Any:
    module, attr = entry.split(":")
    return getattr(importlib.import_module(module), attr)


def get_strategy(name: str) -> Any:
    if name not in STRATEGIES:
        raise ConfigError(
            f"unknown strategy '{name}'{did_you_mean(name, list(STRATEGIES))}: "
            "run `promptopt strategies list`"
        )
    return _load(STRATEGIES[name][0])()
