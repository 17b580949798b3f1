"""A model backend written the way a third-party package would write one: this one
file, registered by name (`register_backend`, or an entry point in the group
`promptopt.backends`), and nothing in promptopt edited.

`parrot:<mode>` answers every question with its last word (`upper`: in capitals)
and scores a continuation by its length: deterministic, instant, local.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from promptopt.core.domain import Completion, GenerationRequest, LogprobRequest
from promptopt.core.errors import ConfigError
from promptopt.llm.backend import Backend
from promptopt.llm.base import FULL_LOGPROBS, LLM

MODES = ("plain", "upper")


@dataclass(frozen=True)
class ParrotOptions:
    batch_size: int = 4
    """Named like the CLI's --batch-size, so that flag reaches it."""


def _claim(marker: str) -> bool:
    """Create `marker` unless it exists, atomically: two processes never both win.
    A marker that cannot be made (its folder is missing) claims every time."""
    try:
        with open(marker, "x") as out:
            out.write(str(os.getpid()))
    except FileExistsError:
        return False
    except FileNotFoundError:
        return True
    return True


class ParrotLLM:
    kind = "parrot"
    supports_logprobs = True
    supports_embeddings_input = False
    logprob_scope = FULL_LOGPROBS

    def __init__(self, mode: str, batch_size: int) -> None:
        self.model_id = mode
        self.batch_size = batch_size
        self.cache_scope: dict[str, str] = {}
        self.calls = 0

    def _answer(self, request: GenerationRequest) -> str:
        text = request.text if request.text is not None else request.messages[-1].content
        words = text.split() or [""]
        return words[-1].upper() if self.model_id == "upper" else words[-1]

    def _count(self, n: int) -> None:
        """Test hooks for worker processes, set through the environment (inherited by
        spawned workers): PARROT_CALLS_LOG gets one line per batch with its calls, and
        PARROT_DIE_AT=K:MARKER kills this process at its K-th call unless MARKER exists
        (created atomically first, so only one process dies, once, even when two
        workers reach call K together)."""
        self.calls += n
        if log := os.environ.get("PARROT_CALLS_LOG"):
            with open(log, "a") as out:
                out.write(f"{n}\n")
        if die := os.environ.get("PARROT_DIE_AT"):
            at, marker = die.split(":", 1)
            if self.calls >= int(at) and _claim(marker):
                os._exit(9)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self._count(sum(r.n for r in requests))
        return [
            Completion(
                texts=[self._answer(r)] * r.n,
                prompt_tokens=len(str(r.text or r.messages).split()) * r.n,
                completion_tokens=r.n,
            )
            for r in requests
        ]

    def logprobs(self, requests: Sequence[LogprobRequest]) -> list[list[float]]:
        self._count(len(requests))
        return [[-float(len(c)) for c in r.continuations] for r in requests]


class ParrotBackend(Backend):
    name = "parrot"
    description = "test backend: repeats the last word of the prompt"
    usage = "'parrot:plain|upper'"
    examples = "parrot:plain | parrot:upper"
    Options = ParrotOptions
    local = True

    def parse(self, model: str) -> str:
        if model not in MODES:
            raise ConfigError(f"parrot has modes {', '.join(MODES)}, not '{model}'")
        return model

    def build(self, model: str, options: ParrotOptions) -> LLM:
        return ParrotLLM(model, options.batch_size)
