"""IMM and naive regularisers for continuous actions: diagonal Gaussian policies.

The restricted teacher is a diagonal Gaussian P̄(·|x̄) = N(μ_p, σ_p²), a constant (no gradient reaches
it). The policy at a full state x is N(μ, σ²), so the naive loss has a closed form, summed over the d
action dimensions:

    KL(N(μ_p, σ_p²) ‖ N(μ, σ²)) = Σ_i [ log σ_i − log σ_p,i + (σ_p,i² + (μ_p,i − μ_i)²) / (2 σ_i²) − 1/2 ]

The induced policy at x̄ is the mixture of the policy at k synthetic states (x̄, h_j) with constant
weights w_j (rows sum to one):

    Q̄(a|x̄) = Σ_j w_j N(a; μ_j, σ_j²)
    KL(P̄ ‖ Q̄) = E_{a~P̄}[ log P̄(a) − log Q̄(a) ]

which has no closed form. Three estimators, each a differentiable function of the component
parameters, so autograd gives the exact gradient *of the estimator*:

- ``mc`` (default): m actions a_i ~ P̄ drawn once, without gradient (the teacher is fixed, so no
  reparameterisation is needed); KL ≈ (1/m) Σ_i [log P̄(a_i) − log Q̄(a_i)], with log Q̄ a log-sum-exp
  over components. Unbiased for the KL; its gradient is unbiased for the KL's gradient.
- ``quadrature``: Gauss–Hermite with n points per dimension, tensor product over dimensions
  (n^d points, so d ≤ 2 only): a = μ_p + √2 σ_p x_i, weights ω_i / π^{d/2}. Deterministic, and exact
  when Q̄ is a single Gaussian (the integrand is then a quadratic polynomial). Accurate (relative error
  ~1e-5 at the default) when the components are about as wide as the teacher; when they are much
  narrower and well separated, log Q̄ bends sharply between them and the error falls slowly with n
  (a few per cent at σ_j = σ_p/2): prefer ``mc`` with many draws there.
- ``moment``: the closed-form KL to the moment-matched Gaussian N(m, s²) of the mixture,
  m = Σ_j w_j μ_j, s² = Σ_j w_j (σ_j² + μ_j²) − m². Cheap and *biased*: a broad Gaussian covers the gap
  between separated modes, so the KL to it is too small where the teacher sits between them.

Not an estimator: the Jensen bound Σ_j w_j KL(P̄ ‖ N(μ_j, σ_j²)) ≥ KL(P̄ ‖ Q̄) (convexity of the KL in
its second argument). It is exactly the naive loss averaged over the synthetic states, so using it
would silently turn IMM back into naive.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from rlimm.errors import RlimmError

ESTIMATORS = ("mc", "quadrature", "moment")
#: Draws from the teacher per state for ``mc``.
DEFAULT_SAMPLES = 16
#: Gauss–Hermite points per action dimension for ``quadrature`` (20² = 400 actions per state in 2D, the
#: cost of 25 ``mc`` runs at the default draws). tests/core/test_gaussian_kl.py checks a relative error below
#: 1e-5 on a 3-component mixture of components about as wide as the teacher, which 16 points miss.
DEFAULT_POINTS = 20
#: Action dimensions ``quadrature`` accepts: the tensor product grows as points^d.
MAX_QUADRATURE_DIMS = 2

_LOG_2PI = math.log(2 * math.pi)


def check_estimator(estimator: str, samples: int, action_dim: int, points: int = DEFAULT_POINTS) -> None:
    """Raise :class:`RlimmError` unless the estimator and its sizes are usable for ``action_dim``."""
    if estimator not in ESTIMATORS:
        raise RlimmError(f"unknown estimator {estimator!r}: expected one of {', '.join(ESTIMATORS)}")
    # bool is an int subclass; samples=True is a mistake, not one draw.
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise RlimmError(f"samples must be an integer ≥ 1 (draws from the teacher), got {samples!r}")
    if not isinstance(points, int) or isinstance(points, bool) or points < 1:
        raise RlimmError(
            f"points must be an integer ≥ 1 (Gauss–Hermite points per dimension), got {points!r}"
        )
    if estimator == "quadrature" and action_dim > MAX_QUADRATURE_DIMS:
        raise RlimmError(
            f"quadrature needs at most {MAX_QUADRATURE_DIMS} action dimensions, got {action_dim}: "
            "use mc or moment"
        )


def gaussian_kl(
    p_mean: torch.Tensor, p_log_std: torch.Tensor, q_mean: torch.Tensor, q_log_std: torch.Tensor
) -> torch.Tensor:
    """Closed-form ``KL(N(p_mean, σ_p²) ‖ N(q_mean, σ_q²))`` of diagonal Gaussians, summed over the last
    (action) dimension. Arguments broadcast; the result has the broadcast shape without its last dim."""
    # (σ_p² + Δμ²) / σ_q² in log-std form: no division by a tiny variance computed separately.
    ratio = torch.exp(2 * (p_log_std - q_log_std))
    mahalanobis = ((p_mean - q_mean) * torch.exp(-q_log_std)) ** 2
    return (q_log_std - p_log_std + 0.5 * (ratio + mahalanobis) - 0.5).sum(dim=-1)


def mixture_log_prob(
    actions: torch.Tensor,
    means: torch.Tensor,
    log_stds: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``log Σ_j w_j N(a; μ_j, σ_j²)`` for each action.

    :param actions: ``(batch, m, d)`` actions.
    :param means: ``(batch, k, d)`` component means.
    :param log_stds: log-stds broadcastable to ``means`` (e.g. ``(d,)``, state-independent as in SB3's
        PPO/A2C).
    :param weights: ``(batch, k)`` component weights (rows sum to one), ``None`` for uniform.
    :return: ``(batch, m)`` log-densities.
    """
    means, log_stds, log_w = _components(means, log_stds, weights)
    if actions.dim() != 3 or actions.shape[0] != means.shape[0] or actions.shape[2] != means.shape[2]:
        raise ValueError(
            f"actions must be (batch, m, d) = ({means.shape[0]}, m, {means.shape[2]}), "
            f"got shape {tuple(actions.shape)}"
        )
    return _mixture_log_prob(actions, means, log_stds, log_w)


