"""Continuous batching for a transformers causal LM on a CPU.

A CPU decoding step of a small model costs nearly as much for 4 rows as for 16
(the weights are read once per step either way), so what a batch costs is its
number of steps. Static batches run until their longest row ends, and answers
of small models have a long tail: on gsm8k the median answer is ~40 tokens while
one row in twelve runs to `max_tokens`, so most of a batch's steps decode a few
stragglers. Here a row that meets EOS, a stop string or its `max_tokens` leaves
the batch and waiting prompts take its place: the batch stays full until the
queue is empty, and then shrinks (to multiples of `ROW_ALIGN` rows).

transformers prepares each prefill (processors, stopping criteria, cache, mask,
positions) through `generate(custom_generate=prefill_rows)` (in
`promptopt.llm.prefill`), so whatever its version needs is built by transformers
itself; this module only runs the step
loop and joins the caches of rows prefilled at different times (left-padded to a
common width, as `generate` pads a batch).

Outputs. A batch that gets no new rows computes exactly what transformers'
`generate` computes for it. Rows that join a running batch change the batch's
shape, which can move the low-order bits of every row's logits (CPU kernels
round differently for different row counts and widths), so a greedy answer can
differ from a static batch's in a near-tie: each is the model's greedy answer,
and a given list of requests always gives the same outputs. Samples come from
one seeded generator per output row (`row_seeds`), so a request's samples do not
depend on what else is decoded with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import (
    Cache,
    GenerationConfig,
    LogitsProcessorList,
    StoppingCriteriaList,
)

from promptopt.llm.growing_cache import grow_in_place, is_dynamic

ROW_ALIGN = 4
"""Batches shrink only to multiples of this many rows once the queue is empty,
and new rows are let in when at least this many are free. CPU matrix kernels
treat a remainder of rows that does not fill their tile differently (measured
against a batch of 16: a float32 row's last bits changed at 1-3 rows), and a
step costs about the same for 1 row as for 4, so rows this still computes in
vain cost little."""

TRIM_COLUMNS = 32
"""Left columns that every row masks are cut from the cache once this many have
gathered: rows that joined late would otherwise attend over the padding of rows
long gone."""


@dataclass
class Prefilled:
    """Rows ready for their next token: what the step loop carries between steps."""

    model: Any
    input_ids: torch.Tensor
    logits: torch.Tensor
    model_kwargs: dict[str, Any]
    logits_processor: LogitsProcessorList
    stopping_criteria: StoppingCriteriaList
    generation_config: GenerationConfig


@dataclass
class RowQueue:
    """Prompts waiting for rows, in the order they are let in."""

    prompts: int
    samples: int
    prefill: Callable[[list[int]], tuple[list[int], Prefilled]]
    """Prefills the prompts at the given queue positions; returns them in the
    order of the rows it made, and the rows."""
    next_prompt: int = 0

    def waiting(self) -> int:
        return self.prompts - self.next_prompt

    def take(self, free_rows: int) -> tuple[list[int], Prefilled] | None:
        """Prefill as many waiting prompts as `free_rows` rows hold (all their samples)."""
        count = min(self.waiting(), free_rows // self.samples)
        if count <= 0:
            return None
        positions = list(range(self.next_prompt, self.next_prompt + count))
        self.next_prompt += count
        return self.prefill(positions)


@dataclass
class _Batch:
    state: Prefilled
    rows: list[int]  # batch row -> output row
    tokens: list[list[int]] = field(default_factory=list)  # new tokens of each batch row
    running: list[bool] = field(default_factory=list)


def decode_continuously(
    queue: RowQueue,
    *,
    capacity: int,
    max_tokens: int,
    pad_token_id: int | None,
    row_seeds: Sequence[int],
    on_finished: Callable[[int], None] | None = None,
    refill: bool = True,
) -> list[list[int]]:
    """New token ids of every output row (prompt-major: prompt i's samples are rows
    i*n to i*n+n-1), each ending at its EOS or stop string or at `max_tokens`.

    `capacity` rows decode at once; `row_seeds` (one per output row) seed the
    sampling of each row; `on_finished(prompt)` is called once a prompt's samples
    are all done. With `refill=False`, rows are let in only when the batch is
    empty (static batches of the same rows).
    """
    n = queue.samples
    done: list[list[int] | None] = [None] * (queue.prompts * n)
    left = [n] * queue.prompts
    generators = [torch.Generator().manual_seed(int(s)) for s in row_seeds]
    batch: _Batch | None = None
    while True:
        free = capacity - (sum(batch.running) if batch else 0)
        if batch is None or (refill and free >= min(max(ROW_ALIGN, n), capacity)):
            taken = queue.take(free)
            if taken is not None:
                batch = _admit(batch, *taken, samples=n)
                refill = refill and can_join(batch.state.model_kwargs)
        if batch is None:
            break
        state = batch.state
        scores = state.logits_processor(state.input_ids, state.logits)
        if state.generation_config.do_sample:
            next_tokens = _sample(scores, [generators[r] for r in batch.rows])
        else:
            next_tokens = torch.argmax(scores, dim=-1)
        running = torch.tensor(batch.running, device=next_tokens.device)
        if pad_token_id is not None:  # finished rows still in the batch decode padding
            next_tokens = torch.where(running, next_tokens, pad_token_id)
        state.input_ids = torch.cat([state.input_ids, next_tokens[:, None]], dim=-1)
        stopped = state.stopping_criteria(state.input_ids, scores).tolist()
        for row, token in enumerate(next_tokens.tolist()):
            if not batch.running[row]:
                continue
            batch.tokens[row].append(token)
            if stopped[row] or len(batch.tokens[row]) >= max_tokens:
                batch.running[row] = False
                out_row = batch.rows[row]
                done[out_row] = batch.tokens[row]
                prompt = out_row // n
                left[prompt] -= 1
                if left[prompt] == 0 and on_finished:
                    on_finished(prompt)
        if not any(batch.running):
            if queue.waiting() == 0:
                break
            batch = None
            continue
        batch = _shrink(batch, keep_spare=not (refill and queue.waiting()))
        _forward(batch.state)
    return [row if row is not None else [] for row in done]


def _sample(scores: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """One token per row, as `torch.multinomial` draws it (argmax of probs / an
    exponential draw), each row's draw from its own generator."""
    probs = torch.nn.functional.softmax(scores, dim=-1)
    draw = torch.stack(
        [
            torch.empty(probs.shape[1], dtype=probs.dtype).exponential_(1, generator=g)
            for g in generators
        ]
    ).to(probs.device)
    return torch.argmax(probs / draw, dim=-1)


def _forward(state: Prefilled) -> None:
    model = state.model
    model_inputs = model.prepare_inputs_for_generation(
        state.input_ids, next_sequence_length=1, **state.model_kwargs
    )
    outputs = model(**model_inputs, return_dict=True)
    state.model_kwargs = model._update_model_kwargs_for_generation(outputs, state.model_kwargs)
    state.logits = outputs.logits[:, -1].to(
        copy=True, dtype=torch.float32, device=state.input_ids.device
    )


def _admit(batch: _Batch | None, positions: list[int], new: Prefilled, samples: int) -> _Batch:
    """The batch with the rows of the prompts at `positions` joined (or a new batch)."""
    rows = [p * samples + s for p in positions for s in range(samples)]
    for value in new.model_kwargs.values():
        if isinstance(value, Cache):
            grow_in_place(value)
    if batch is None:
        return _Batch(new, rows, [[] for _ in rows], [True] * len(rows))
    batch = _shrink(batch, keep_spare=False)
    batch.state = join(batch.state, new)
    batch.rows += rows
    batch.tokens += [[] for _ in rows]
    batch.running += [True] * len(rows)
    return batch


def _shrink(batch: _Batch, keep_spare: bool) -> _Batch:
    """Drop finished rows (keeping some as padding to a multiple of ROW_ALIGN when
    `keep_spare`), then cut left columns no row attends to."""
    keep = _rows_to_keep(batch.running, keep_spare)
    if keep is not None:
        state = batch.state
        total = len(batch.running)
        state.input_ids = state.input_ids[keep]
        state.logits = state.logits[keep]
        state.model_kwargs = select_rows(state.model_kwargs, total, keep=torch.tensor(keep))
        batch.rows = [batch.rows[k] for k in keep]
        batch.tokens = [batch.tokens[k] for k in keep]
        batch.running = [batch.running[k] for k in keep]
    _trim_left(batch.state)
    return batch


def _rows_to_keep(running: list[bool], keep_spare: bool) -> list[int] | None:
    """Rows of the next, smaller batch (in their order), or None to keep the batch."""
    live = [k for k, r in enumerate(running) if r]
    size = -(-len(live) // ROW_ALIGN) * ROW_ALIGN if keep_spare else len(live)
    if size >= len(running):
        return None
    spare = [k for k, r in enumerate(running) if not r][: size - len(live)]
    return sorted(live + spare)


def select_rows(
    model_kwargs: dict[str, Any],
    rows: int,
    *,
    keep: torch.Tensor | None = None,
    repeat: int = 1,
) -> dict[str, Any]:
    """Keep the `keep` rows, or repeat each row `repeat` times, in every per-row
    input of the decoding loop (cache, mask, positions)."""
    selected: dict[str, Any] = {}
    for key, value in model_kwargs.items():
        if isinstance(value, Cache):
            if keep is not None:
                value.batch_select_indices(keep)
            else:
                value.batch_repeat_interleave(repeat)
        elif isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == rows:
            value = value[keep] if keep is not None else value.repeat_interleave(repeat, dim=0)
        selected[key] = value
    return selected


def can_join(model_kwargs: dict[str, Any]) -> bool:
    """Whether rows prefilled apart can share this kind of cache (plain dynamic layers)."""
    caches = [v for v in model_kwargs.values() if isinstance(v, Cache)]
    return len(caches) == 1 and all(
        is_dynamic(layer) for layer in getattr(caches[0], "layers", [None])
    )


def join(old: Prefilled, new: Prefilled) -> Prefilled:
    """One batch of both: every per-row tensor left-padded to the wider one's width
    (cache columns with zeros that the mask hides), rows of `new` after `old`'s."""
    for state in (old, new):
        _ensure_mask(state)
    width = max(old.input_ids.shape[1], new.input_ids.shape[1])
    pad = old.generation_config.pad_token_id
    pad = 0 if pad is None else int(pad)
    old.input_ids = torch.cat(
        [_pad_left(old.input_ids, width, pad), _pad_left(new.input_ids, width, pad)]
    )
    old.logits = torch.cat([old.logits, new.logits])
    rows_old, rows_new = old.logits.shape[0] - new.logits.shape[0], new.logits.shape[0]
    joined: dict[str, Any] = {}
    for key, value in old.model_kwargs.items():
        other = new.model_kwargs.get(key)
        if isinstance(value, Cache) and isinstance(other, Cache):
            _join_caches(value, other)
        elif (
            isinstance(value, torch.Tensor)
            and value.dim() == 2
            and value.shape[0] == rows_old
            and isinstance(other, torch.Tensor)
            and other.shape[0] == rows_new
        ):
            mask_width = max(value.shape[1], other.shape[1])
            value = torch.cat([_pad_left(value, mask_width, 0), _pad_left(other, mask_width, 0)])
        joined[key] = value
    old.model_kwargs = joined
    return old


def _ensure_mask(state: Prefilled) -> None:
    """`generate` leaves out the attention mask of a prefill without padding; joined
    rows need one (one column ahead of the ids: it covers the next token too)."""
    if state.model_kwargs.get("attention_mask") is None:
        rows, width = state.input_ids.shape
        state.model_kwargs["attention_mask"] = torch.ones(
            rows, width + 1, dtype=torch.long, device=state.input_ids.device
        )


def _join_caches(old: Cache, new: Cache) -> None:
    for layer, other in zip(old.layers, new.layers, strict=True):
        width = max(layer.keys.shape[-2], other.keys.shape[-2])
        layer.keys = torch.cat([_pad_left(layer.keys, width, 0), _pad_left(other.keys, width, 0)])
        layer.values = torch.cat(
            [_pad_left(layer.values, width, 0), _pad_left(other.values, width, 0)]
        )


def _pad_left(tensor: torch.Tensor, width: int, value: float) -> torch.Tensor:
    """Pad the sequence dimension (dim -1 for ids and masks, -2 for cache tensors)."""
    dim = -1 if tensor.dim() == 2 else -2
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    filler = torch.full(shape, value, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([filler, tensor], dim=dim)


def _trim_left(state: Prefilled) -> None:
    """Cut the left columns every row masks, once TRIM_COLUMNS of them gathered."""
    mask = state.model_kwargs.get("attention_mask")
    cache = next((v for v in state.model_kwargs.values() if isinstance(v, Cache)), None)
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or cache is None:
        return
    used = mask.any(dim=0).nonzero()
    if len(used) == 0:
        return
    cut = int(used[0])
    if cut < TRIM_COLUMNS or not can_join(state.model_kwargs):
        return
    # Column j of the ids, the mask and the cache is the same position (the mask
    # and, after a step, the ids have one more column: the token not yet cached).
    for key, value in state.model_kwargs.items():
        if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape == mask.shape:
            state.model_kwargs[key] = value[:, cut:]
    for layer in cache.layers:
        layer.keys = layer.keys[:, :, cut:]
        layer.values = layer.values[:, :, cut:]
    state.input_ids = state.input_ids[:, cut:]
