"""InstructZero's kernel and BO loop, on synthetic objectives (no model)."""

from __future__ import annotations

import statistics

import pytest
import torch
from gpytorch.kernels import MaternKernel

from promptopt.strategies.instructzero_bo import (
    InstructionCoupledKernel,
    Observations,
    project,
    projection_matrix,
    propose,
    score_similarity,
    sobol_points,
    uniform_points,
)


def make_kernel(m: int = 6, d: int = 3, n: int = 8, seed: int = 0) -> InstructionCoupledKernel:
    g = torch.Generator().manual_seed(seed)
    anchors = torch.rand(m, d, generator=g, dtype=torch.float64) * 2 - 1
    scores = (torch.rand(m, n, generator=g, dtype=torch.float64) > 0.5).to(torch.float64)
    base = MaternKernel(nu=2.5, ard_num_dims=d).to(torch.float64)
    return InstructionCoupledKernel(base, anchors, score_similarity(scores))


def test_score_similarity_is_psd_and_one_on_equal_vectors() -> None:
    scores = torch.tensor([[1.0, 0, 1, 0], [1.0, 0, 1, 0], [0.0, 1, 0, 1]], dtype=torch.float64)
    sim = score_similarity(scores)
    assert sim[0, 1] == pytest.approx(1.0) and sim[0, 2] < 0.5
    assert torch.linalg.eigvalsh(sim).min() > -1e-9


def test_coupled_kernel_is_symmetric_psd_with_right_shapes() -> None:
    kernel = make_kernel()
    x = torch.rand(10, 3, dtype=torch.float64) * 2 - 1
    k = kernel(x, x).to_dense()
    assert k.shape == (10, 10)
    assert torch.allclose(k, k.T, atol=1e-8)
    assert torch.linalg.eigvalsh(k).min() > -1e-6
    y = torch.rand(4, 3, dtype=torch.float64)
    assert kernel(x, y).to_dense().shape == (10, 4)
    assert kernel(x, x, diag=True).shape == (10,)
    batched = torch.rand(5, 2, 3, dtype=torch.float64)
    assert kernel(batched, batched).to_dense().shape == (5, 2, 2)


def test_coupled_kernel_equals_similarity_on_anchors() -> None:
    kernel = make_kernel()
    k = kernel(kernel.anchors, kernel.anchors).to_dense()
    assert torch.allclose(k, kernel.similarity, atol=1e-3)


def test_projection_shapes_and_scale() -> None:
    matrix = projection_matrix(d=10, n_tokens=5, hidden=64, embedding_std=0.1, scale=1.0, seed=0)
    assert matrix.shape == (5 * 64, 10)
    z = uniform_points(200, 10, seed=1)
    soft = project(z, matrix, n_tokens=5)
    assert soft.shape == (200, 5, 64) and soft.dtype == torch.float32
    assert float(soft.std()) == pytest.approx(0.1, rel=0.15)
    again = projection_matrix(d=10, n_tokens=5, hidden=64, embedding_std=0.1, scale=1.0, seed=0)
    assert torch.equal(matrix, again)


GRID = 10


def synthetic_instruction(z: torch.Tensor) -> int:
    """A 'writer': which of 100 instructions a soft prompt produces (cells of a grid)."""
    cell = ((z[:2] + 1) / 2 * GRID).clamp(0, GRID - 1e-6).floor().to(torch.int64)
    return int(cell[0] * GRID + cell[1])


def synthetic_scores(instruction: int, n: int = 12) -> torch.Tensor:
    """Instruction quality peaks at one grid cell; scores per example are 0/1."""
    row, col = divmod(instruction, GRID)
    quality = max(0.0, 1.0 - 0.1 * (abs(row - 7) + abs(col - 2)))
    correct = round(quality * n)
    return torch.tensor([1.0] * correct + [0.0] * (n - correct), dtype=torch.float64)


def run(method: str, seed: int, evaluations: int = 14, initial: int = 6, d: int = 4) -> float:
    z = sobol_points(initial, d, seed) if method != "random" else uniform_points(initial, d, seed)
    scores = torch.stack([synthetic_scores(synthetic_instruction(p)) for p in z])
    while z.shape[0] < evaluations:
        obs = Observations(z=z, y=scores.mean(dim=1), scores=scores)
        if method == "random":
            new = uniform_points(2, d, seed * 1000 + z.shape[0])
        else:
            new = propose(
                obs,
                kernel=method,
                q=2,
                seed=seed * 1000 + z.shape[0],
                num_restarts=2,
                raw_samples=64,
            )
        z = torch.cat([z, new])
        scores = torch.cat(
            [scores, *[synthetic_scores(synthetic_instruction(p))[None] for p in new]]
        )
    return float(scores.mean(dim=1).max())


def test_bo_beats_random_search_at_equal_evaluations() -> None:
    seeds = range(3)
    random_best = statistics.mean(run("random", s) for s in seeds)
    coupled_best = statistics.mean(run("coupled", s) for s in seeds)
    assert coupled_best > random_best


def test_propose_passes_the_acquisition_knobs_to_the_optimizer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import promptopt.strategies.instructzero_bo as bayesopt

    seen: dict[str, int] = {}
    real = bayesopt.optimize_acqf

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.update(num_restarts=kwargs["num_restarts"], raw_samples=kwargs["raw_samples"])
        return real(*args, **kwargs)

    monkeypatch.setattr(bayesopt, "optimize_acqf", spy)
    z = sobol_points(6, 3, seed=0)
    scores = torch.stack([synthetic_scores(synthetic_instruction(p)) for p in z])
    obs = Observations(z=z, y=scores.mean(dim=1), scores=scores)
    new = propose(obs, kernel="matern", q=1, seed=0, num_restarts=3, raw_samples=16)
    assert seen == {"num_restarts": 3, "raw_samples": 16} and new.shape == (1, 3)


def test_propose_or_explore_falls_back_to_uniform_points_when_bo_breaks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botorch.exceptions.errors import OptimizationGradientError

    import promptopt.strategies.instructzero_bo as bayesopt

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OptimizationGradientError("all gradients are NaN", current_x=None)

    z = sobol_points(6, 3, seed=0)
    scores = torch.zeros(6, 4, dtype=torch.float64)  # every instruction scored 0: flat
    obs = Observations(z=z, y=scores.mean(dim=1), scores=scores)
    points, failure = bayesopt.propose_or_explore(obs, "coupled", q=2, seed=5, raw_samples=16)
    assert failure is None and points.shape == (2, 3)  # a flat objective alone is fine
    monkeypatch.setattr(bayesopt, "optimize_acqf", broken)
    points, failure = bayesopt.propose_or_explore(obs, "coupled", q=2, seed=5)
    assert failure is not None and failure.startswith("OptimizationGradientError")
    assert points.shape == (2, 3) and bool((points.abs() <= 1).all())
    assert not torch.equal(points, uniform_points(2, 3, seed=5))  # not the random baseline's
