"""Population objectives, by quadrature: what each method converges to with unlimited data.

With infinitely many training examples the cross-entropy becomes E_x[CE(P(·|x), Q(·|x))], the IMM term
E_x1[KL(P̄(·|x1) ‖ Q̄(·|x1))] with the induced model averaged over the true distribution of (x2, x3),
and the noising term E_x[KL(P̄(·|x1) ‖ Q(·|x))]. All three expectations are taken on one
tensor-product Gauss–Legendre rule over the cube, with P̄ computed on the same rule, so that the true
model is an *exact* minimiser of the discretised IMM objective (its induced model equals P̄ node by
node) and any gap is the noising objective's own bias, not quadrature error.
"""

from __future__ import annotations

import numpy as np
import torch

from rlimm.errors import RlimmError
from rlimm.induction import induced_log_probs
from rlimm.logreg.data import TrueModel
from rlimm.logreg.train import two_class
from rlimm.losses import kl_from_teacher


def _rule(model: TrueModel, nodes: int) -> dict[str, torch.Tensor]:
    g, gw = np.polynomial.legendre.leggauss(nodes)
    hidden = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)  # (G², 2)
    hidden_w = (gw[:, None] * gw[None, :]).ravel() / 4.0  # uniform density on [-1, 1]²
    x = np.concatenate([np.repeat(g, len(hidden))[:, None], np.tile(hidden, (nodes, 1))], axis=1).reshape(
        nodes, len(hidden), 3
    )
    p_true = model.prob(x)  # (G, G²)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    return {
        "x": t(x),
        "x1_w": t(gw / 2.0),
        "hidden_w": t(hidden_w),
        "p_true": t(p_true),
        "teacher": t(p_true @ hidden_w),  # P̄(y=1 | x1) at the x1 nodes, on the same rule
    }


def population_objective(
    theta: torch.Tensor, model: TrueModel, method: str, lam: float, nodes: int = 16
) -> torch.Tensor:
    """``(CE + λ · regulariser) / (1 + λ)`` under the true distribution (differentiable in ``theta``).

    :param theta: ``(4,)`` float64 parameters ``(bias, w1, w2, w3)``.
    :param model: the true model (the source of x, y and of the exact teacher P̄).
    :param method: ``baseline``, ``imm`` or ``noising``.
    :param lam: λ ≥ 0.
    :param nodes: Gauss–Legendre nodes per dimension.
    """
    rule = _rule(model, nodes)
    return _objective(theta, rule, method, lam)


def _objective(theta: torch.Tensor, rule: dict[str, torch.Tensor], method: str, lam: float) -> torch.Tensor:
    z = theta[0] + rule["x"] @ theta[1:]  # (G, G²)
    log_q = torch.stack([torch.nn.functional.logsigmoid(-z), torch.nn.functional.logsigmoid(z)], -1)
    weight = rule["x1_w"][:, None] * rule["hidden_w"][None, :]
    ce = -(two_class(rule["p_true"]) * log_q).sum(-1)
    loss = (weight * ce).sum()
    if method == "baseline":
        return loss
    teacher = two_class(rule["teacher"])  # (G, 2)
    if method == "noising":
        reg = (weight * kl_from_teacher(teacher[:, None, :].expand_as(log_q), log_q)).sum()
    elif method == "imm":
        hidden_logits = torch.stack([torch.zeros_like(z), z], dim=-1)
        belief = rule["hidden_w"].expand(z.shape)
        reg = (rule["x1_w"] * kl_from_teacher(teacher, induced_log_probs(hidden_logits, belief))).sum()
    else:
        raise RlimmError(f"unknown objective '{method}'; accepted: baseline, imm, noising")
    return (loss + lam * reg) / (1.0 + lam)


def population_minimiser(model: TrueModel, method: str, lam: float, nodes: int = 16) -> np.ndarray:
    """The parameters minimising :func:`population_objective`, by damped Newton from θ = 0 (float64).

    Four parameters make exact Hessians cheap; the damping (Levenberg style) keeps steps downhill where
    the IMM objective is not convex, and a halving line search makes every step decrease it.
    (``torch.optim.LBFGS`` would do as well, but its first use imports torch's compiler stack, ~3 s.)

    :return: ``(4,)`` array ``(bias, w1, w2, w3)``.
    """
    rule = _rule(model, nodes)

    def f(t: torch.Tensor) -> torch.Tensor:
        return _objective(t, rule, method, lam)

    theta = torch.zeros(4, dtype=torch.float64)
    damping = 1e-3
    for _ in range(100):
        t = theta.clone().requires_grad_(True)
        value = f(t)
        (grad,) = torch.autograd.grad(value, t)
        if grad.norm() < 1e-11:
            break
        hess = torch.autograd.functional.hessian(f, theta)
        step = torch.linalg.solve(hess + damping * torch.eye(4, dtype=theta.dtype), grad)
        if step @ grad <= 0:  # not a descent direction: fall back to (scaled) gradient descent
            damping *= 10.0
            continue
        scale = 1.0
        while scale > 1e-6 and f(theta - scale * step) > value.detach():
            scale /= 2.0
        if scale <= 1e-6:
            damping *= 10.0
            continue
        theta = theta - scale * step
        damping = max(damping / 10.0, 1e-9)
    return theta.numpy().copy()
