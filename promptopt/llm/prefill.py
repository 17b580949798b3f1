"""Prefilling prompts for the step loop of `promptopt.llm.decoding`.

Apart from the loop because it is its own saving: prompts let in together that
share a long prefix (one candidate's instruction and demonstrations, asked on
many examples) compute that prefix once, and each prompt's cache is copied to its
samples' rows instead of prefilling every sample.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from transformers import (
    Cache,
    DynamicCache,
    GenerationConfig,
    LogitsProcessorList,
    StoppingCriteriaList,
)
from transformers.generation.stopping_criteria import MaxLengthCriteria

from promptopt.llm.decoding import Prefilled, join, select_rows

MIN_SHARED_PREFIX = 32
"""Prompts let in together that share at least this many leading tokens (the
instruction and demonstrations of one candidate prompt, asked on many examples)
prefill that prefix once: on a CPU prefill costs about as much per token as
decoding one row, and a prompt with four worked gsm8k demonstrations is ~600
tokens before its question."""

GenerateFn = Callable[[torch.Tensor, torch.Tensor, Cache | None], Prefilled]
"""`generate(custom_generate=prefill_rows)` on ids, their mask and an optional
cache holding their first columns."""


def prefill_rows(
    model: Any,
    input_ids: torch.Tensor,
    logits_processor: LogitsProcessorList,
    stopping_criteria: StoppingCriteriaList,
    generation_config: GenerationConfig,
    samples: int = 1,
    **model_kwargs: Any,
) -> Prefilled:
    """For `generate(custom_generate=...)`: prefill the prompts once and copy each
    prompt's cache to its `samples` rows (prompt-major), instead of prefilling
    each sample's copy of the prompt as `num_return_sequences` does. With a cache
    of a shared prefix passed in (`prefill_prompts`), only the rest is computed."""
    cache = next((v for v in model_kwargs.values() if isinstance(v, Cache)), None)
    cached = cache.get_seq_length() if cache is not None else 0
    uncached = {"next_sequence_length": input_ids.shape[1] - cached} if cached else {}
    model_inputs = model.prepare_inputs_for_generation(
        input_ids, is_first_iteration=True, **uncached, **model_kwargs
    )
    outputs = model(**model_inputs, return_dict=True)
    model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs)
    logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32, device=input_ids.device)
    del outputs
    if samples > 1:
        rows = input_ids.shape[0]
        input_ids = input_ids.repeat_interleave(samples, dim=0)
        logits = logits.repeat_interleave(samples, dim=0)
        model_kwargs = select_rows(model_kwargs, rows, repeat=samples)
    return Prefilled(
        model,
        input_ids,
        logits,
        model_kwargs,
        logits_processor,
        StoppingCriteriaList(c for c in stopping_criteria if not isinstance(c, MaxLengthCriteria)),
        generation_config,
    )


def prefill_prompts(
    model: Any, ids: list[list[int]], pad_token_id: int, generate: GenerateFn
) -> tuple[list[int], Prefilled]:
    """Prefill token-id prompts (in queue order, so prompts sharing a prefix are
    neighbours); returns the order of their rows (indices into `ids`) and the rows.

    Runs of prompts that share `MIN_SHARED_PREFIX` leading tokens get that prefix
    computed once and copied to each of their rows, which then hold
    [prefix][padding][rest]; the other prompts are left-padded as `generate` pads
    them. The groups' rows are then joined into one batch.
    """
    groups = prefix_groups(ids) if _can_share(model) else [(list(range(len(ids))), 0)]
    order: list[int] = []
    state: Prefilled | None = None
    for members, shared in groups:
        rows = [ids[m] for m in members]
        if shared:
            cache = prefix_cache(model, rows[0][:shared], len(rows))
            input_ids, mask = _pad_middle(rows, shared, pad_token_id)
            group = generate(input_ids, mask, cache)
        else:
            input_ids, mask = _pad_middle(rows, 0, pad_token_id)
            group = generate(input_ids, mask, None)
        state = group if state is None else join(state, group)
        order += members
    assert state is not None
    return order, state


def prefix_groups(ids: list[list[int]]) -> list[tuple[list[int], int]]:
    """(members, shared prefix length) for runs of neighbours sharing at least
    MIN_SHARED_PREFIX tokens (each keeping one token of its own); everything
    else in one group with no shared prefix (first, so a batch without shared
    prefixes is exactly the left-padded batch `generate` would make)."""
    runs: list[list[int]] = []
    for i, row in enumerate(ids):
        if runs and _common(ids[runs[-1][0]], row) >= MIN_SHARED_PREFIX:
            runs[-1].append(i)
        else:
            runs.append([i])
    plain = [i for run in runs if len(run) == 1 for i in run]
    groups: list[tuple[list[int], int]] = [(plain, 0)] if plain else []
    for run in runs:
        if len(run) > 1:
            shared = min(
                min(_common(ids[run[0]], ids[m]) for m in run[1:]),
                min(len(ids[m]) for m in run) - 1,
            )
            groups.append((run, shared) if shared >= MIN_SHARED_PREFIX else (run, 0))
    return groups


def prefix_cache(model: Any, prefix: list[int], rows: int) -> Cache:
    """The cache of `prefix` computed once, copied to `rows` rows."""
    cache = DynamicCache()
    device = next(model.parameters()).device
    model(
        input_ids=torch.tensor([prefix], device=device),
        use_cache=True,
        logits_to_keep=1,
        **{cache_argument(model): cache},
    )
    cache.batch_repeat_interleave(rows)
    return cache


def cache_argument(model: Any) -> str:
    """What this transformers version calls the cache argument (`cache` from 5.2x)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _can_share(model: Any) -> bool:
    """Shared prefixes need plain full-attention layers (no sliding windows)."""
    config = model.config
    layer_types = getattr(config, "layer_types", None) or []
    return not getattr(config, "sliding_window", None) and all(
        t == "full_attention" for t in layer_types
    )


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _pad_middle(
    rows: list[list[int]], shared: int, pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and mask of rows laid out [shared prefix][padding][rest] (left padding
    when nothing is shared)."""
    width = max(len(r) for r in rows)
    ids, mask = [], []
    for r in rows:
        gap = width - len(r)
        ids.append(r[:shared] + [pad_token_id] * gap + r[shared:])
        mask.append([1] * shared + [0] * gap + [1] * (len(r) - shared))
    return torch.tensor(ids), torch.tensor(mask)
