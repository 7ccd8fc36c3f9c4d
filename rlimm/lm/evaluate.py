"""Evaluating the language model: perplexity of a split, and the restricted task (the paper's Table 5).

The restricted task asks each model for the next word given only the previous one. The Kneser-Ney
bigram answers it directly; the full model (LSTM or Transformer) answers it through its *induced* bigram
Q̄(w | v) = E_{h ~ π(·|v)} Q(w | h), estimated by averaging its next-word distributions after K training
histories that end in v (all of them, with equal weights, when v occurs at most K times).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlimm.induction import induced_log_probs
from rlimm.lm.batches import batchify, n_windows, window
from rlimm.lm.histories import HistoryIndex, induced_logits
from rlimm.lm.model import LanguageModel, detach_hidden


@torch.no_grad()
def perplexity(model: LanguageModel, tokens: torch.Tensor, batch_size: int, bptt: int) -> float:
    """Perplexity of a split read as ``batch_size`` columns with the state carried across windows.

    The Transformer carries no state: each window is its own context, as in training.

    :param model: the full model (put in eval mode for the duration, then restored).
    :param tokens: 1-D ids of the split.
    :param batch_size: evaluation columns (1 reads the split as one sequence: the exact figure).
    :param bptt: window length (for the LSTM only a memory knob, the state being carried; for the
        Transformer the context of every prediction).
    """
    was_training = model.training
    model.eval()
    try:
        source = batchify(tokens, batch_size)
        hidden = model.init_hidden(batch_size)
        total, count = 0.0, 0
        for i in range(n_windows(source, bptt)):
            inputs, targets = window(source, i, bptt)
            logits, hidden = model(inputs, hidden)
            hidden = detach_hidden(hidden)
            total += float(F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum"))
            count += targets.numel()
    finally:
        model.train(was_training)
    return math.exp(total / count)


def enumerated_or_sampled_positions(
    index: HistoryIndex, words: torch.Tensor, k: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``k`` history positions per word with weights: every occurrence (equal weights, unused slots get
    weight 0) when the word occurs at most ``k`` times, else ``k`` uniform draws (weights 1/k).

    :return: ``(positions (n, k), weights (n, k))``, weights summing to one per row.
    """
    positions = index.sample(words, k, generator)
    counts = index.counts[words]
    few = counts <= k
    slot = torch.arange(k, device=words.device)
    # Slot i of a rare word holds its i-th occurrence (slots past its count repeat the last one).
    rank = torch.minimum(slot[None, :], counts[:, None] - 1)
    exhaustive = index.positions[index.offsets[words][:, None] + rank]
    positions = torch.where(few[:, None], exhaustive, positions)
    every = torch.ones(1, k, dtype=torch.bool, device=words.device)
    used = torch.where(few[:, None], slot[None, :] < counts[:, None], every)
    weights = used.to(torch.float32)
    return positions, weights / weights.sum(dim=1, keepdim=True)


@torch.no_grad()
def induced_bigram_log_probs(
    model: LanguageModel,
    index: HistoryIndex,
    words: torch.Tensor,
    k: int,
    length: int,
    generator: torch.Generator,
    chunk: int = 64,
) -> torch.Tensor:
    """``log Q̄(·|v)`` for each word v of ``words``: ``(n, V)``.

    :param model: the full model (evaluated without dropout).
    :param index: where each word occurs in the training stream.
    :param words: ``(n,)`` distinct context words, each occurring in the training stream.
    :param k: histories per word (K).
    :param length: history length (L).
    :param generator: the sampling generator.
    :param chunk: words per forward pass (memory knob: a pass holds ``chunk·k`` histories).
    """
    was_training = model.training
    model.eval()
    try:
        out = []
        for start in range(0, words.numel(), chunk):
            part = words[start : start + chunk]
            positions, weights = enumerated_or_sampled_positions(index, part, k, generator)
            logits = induced_logits(model, index.windows(positions, length), part.numel())
            out.append(induced_log_probs(logits, weights.to(logits.dtype)))
        return torch.cat(out)
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class RestrictedTaskResult:
    """Perplexities on the test bigrams (v, w): the full model's induced bigram and the KN bigram."""

    induced_ppl: float
    kn_ppl: float
    bigrams: int
    contexts: int


def restricted_task(
    model: LanguageModel,
    kn,
    index: HistoryIndex,
    test: torch.Tensor,
    k: int,
    length: int,
    seed: int,
    chunk: int = 64,
) -> RestrictedTaskResult:
    """The paper's restricted-task evaluation on the consecutive pairs of ``test``.

    :param model: the full model.
    :param kn: the Kneser-Ney bigram (``log_prob(prev, nxt)``).
    :param index: history index of the training stream.
    :param test: 1-D test ids.
    :param k: histories per context word (K).
    :param length: history length (L).
    :param seed: seed of the history draws (the result is a deterministic function of it).
    :param chunk: context words per forward pass.
    """
    prev, nxt = test[:-1], test[1:]
    # Q̄(·|v) depends on v only: compute it once per distinct context.
    words, where = torch.unique(prev, return_inverse=True)
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros((), dtype=torch.float64, device=test.device)
    for start in range(0, words.numel(), chunk):
        part = words[start : start + chunk]
        log_q = induced_bigram_log_probs(model, index, part, k, length, generator, chunk)
        sel = (where >= start) & (where < start + part.numel())
        total -= log_q[where[sel] - start, nxt[sel]].to(torch.float64).sum()
    n = prev.numel()
    kn_nll = -kn.log_prob(prev, nxt).mean()
    return RestrictedTaskResult(
        induced_ppl=math.exp(float(total) / n),
        kn_ppl=math.exp(float(kn_nll)),
        bigrams=n,
        contexts=words.numel(),
    )
