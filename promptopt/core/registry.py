"""Name -> lazy "module:attr" registries for strategies and backends.

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

BACKENDS: dict[str, tuple[str, str]] = {
    "hf": (
        "promptopt.llm.hf:HFLLM",
        "local transformers model: 'embedded' (default), a hub id, a local folder or a .gguf "
        "file; needs nothing more offline for local files",
    ),
    "openai": (
        "promptopt.llm.openai_compat:OpenAICompatLLM",
        "OpenAI API (needs OPENAI_API_KEY) or any OpenAI-compatible server via --base-url "
        "(vLLM, llama.cpp, Ollama)",
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


def get_backend_class(name: str) -> Any:
    if name not in BACKENDS:
        raise ConfigError(
            f"unknown backend '{name}'{did_you_mean(name, list(BACKENDS))}: "
            "run `promptopt models list`"
        )
    return _load(BACKENDS[name][0])
