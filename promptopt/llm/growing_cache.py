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

    _key_buffer: torch.Tensor | None = None
    _value_buffer: torch.Tensor | None = None
    _keys_view: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        length = self.keys.shape[-2] if self.keys.numel() else 0
        if (
            self._key_buffer is None
            or self.keys is not self._keys_view
            or length + new > self._key_buffer.shape[-2]
        ):
            self._reallocate(key_states, value_states, length + new + GROW_COLUMNS)
        key_buffer, value_buffer = self._key_buffer, self._value_buffer
        key_buffer[:, :, length : length + new] = key_states  # type: ignore[index]
        value_buffer[:, :, length : length + new] = value_states  # type: ignore[index]
        self.keys = self._keys_view = key_buffer[:, :, : length + new]  # type: ignore[index]
        self.values = value_buffer[:, :, : length + new]  # type: ignore[index]
        return self.keys, self.values

    def _reallocate(
        self, key_states: torch.Tensor, value_states: torch.Tensor, columns: int
    ) -> None:
        """New buffers of `columns` columns holding the current keys and values."""
        length = self.keys.shape[-2] if self.keys.numel() else 0
        key_buffer = key_states.new_empty((*key_states.shape[:-2], columns, key_states.shape[-1]))
        value_buffer = value_states.new_empty(
            (*value_states.shape[:-2], columns, value_states.shape[-1])
        )
        if length:
            key_buffer[:, :, :length] = self.keys
            value_buffer[:, :, :length] = self.values
        self._key_buffer, self._value_buffer = key_buffer, value_buffer


def grow_in_place(cache: Cache) -> None:
    """Make the plain dynamic layers of `cache` growing ones (same tensors, same state)."""
    for layer in getattr(cache, "layers", []):
        if type(layer) is DynamicLayer:
            layer.__class__ = GrowingLayer


def is_dynamic(layer: object) -> bool:
    """A plain dynamic layer, growing or not: rows of such caches can be joined."""
    return type(layer) in (DynamicLayer, GrowingLayer)
