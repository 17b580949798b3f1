"""A key/value cache layer that grows in place instead of being copied every step.

transformers' `DynamicLayer` appends a step's keys and values with `torch.cat`,
which copies the whole cache of every layer at every step: on a CPU, with
gsm8k prompts that carry worked demonstrations (~700 tokens), those copies were
16% of a decoding step (py-spy, main job under the AVX2 cap). `GrowingLayer`
keeps each layer in a buffer with `GROW_COLUMNS` spare columns and writes a
step into the next free column; `keys` and `values` are views of the buffer's
filled part, so attention reads exactly the numbers it read before (the greedy
answers of `bench/decoding.py`'s workloads are identical). Whatever replaces
`keys` or `values` from outside (joining rows, dropping finished rows, trimming
padding: `promptopt.llm.decoding`) leaves a plain tensor behind; the next
`update` sees that and copies it into a new buffer, once.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Cache
from transformers.cache_utils import DynamicLayer

GROW_COLUMNS = 64
"""Spare columns allocated with each buffer: one copy per this many steps."""


class GrowingLayer(DynamicLayer):
    """A `DynamicLayer` whose `update` writes into a preallocated buffer."""

    _buffers: tuple[torch.Tensor, torch.Tensor] | None = None
    _views: tuple[torch.Tensor, torch.Tensor] | None = None
    """The `keys` and `values` this layer last handed out: anything else in their
    place was put there from outside, and the buffers no longer hold it."""

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.keys.shape[-2] if self.keys.numel() else 0
        end = length + key_states.shape[-2]
        buffers = self._buffers
        if (
            buffers is None
            or self._views is None
            or self.keys is not self._views[0]
            or self.values is not self._views[1]
            or end > buffers[0].shape[-2]
        ):
            buffers = self._buffers = (
                _buffer(self.keys, key_states, length, end + GROW_COLUMNS),
                _buffer(self.values, value_states, length, end + GROW_COLUMNS),
            )
        buffers[0][:, :, length:end] = key_states
        buffers[1][:, :, length:end] = value_states
        self.keys, self.values = buffers[0][:, :, :end], buffers[1][:, :, :end]
        self._views = (self.keys, self.values)
        return self.keys, self.values


def _buffer(held: torch.Tensor, new: torch.Tensor, length: int, columns: int) -> torch.Tensor:
    """A buffer of `columns` columns shaped like `new`, holding the `length` columns held."""
    buffer = new.new_empty((*new.shape[:-2], columns, new.shape[-1]))
    if length:
        buffer[:, :, :length] = held
    return buffer


def grow_in_place(cache: Cache) -> None:
    """Make the plain dynamic layers of `cache` growing ones (same tensors, same state)."""
    for layer in getattr(cache, "layers", []):
        if type(layer) is DynamicLayer:
            layer.__class__ = GrowingLayer


def is_dynamic(layer: object) -> bool:
    """A plain dynamic layer, growing or not: rows of such caches can be joined."""
    return type(layer) in (DynamicLayer, GrowingLayer)
