"""Batching a token stream for truncated back-propagation through time.

The stream is cut into ``B`` contiguous columns (:func:`batchify`, ``(T, B)`` time-major); training walks
down the columns in windows of ``bptt`` steps (:func:`window`), carrying the LSTM state from one window
to the next and detaching it (:func:`rlimm.lm.model.detach_hidden`), so that each column is read as one
long sequence while gradients flow through at most ``bptt`` steps.
"""

from __future__ import annotations

import math

import torch


def batchify(tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a 1-D stream into ``batch_size`` contiguous columns: ``(T, batch_size)``.

    The tail that does not fill a whole row is dropped (fewer than ``batch_size`` tokens).

    :param tokens: 1-D int64 ids.
    :param batch_size: number of columns.
    """
    if tokens.dim() != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tuple(tokens.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    steps = tokens.numel() // batch_size
    if steps < 2:
        raise ValueError(f"{tokens.numel()} tokens are too few for {batch_size} columns of 2 or more")
    return tokens[: steps * batch_size].view(batch_size, steps).t().contiguous()


def n_windows(source: torch.Tensor, bptt: int) -> int:
    """Number of windows of :func:`window` in a batchified ``(T, B)`` source (the last may be short)."""
    return math.ceil((source.shape[0] - 1) / bptt)


def window(source: torch.Tensor, index: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``index``-th window: inputs ``source[i : i+n]`` and targets ``source[i+1 : i+1+n]``.

    :param source: ``(T, B)`` batchified ids.
    :param index: window number, ``0 ≤ index < n_windows(source, bptt)``.
    :param bptt: window length (the last window of a column may be shorter).
    :return: ``(inputs, targets)``, both ``(n, B)`` with ``n ≤ bptt``.
    """
    start = index * bptt
    if not 0 <= start < source.shape[0] - 1:
        raise IndexError(f"window {index} is out of range for {n_windows(source, bptt)} windows")
    n = min(bptt, source.shape[0] - 1 - start)
    return source[start : start + n], source[start + 1 : start + 1 + n]
