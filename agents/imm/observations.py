"""Batches of observations: an array or tensor, or a dict of them (``Dict`` observation spaces).

Sampled induction, the buffers and the teacher's view all handle both forms; these helpers apply one
operation to every key alike, so the code that uses them reads the same for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def per_key(obs: Any, fn: Callable[[Any], Any]) -> Any:
    """``fn`` applied to the batch, or to each key's batch of a dict."""
    if isinstance(obs, dict):
        return {key: fn(value) for key, value in obs.items()}
    return fn(obs)


def n_rows(obs: Any) -> int:
    """The number of observations in the batch."""
    return len(next(iter(obs.values())) if isinstance(obs, dict) else obs)


def nbytes(obs: torch.Tensor | dict) -> int:
    """The memory the batch's tensors hold."""
    values = obs.values() if isinstance(obs, dict) else [obs]
    return sum(v.element_size() * v.numel() for v in values)


def cat_rows(parts: list[Any]) -> Any:
    """Batches of tensors stacked along the rows (one batch: itself)."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], dict):
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
    return torch.cat(parts)


def hidden_features(restriction: Any, observations: Any) -> torch.Tensor:
    """``(N, d)`` float64 features of what ``restriction`` hides of each observation (tensors): every
    row is given row 0's visible part (``restriction.combine``), so that what still differs between
    rows is hidden; constant columns (the visible part) are dropped. ``(N, 0)`` when nothing hidden varies."""
    first = per_key(observations, lambda v: v[:1].expand(v.shape[0], *v.shape[1:]))
    hidden = restriction.combine(first, observations)
    parts = hidden.values() if isinstance(hidden, dict) else [hidden]
    features = torch.cat([p.reshape(p.shape[0], -1).double() for p in parts], dim=1)
    return features[:, features.var(dim=0) > 1e-12] if len(features) > 1 else features[:, :0]
