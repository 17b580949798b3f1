"""Bayesian optimization over soft prompts (botorch), with InstructZero's kernel.

InstructZero (Chen et al. 2023) searches a low-dimensional soft prompt z that
an open model turns into an instruction. Two soft prompts far apart in z can
write equally good instructions, so a plain kernel on z misleads the GP. The
instruction-coupled kernel fixes this: on the observed points it equals a
similarity between the generated instructions (here: of their per-example
score vectors), and it extends to new z through the latent kernel:

    k~(z, z') = l(z)^T K^-1 S K^-1 l(z')

where l(z) = [k(z, z_1) .. k(z, z_m)] against the m observed soft prompts,
K = [k(z_i, z_j)] and S = [s(v_i, v_j)]. At observed points k~ = S; since S is
positive semi-definite, so is k~.

Shapes are written as (rows, cols); all tensors are float64, as botorch wants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from botorch.acquisition.logei import qLogExpectedImprovement
from botorch.exceptions.errors import BotorchError, ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from botorch.optim import optimize_acqf
from gpytorch.kernels import Kernel, MaternKernel, ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood

JITTER = 1e-6
EXPLORE_SEED_OFFSET = 7_919_000


def score_similarity(scores: torch.Tensor) -> torch.Tensor:
    """S (m, m) from per-example score vectors (m, n): an RBF on their distance.

    Identical score vectors give 1; vectors differing on a quarter of the
    examples give exp(-0.5). An RBF Gram matrix is positive semi-definite.
    """
    n = max(1, scores.shape[1])
    sq_dist = torch.cdist(scores, scores).pow(2)
    return torch.exp(-sq_dist / (2 * (n / 4)))


class InstructionCoupledKernel(Kernel):
    """k~(x1, x2) = l(x1)^T K^-1 S K^-1 l(x2) around fixed anchors (the observed z)."""

    def __init__(self, base: Kernel, anchors: torch.Tensor, similarity: torch.Tensor) -> None:
        super().__init__()
        if similarity.shape != (anchors.shape[0], anchors.shape[0]):
            raise ValueError("similarity must be (m, m) for m anchors")
        self.base = base
        self.register_buffer("anchors", anchors)
        self.register_buffer("similarity", similarity)

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params: object
    ) -> torch.Tensor:
        m = self.anchors.shape[0]
        eye = torch.eye(m, dtype=x1.dtype, device=x1.device)
        k_aa = self.base(self.anchors, self.anchors).to_dense() + JITTER * eye
        chol = torch.linalg.cholesky(k_aa)
        l1 = self.base(x1, self._anchors_like(x1)).to_dense()  # (..., n1, m)
        l2 = self.base(x2, self._anchors_like(x2)).to_dense()  # (..., n2, m)
        w1 = torch.cholesky_solve(l1.transpose(-1, -2), chol)  # (..., m, n1) = K^-1 l1^T
        w2 = torch.cholesky_solve(l2.transpose(-1, -2), chol)  # (..., m, n2)
        out = w1.transpose(-1, -2) @ self.similarity @ w2  # (..., n1, n2)
        if diag:
            return out.diagonal(dim1=-2, dim2=-1)
        return out

    def _anchors_like(self, x: torch.Tensor) -> torch.Tensor:
        return self.anchors.expand(*x.shape[:-2], *self.anchors.shape)


@dataclass
class Observations:
    """What BO has seen: soft prompts, their objective and score vectors."""

    z: torch.Tensor  # (m, d) in [-1, 1]
    y: torch.Tensor  # (m,) mean dev score
    scores: torch.Tensor  # (m, n) per-example dev scores


def fit_gp(obs: Observations, kernel: str) -> SingleTaskGP:
    """GP on (z, y) with the coupled kernel or a plain Matern 5/2 on z."""
    d = obs.z.shape[1]
    matern = MaternKernel(nu=2.5, ard_num_dims=d).to(torch.float64)
    if kernel == "coupled":
        covar = ScaleKernel(InstructionCoupledKernel(matern, obs.z, score_similarity(obs.scores)))
    elif kernel == "matern":
        covar = ScaleKernel(matern)
    else:
        raise ValueError(f"unknown kernel '{kernel}': use 'coupled' or 'matern'")
    gp = SingleTaskGP(
        obs.z,
        obs.y.unsqueeze(-1),
        covar_module=covar.to(torch.float64),
        outcome_transform=Standardize(m=1),
    )
    fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
    return gp


def propose(
    obs: Observations,
    kernel: str,
    q: int,
    seed: int,
    num_restarts: int = 4,
    raw_samples: int = 128,
) -> torch.Tensor:
    """Next q soft prompts (q, d) by maximizing q-log-EI over [-1, 1]^d."""
    d = obs.z.shape[1]
    bounds = torch.stack([-torch.ones(d), torch.ones(d)]).to(torch.float64)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        gp = fit_gp(obs, kernel)
        acq = qLogExpectedImprovement(model=gp, best_f=obs.y.max())
        candidates, _ = optimize_acqf(
            acq, bounds=bounds, q=q, num_restarts=num_restarts, raw_samples=raw_samples
        )
    return candidates.detach()


def propose_or_explore(
    obs: Observations,
    kernel: str,
    q: int,
    seed: int,
    num_restarts: int = 4,
    raw_samples: int = 128,
) -> tuple[torch.Tensor, str | None]:
    """BO's next q points, or q uniform points when the GP or the acquisition fails.

    Many observations with identical scores (a weak target scores every
    instruction 0) and near-duplicate soft prompts can make the GP fit or the
    log-EI gradient numerically break (NaN gradients, Cholesky failures). A
    search should not die of that: it explores uniformly for the round instead
    and says why (the second value; None when BO proposed). The uniform draw
    uses its own seed stream, so it does not replay the random baseline's points.
    """
    try:
        return propose(obs, kernel, q, seed, num_restarts, raw_samples), None
    except (
        BotorchError,
        ModelFittingError,
        RuntimeError,
    ) as error:  # RuntimeError: LinAlgError, NotPSDError
        points = uniform_points(q, obs.z.shape[1], seed + EXPLORE_SEED_OFFSET)
        return points, f"{type(error).__name__}: {str(error)[:200]}"


def sobol_points(n: int, d: int, seed: int) -> torch.Tensor:
    """n quasi-random points (n, d) in [-1, 1]^d: the initial design."""
    engine = torch.quasirandom.SobolEngine(dimension=d, scramble=True, seed=seed)
    return (engine.draw(n).to(torch.float64) * 2) - 1


def uniform_points(n: int, d: int, seed: int) -> torch.Tensor:
    """n independent uniform points in [-1, 1]^d: the paper's random baseline."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=generator, dtype=torch.float64) * 2 - 1


def projection_matrix(
    d: int, n_tokens: int, hidden: int, embedding_std: float, scale: float, seed: int
) -> torch.Tensor:
    """Fixed random projection A (n_tokens * hidden, d) from z to soft-prompt vectors.

    For z uniform in [-1, 1]^d, each projected element has variance
    d * sigma^2 / 3; sigma is chosen so that its std is `scale` times the
    writer's embedding std, i.e. the soft tokens look like real embeddings.
    """
    sigma = scale * embedding_std * math.sqrt(3.0 / d)
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n_tokens * hidden, d, generator=generator, dtype=torch.float32) * sigma


def project(z: torch.Tensor, matrix: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """Soft prompts (batch, n_tokens, hidden) from z (batch, d)."""
    flat = z.to(matrix.dtype) @ matrix.T  # (batch, n_tokens * hidden)
    return flat.reshape(z.shape[0], n_tokens, -1)
