"""GrowingLayer holds exactly what DynamicLayer's concatenation would."""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from promptopt.llm.growing_cache import GROW_COLUMNS, GrowingLayer, grow_in_place, is_dynamic


def states(rows: int, columns: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shape = (rows, 3, columns, 8)
    return torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)


def pair() -> tuple[DynamicLayer, GrowingLayer]:
    return DynamicLayer(), GrowingLayer()


def same(plain: DynamicLayer, growing: GrowingLayer) -> bool:
    return torch.equal(plain.keys, growing.keys) and torch.equal(plain.values, growing.values)


def test_steps_past_the_spare_columns_hold_what_concatenation_holds() -> None:
    plain, growing = pair()
    for layer in (plain, growing):
        layer.update(*states(4, 20, seed=0))
    for step in range(GROW_COLUMNS * 2 + 5):
        new = states(4, 1, seed=step + 1)
        returned = growing.update(*new)
        plain.update(*new)
        assert torch.equal(returned[0], plain.keys) and torch.equal(returned[1], plain.values)
    assert growing.keys.shape == (4, 3, 20 + GROW_COLUMNS * 2 + 5, 8)


def test_steps_write_in_place_until_the_buffer_is_full() -> None:
    growing = GrowingLayer()
    growing.update(*states(2, 5, seed=0))
    first = growing.keys.data_ptr()
    for step in range(GROW_COLUMNS):
        growing.update(*states(2, 1, seed=step + 1))
        assert growing.keys.data_ptr() == first
    growing.update(*states(2, 1, seed=99))
    assert growing.keys.data_ptr() != first  # a new, larger buffer


def test_rows_dropped_or_columns_cut_from_outside_are_kept_on_the_next_step() -> None:
    plain, growing = pair()
    for layer in (plain, growing):
        layer.update(*states(4, 10, seed=0))
        layer.update(*states(4, 1, seed=1))
        layer.batch_select_indices(torch.tensor([0, 2, 3]))
        layer.keys, layer.values = layer.keys[:, :, 3:], layer.values[:, :, 3:]
    for step in range(3):
        new = states(3, 1, seed=10 + step)
        plain.update(*new)
        growing.update(*new)
    assert same(plain, growing)


def test_a_cache_grows_in_place_and_still_counts_as_joinable() -> None:
    cache = DynamicCache()
    cache.update(*states(2, 4, seed=0), layer_idx=0)
    keys = cache.layers[0].keys
    grow_in_place(cache)
    layer = cache.layers[0]
    assert type(layer) is GrowingLayer and layer.keys is keys and is_dynamic(layer)
    cache.update(*states(2, 1, seed=1), layer_idx=0)
    assert cache.get_seq_length() == 5


def test_values_replaced_alone_from_outside_are_kept_on_the_next_step() -> None:
    plain, growing = pair()
    for layer in (plain, growing):
        layer.update(*states(2, 6, seed=0))
        layer.values = layer.values * 2
    new = states(2, 1, seed=1)
    plain.update(*new)
    growing.update(*new)
    assert same(plain, growing)
