"""The one protocol every backend implements.

Batch-first: callers hand over every request they have and the backend decides
how to batch (hf) or how many to keep in flight (openai). Wrappers (cache,
meter, journal) implement the same protocol, so a strategy never knows which
layers sit between it and the model.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import urlsplit

from promptopt.core.domain import Completion, GenerationRequest, LogprobRequest

if TYPE_CHECKING:
    import torch


@runtime_checkable
class LLM(Protocol):
    kind: str
    """Backend family, e.g. 'hf' or 'openai'; part of every cache key."""
    model_id: str
    """Stable model identity (hub id, file name, served model name)."""
    supports_logprobs: bool
    supports_embeddings_input: bool
    logprob_scope: str
    """'full': `logprobs` sums every token of a continuation. 'first_token': only
    the first token's log-probability, read from a chat API's top log-probs (API
    chat models); enough to pick a label, not to score a whole answer."""

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        """One Completion per request, each with `request.n` texts."""
        ...

    def logprobs(self, requests: Sequence[LogprobRequest]) -> list[list[float]]:
        """Summed log-probability of each continuation, one list per request."""
        ...


FULL_LOGPROBS = "full"
FIRST_TOKEN_LOGPROBS = "first_token"


DEFAULT_DTYPE = "bfloat16"
"""The dtype local models ran in before `--dtype auto`: cache entries made in it
keep the keys they had, so caches written then stay valid."""


DEFAULT_TIMEOUT = 60.0
"""Seconds an OpenAI-compatible server gets per request (`--timeout`)."""
REMOTE_CONCURRENCY = 32
"""Requests in flight at once (`--concurrency`) to a remote API or a served cluster
by default: a vLLM deployment answers many at once, and at ~1 s per request this is
32 requests a second, under the request limits of most paid API tiers (a 429 is
retried after its Retry-After anyway)."""
LOCAL_SERVER_CONCURRENCY = 4
"""Requests in flight by default to a server on this machine (localhost, 127.x,
::1): llama.cpp and Ollama answer one at a time, so more would only queue there and
run into the per-request timeout."""


def default_concurrency(base_url: str | None) -> int:
    """Requests in flight when `--concurrency` is not given: few for a server on this
    machine, many for anything remote."""
    if base_url is None:
        return REMOTE_CONCURRENCY
    host = urlsplit(public_url(base_url)).hostname or ""
    local = host == "localhost" or host == "::1" or host.startswith("127.")
    return LOCAL_SERVER_CONCURRENCY if local else REMOTE_CONCURRENCY


def public_url(url: str) -> str:
    """A server URL without the credentials it may carry (`http://user:KEY@host`)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.split("@", 1)[-1]
    return f"{scheme}://{rest.split('@', 1)[-1]}"


def has_credential(url: str | None) -> bool:
    """Whether a server URL carries a credential (`http://user:KEY@host`)."""
    return bool(url) and public_url(str(url)) != url


def with_placeholder_credential(url: str) -> str:
    """`url` as a user would write it with a credential, without theirs, for messages."""
    scheme, sep, rest = public_url(url).partition("://")
    return f"{scheme}://USER:KEY@{rest}" if sep else f"USER:KEY@{scheme}"


def model_scope(dtype: str | None = None, server: str | None = None) -> dict[str, str]:
    """What besides kind and model id decides a model's answers, for cache keys and
    exports: the dtype a local model computes in (float32 and bfloat16 answers
    differ) and the server an OpenAI-compatible model is served from (two servers
    may serve different weights under one model name). Empty for the bfloat16
    local model and the OpenAI API, whose keys predate this."""
    scope: dict[str, str] = {}
    if dtype is not None and dtype != DEFAULT_DTYPE:
        scope["dtype"] = dtype
    if server:
        scope["server"] = public_url(server)
    return scope


def cache_scope(llm: object) -> dict[str, str]:
    """A backend's `cache_scope` (see `model_scope`); wrappers pass theirs through."""
    return dict(getattr(llm, "cache_scope", None) or {})


def logprob_scope(llm: object) -> str:
    """A backend's logprob_scope; backends that predate it sum full continuations."""
    return str(getattr(llm, "logprob_scope", FULL_LOGPROBS))


def describe(llm: LLM) -> dict[str, str]:
    """What an export records about a model: never credentials.

    Local models add the dtype they ran in and why (`dtype_choice`): float32 and
    bfloat16 give slightly different answers, and `auto` differs by machine.
    """
    info = {"kind": llm.kind, "model": llm.model_id}
    server = cache_scope(llm).get("server")
    if server:
        info["server"] = server
    choice = getattr(llm, "dtype_choice", None)
    if choice is not None:
        info.update(dtype=choice.dtype, dtype_reason=choice.reason)
    return info


def generate_with_progress(
    llm: LLM,
    requests: Sequence[GenerationRequest],
    progress: Callable[[int], None] | None,
) -> list[Completion]:
    """Call `generate`, passing a progress callback only to backends that take one."""
    if progress is not None and "progress" in inspect.signature(llm.generate).parameters:
        return llm.generate(requests, progress=progress)  # type: ignore[call-arg]
    out = llm.generate(requests)
    if progress is not None:
        progress(len(requests))
    return out


def token_share(total: int, n: int, index: int) -> int:
    """Part `index` of `total` tokens split over `n` parts; the first takes the
    remainder, so the parts add up to the total."""
    return total // n + (total % n if index == 0 else 0)


def soft_prompt_generate(
    llm: object, soft_prompts: torch.Tensor, text: str, max_tokens: int
) -> list[Completion]:
    """One Completion per soft prompt (row of `soft_prompts`): InstructZero's writer.

    The layers (journal, meter, shared cache) implement `soft_prompt_generate`, so
    these calls are cached, budgeted and replayed like any other; a local backend
    has `generate_from_soft_prompts`, one greedy batch whose token counts are split
    over its rows here (layers cache and charge rows one by one).
    """
    layer = getattr(llm, "soft_prompt_generate", None)
    if layer is not None:
        return list(layer(soft_prompts, text, max_tokens))
    batch: Completion = llm.generate_from_soft_prompts(  # type: ignore[attr-defined]
        soft_prompts, text, max_tokens=max_tokens
    )
    n = max(1, len(batch.texts))
    return [
        Completion(
            texts=[row],
            prompt_tokens=token_share(batch.prompt_tokens, n, i),
            completion_tokens=token_share(batch.completion_tokens, n, i),
            cached=batch.cached,
        )
        for i, row in enumerate(batch.texts)
    ]