def _mixture_log_prob(
    actions: torch.Tensor, means: torch.Tensor, log_stds: torch.Tensor, log_w: torch.Tensor
) -> torch.Tensor:
    # (batch, m, k, d): every action against every component.
    z = (actions.unsqueeze(2) - means.unsqueeze(1)) * torch.exp(-log_stds).unsqueeze(1)
    log_n = -(0.5 * z**2 + log_stds.unsqueeze(1) + 0.5 * _LOG_2PI).sum(dim=-1)
    # log(0) = -inf for a zero weight is fine: logsumexp ignores that component.
    return torch.logsumexp(log_n + log_w.unsqueeze(1), dim=-1)


def mixture_kl(
    p_mean: torch.Tensor,
    p_log_std: torch.Tensor,
    means: torch.Tensor,
    log_stds: torch.Tensor,
    weights: torch.Tensor | None = None,
    estimator: str = "mc",
    samples: int = DEFAULT_SAMPLES,
    points: int = DEFAULT_POINTS,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Estimate ``KL(N(p_mean, σ_p²) ‖ Σ_j w_j N(μ_j, σ_j²))`` per state.

    :param p_mean: ``(batch, d)`` teacher means; ``p_log_std`` broadcasts to it. The teacher is
        detached: it is a constant target, and ``mc`` could not give its gradient anyway.
    :param means: ``(batch, k, d)`` component means (the policy at the k synthetic states).
    :param log_stds: log-stds broadcastable to ``means``.
    :param weights: ``(batch, k)`` constant component weights, ``None`` for uniform.
    :param estimator: ``mc``, ``quadrature`` (d ≤ 2) or ``moment`` (see the module docstring).
    :param samples: draws from the teacher per state (``mc``).
    :param points: Gauss–Hermite points per dimension (``quadrature``).
    :param generator: random generator for the ``mc`` draws (determinism); ``None`` for the global one.
    :return: ``(batch,)`` estimates.
    """
    if p_mean.dim() != 2:
        raise ValueError(f"p_mean must be (batch, d), got shape {tuple(p_mean.shape)}")
    check_estimator(estimator, samples, p_mean.shape[-1], points)
    p_mean = p_mean.detach()
    p_log_std = torch.broadcast_to(p_log_std.detach(), p_mean.shape)
    means, log_stds, log_w = _components(means, log_stds, weights)
    if means.shape[0] != p_mean.shape[0] or means.shape[2] != p_mean.shape[1]:
        raise ValueError(
            f"means must be (batch, k, d) = ({p_mean.shape[0]}, k, {p_mean.shape[1]}), "
            f"got shape {tuple(means.shape)}"
        )

    if estimator == "moment":
        w = log_w.exp().unsqueeze(-1)
        m = (w * means).sum(dim=1)
        # Σ w (σ² + (μ − m)²) is the same s² as Σ w (σ² + μ²) − m², without the cancellation.
        var = (w * (torch.exp(2 * log_stds) + (means - m.unsqueeze(1)) ** 2)).sum(dim=1)
        return gaussian_kl(p_mean, p_log_std, m, 0.5 * torch.log(var))

    if estimator == "mc":
        with torch.no_grad():
            device = generator.device if generator is not None else p_mean.device
            shape = (p_mean.shape[0], samples, p_mean.shape[1])
            eps = torch.randn(shape, generator=generator, dtype=p_mean.dtype, device=device)
        eps = eps.to(p_mean.device)
        node_weights = None
    else:
        eps, node_weights = _hermite_grid(points, p_mean.shape[1], p_mean.dtype, p_mean.device)
        eps = eps.unsqueeze(0)
    actions = p_mean.unsqueeze(1) + torch.exp(p_log_std).unsqueeze(1) * eps
    # log P̄(a) from the standardised draws: exact, and log P̄ − log Q̄ is 0 per draw when Q̄ = P̄.
    log_p = -(0.5 * eps**2 + p_log_std.unsqueeze(1) + 0.5 * _LOG_2PI).sum(dim=-1)
    log_ratio = log_p - _mixture_log_prob(actions, means, log_stds, log_w)
    if node_weights is None:
        return log_ratio.mean(dim=1)
    return log_ratio @ node_weights


def naive_gaussian_loss(
    p_mean: torch.Tensor, p_log_std: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
) -> torch.Tensor:
    """Naive loss: batch mean of ``KL(P̄(·|x̄) ‖ N(μ(x), σ(x)²))`` at the full states (teacher detached).

    :param p_mean: ``(batch, d)`` teacher means; ``p_log_std`` broadcasts to it.
    :param mean: ``(batch, d)`` policy means at the full states; ``log_std`` broadcasts to it.
    """
    return gaussian_kl(p_mean.detach(), p_log_std.detach(), mean, log_std).mean()


def imm_gaussian_loss(
    p_mean: torch.Tensor,
    p_log_std: torch.Tensor,
    means: torch.Tensor,
    log_stds: torch.Tensor,
    weights: torch.Tensor | None = None,
    estimator: str = "mc",
    samples: int = DEFAULT_SAMPLES,
    points: int = DEFAULT_POINTS,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """IMM loss: batch mean of ``KL(P̄(·|x̄) ‖ Q̄(·|x̄))`` with the induced mixture Q̄; arguments as
    :func:`mixture_kl`."""
    return mixture_kl(
        p_mean, p_log_std, means, log_stds, weights, estimator, samples, points, generator
    ).mean()


def _components(
    means: torch.Tensor, log_stds: torch.Tensor, weights: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(means, log_stds broadcast to means, log-weights (batch, k))``."""
    if means.dim() != 3:
        raise ValueError(f"means must be (batch, k, d), got shape {tuple(means.shape)}")
    log_stds = torch.broadcast_to(log_stds, means.shape)
    if weights is None:
        log_w = torch.full(means.shape[:2], -math.log(means.shape[1]), dtype=means.dtype, device=means.device)
    elif weights.shape != means.shape[:2]:
        raise ValueError(
            f"weights must have shape {tuple(means.shape[:2])} (batch, k), got {tuple(weights.shape)}"
        )
    else:
        log_w = torch.log(weights)
    return means, log_stds, log_w


@lru_cache(maxsize=16)
def _hermite_1d(points: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.hermite.hermgauss(points)
    return nodes, weights


def _hermite_grid(
    points: int, dims: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard-normal nodes ``(points^dims, dims)`` and weights ``(points^dims,)`` summing to one."""
    nodes_1d, weights_1d = _hermite_1d(points)
    # ∫ e^{−x²} f dx ≈ Σ ω_i f(x_i)  ⇒  E_{z~N(0,1)} f(z) ≈ Σ (ω_i/√π) f(√2 x_i).
    x = torch.as_tensor(nodes_1d * math.sqrt(2.0), dtype=dtype, device=device)
    w = torch.as_tensor(weights_1d, dtype=dtype, device=device)
    nodes = torch.stack(torch.meshgrid(*([x] * dims), indexing="ij"), dim=-1).reshape(-1, dims)
    grid_w = torch.stack(torch.meshgrid(*([w] * dims), indexing="ij"), dim=-1).prod(dim=-1).reshape(-1)
    # Normalise by the sum rather than π^{d/2}: a single Gaussian then gives the naive KL to rounding.
    return nodes, grid_w / grid_w.sum()
