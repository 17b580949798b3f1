"""Reading log-probabilities out of OpenAI-compatible responses: a label's mass among
a chat reply's top first tokens, and a continuation's sum over echoed prompt tokens
(see the openai_compat module docstring for why each is needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from promptopt.core.errors import ModelError


def first_token_scores(
    top: Sequence[tuple[str, float]], continuations: Sequence[str]
) -> list[float]:
    """Each continuation's log-probability mass among the listed first tokens.

    A listed token counts for a continuation when, stripped and lower-cased, it
    is a non-empty prefix of it ("Pos", " positive" and "positive" all count for
    "positive"). A continuation no listed token begins gets a floor below every
    listed token: its true first-token probability is at most the smallest
    listed one.
    """
    if not top:
        raise ValueError("no top log-probabilities to read")
    floor = min(lp for _, lp in top) + math.log(0.5)
    scores = []
    for continuation in continuations:
        wanted = continuation.strip().lower()
        matching = [
            lp for token, lp in top if token.strip() and wanted.startswith(token.strip().lower())
        ]
        scores.append(_logsumexp(matching) if matching else floor)
    return scores


def _logsumexp(values: Sequence[float]) -> float:
    high = max(values)
    return high + math.log(sum(math.exp(v - high) for v in values))


def sum_continuation_logprobs(
    token_logprobs: Sequence[float | None],
    text_offsets: Sequence[int],
    start: int,
    end: int | None = None,
) -> float:
    """Sum the log-probabilities of the tokens that cover characters [start, end).

    Offsets are where each echoed token starts. `start` is where the continuation
    begins (the length of the context) and `end` where it stops (tokens from `end`
    on were generated, not echoed). A token that starts at or after `start`
    counts, and so does one that straddles `start` (context "... is " with
    continuation "Paris" is tokenized "... is" + " Paris"). A None log-probability
    (the first prompt token has no left context) counts as 0.0.
    """
    if len(token_logprobs) != len(text_offsets):
        raise ModelError(
            f"the server returned {len(token_logprobs)} token log-probabilities but "
            f"{len(text_offsets)} text offsets: it does not support echo with logprobs"
        )
    total = 0.0
    count = len(text_offsets)
    for i, (logprob, offset) in enumerate(zip(token_logprobs, text_offsets, strict=True)):
        if end is not None and offset >= end:
            continue
        following = text_offsets[i + 1] if i + 1 < count else None
        straddles = following is not None and offset < start < following
        if (offset >= start or straddles) and logprob is not None:
            total += float(logprob)
    return total


def offsets_from_tokens(tokens: Sequence[str]) -> list[int]:
    """Character offsets of each token, for servers that return tokens but no offsets."""
    offsets, position = [], 0
    for token in tokens:
        offsets.append(position)
        position += len(token)
    return offsets
