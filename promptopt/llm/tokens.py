"""Token estimates made before a request is sent: what budgets and dry-runs project.

A local transformers backend (it has `render` and `tokenizer`) is counted
exactly: the prompt is rendered through the chat template and tokenized the way
the backend will. Other backends (API servers, test fakes) get a conservative
character estimate, CHARS_PER_TOKEN characters per token plus MESSAGE_OVERHEAD
tokens per chat message; English BPE tokenizers average about 4 characters per
token, so 3 over-estimates on ordinary text.

A completion is bounded by `max_tokens` per sample, so `projected_tokens` is an
upper bound whenever the prompt estimate is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from promptopt.core.domain import GenerationRequest, LogprobRequest

CHARS_PER_TOKEN = 3
MESSAGE_OVERHEAD = 4


def estimate_text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _backend(llm: Any) -> Any:
    while not hasattr(llm, "tokenizer") and hasattr(llm, "inner"):
        llm = llm.inner  # a cache layer in front of the backend: count with the backend
    return llm


def count_text_tokens(llm: Any, text: str) -> int:
    """Tokens of a plain text: the local model's tokenizer if there is one, else an estimate."""
    tokenizer = getattr(_backend(llm), "tokenizer", None)
    if tokenizer is not None:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return estimate_text_tokens(text)


def estimate_prompt_tokens(llm: Any, request: GenerationRequest | LogprobRequest) -> int:
    """Prompt tokens of one sample of `request` on `llm` (exact for local hf models)."""
    llm = _backend(llm)
    render = getattr(llm, "render", None)
    tokenizer = getattr(llm, "tokenizer", None)
    if render is not None and tokenizer is not None:
        text = render(request.messages, request.text)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    if request.text is not None:
        return estimate_text_tokens(request.text)
    return sum(estimate_text_tokens(m.content) + MESSAGE_OVERHEAD for m in request.messages)


def projected_tokens(llm: Any, requests: Sequence[GenerationRequest]) -> int:
    """Tokens a generation batch can charge at most: (prompt + max_tokens) x n each."""
    return sum((estimate_prompt_tokens(llm, r) + r.max_tokens) * r.n for r in requests)


def logprob_tokens(llm: Any, requests: Sequence[LogprobRequest], scope: str) -> int:
    """Tokens a batch of log-probability requests makes the model read.

    Full scoring reads the context once per continuation, with the continuation
    (one prompt each, as the completions endpoint scores them); first-token
    scoring reads the context once and writes one token.
    """
    total = 0
    for request in requests:
        context = estimate_prompt_tokens(llm, request)
        if scope == "first_token":
            total += context + 1
        else:
            total += sum(context + count_text_tokens(llm, c) for c in request.continuations)
    return total
