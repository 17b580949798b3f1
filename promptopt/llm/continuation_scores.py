"""Log-probabilities of continuations, with each context computed once.

Scoring labels is how classification tasks are evaluated: the same context
(instruction, demonstrations, input) is followed by every label. Running
context + label as one row per label would compute the context once per label;
here a batch of contexts runs once, keeping its key/value cache, the first
token of every continuation is read off the context's last position, and only
continuations longer than one token take a second, short pass over that cache.
With k labels that divides the work by about k.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache

from promptopt.llm.prefill import cache_argument

# Token ids: a context, and the continuations scored after it.
Ids = list[int]


def score_continuations(
    model: torch.nn.Module,
    contexts: Sequence[Ids],
    continuations: Sequence[Sequence[Ids]],
    pad_id: int,
    device: torch.device | str,
) -> list[list[float]]:
    """Sum of log p(continuation tokens | context) for each context's continuations.

    Contexts are right-padded, so their positions are the natural ones; the
    second pass places the continuation tokens right after each context with
    explicit position ids and masks the padding in between.
    """
    if any(not context for context in contexts):
        raise ValueError("every context needs at least one token to condition on")
    width = max(len(context) for context in contexts)
    ids = torch.full((len(contexts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(contexts), width), dtype=torch.long)
    for b, context in enumerate(contexts):
        ids[b, : len(context)] = torch.tensor(context)
        mask[b, : len(context)] = 1
    last = sorted({len(context) - 1 for context in contexts})
    column = {position: k for k, position in enumerate(last)}
    longer = [
        (b, j) for b, conts in enumerate(continuations) for j, c in enumerate(conts) if len(c) > 1
    ]
    cache = DynamicCache() if longer else None  # one-token labels need no second pass
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        use_cache=cache is not None,
        logits_to_keep=torch.tensor(last, device=device),
        **({cache_argument(model): cache} if cache is not None else {}),
    )
    first = torch.log_softmax(out.logits.float(), dim=-1)
    scores = [
        [float(first[b, column[len(context) - 1], cont[0]]) if cont else 0.0 for cont in conts]
        for b, (context, conts) in enumerate(zip(contexts, continuations, strict=True))
    ]
    if cache is not None:
        rows = [(b, contexts[b], continuations[b][j]) for b, j in longer]
        later = _later_tokens(model, cache, mask, rows, pad_id, device)
        for (b, j), value in zip(longer, later, strict=True):
            scores[b][j] += value
    return scores


def _later_tokens(
    model: torch.nn.Module,
    cache: DynamicCache,
    context_mask: torch.Tensor,
    rows: list[tuple[int, Ids, Ids]],
    pad_id: int,
    device: torch.device | str,
) -> list[float]:
    """Log-probability of tokens 2.. of each row's continuation, one row per
    (context index, context, continuation), over its context's cache."""
    width = context_mask.shape[1]
    index = torch.tensor([b for b, _, _ in rows])
    cache.batch_select_indices(index.to(device))
    feeds = [continuation[:-1] for _, _, continuation in rows]  # each predicts the next
    steps = max(len(feed) for feed in feeds)
    ids = torch.full((len(rows), steps), pad_id, dtype=torch.long)
    feed_mask = torch.zeros((len(rows), steps), dtype=torch.long)
    positions = torch.zeros((len(rows), steps), dtype=torch.long)
    for i, ((_, context, _), feed) in enumerate(zip(rows, feeds, strict=True)):
        ids[i, : len(feed)] = torch.tensor(feed)
        feed_mask[i, : len(feed)] = 1
        positions[i] = torch.arange(len(context), len(context) + steps)
    logits = model(
        input_ids=ids.to(device),
        attention_mask=torch.cat([context_mask[index], feed_mask], dim=1).to(device),
        position_ids=positions.to(device),
        **{cache_argument(model): cache},
        cache_position=torch.arange(width, width + steps, device=device),
        use_cache=True,
    ).logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    values = []
    for i, (_, _, continuation) in enumerate(rows):
        targets = torch.tensor(continuation[1:])
        values.append(float(logp[i, torch.arange(len(targets)), targets].sum()))
    return values
