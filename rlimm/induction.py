"""Induced models: the full model averaged over the hidden part of its input.

Q̄(y | x̄) = Σ_h π(h | x̄) Q(y | x̄, h)            (exact, with a belief π over enumerated hidden values)
Q̄(y | x̄) ≈ (1/k) Σ_j Q(y | x̄, h_j), h_j ~ data    (sampled)

Both are computed in log space from logits (log-sum-exp), which is exact and keeps the gradient
stable when some probabilities are tiny. The averaging happens *before* the log, so autograd gives the
exact gradient of the induced objective.
"""

from __future__ import annotations

import math

import torch


def induced_log_probs(logits: torch.Tensor, belief: torch.Tensor | None = None) -> torch.Tensor:
    """Log-probabilities of the induced model.

    :param logits: full-model logits of shape ``(batch, n_hidden, n_classes)``: for each visible
        context in the batch, the logits for each enumerated (or sampled) hidden value.
    :param belief: weights ``π(h | x̄)`` of shape ``(batch, n_hidden)`` (rows sum to one), or
        ``None`` for a uniform average (the sampled estimator, or a uniform belief).
    :return: ``log Q̄(y | x̄)`` of shape ``(batch, n_classes)``.
    """
    if logits.dim() != 3:
        raise ValueError(f"logits must be (batch, n_hidden, n_classes), got shape {tuple(logits.shape)}")
    log_q = torch.log_softmax(logits, dim=-1)
    if belief is None:
        return torch.logsumexp(log_q, dim=1) - math.log(logits.shape[1])
    if belief.shape != logits.shape[:2]:
        raise ValueError(
            f"belief must have shape {tuple(logits.shape[:2])} (batch, n_hidden), got {tuple(belief.shape)}"
        )
    # log(0) = -inf is fine here: logsumexp ignores hidden values the belief rules out.
    return torch.logsumexp(log_q + torch.log(belief).unsqueeze(-1), dim=1)


def induced_probs(probs: torch.Tensor, belief: torch.Tensor | None = None) -> torch.Tensor:
    """The induced model from full-model probabilities ``(batch, n_hidden, n_classes)``."""
    _check_shapes(probs, belief, "probs")
    if belief is None:
        return probs.mean(dim=1)
    return torch.einsum("bh,bhc->bc", belief, probs)


def _check_shapes(values: torch.Tensor, belief: torch.Tensor | None, name: str) -> None:
    if values.dim() != 3:
        raise ValueError(f"{name} must be (batch, n_hidden, n_classes), got shape {tuple(values.shape)}")
    if belief is not None and belief.shape != values.shape[:2]:
        raise ValueError(
            f"belief must have shape {tuple(values.shape[:2])} (batch, n_hidden), got {tuple(belief.shape)}"
        )
