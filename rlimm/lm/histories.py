"""Sampled induction for the language model: histories that end in a given word, and the IMM loss.

The restricted model sees only the previous word v; the full model (the LSTM, or the Transformer: the
same code for both) sees the whole history h = (…, v). The induced bigram of the full model is
Q̄(w | v) = E_{h ~ π(·|v)} Q(w | h), where π(·|v) is the empirical distribution of training histories
that end in v. It is estimated from k histories drawn uniformly
among the training positions j with ``train[j] == v`` (each history = the last L words up to j), and
the k predicted distributions are averaged *before* the log (:func:`rlimm.induction.induced_log_probs`).

Histories are cut to the last L words and read from a zero state (the Transformer: as one context of L
words): the cost knob (a history of length L costs L steps of the model but a single V-way softmax, at
its last step).
"""

from __future__ import annotations

import torch

from rlimm.lm.model import LanguageModel
from rlimm.losses import imm_loss


class HistoryIndex:
    """Where each word occurs in the training stream, in CSR layout.

    ``positions[offsets[v] : offsets[v+1]]`` are the (sorted) positions j with ``tokens[j] == v``.

    :param tokens: the 1-D int64 training stream; the index lives on its device (the sampling
        generators stay on the CPU: the same draws on every device).
    :param vocab_size: V (words that never occur get an empty range).
    :param eos_id: the padding word for histories that would start before the corpus.
    """

    def __init__(self, tokens: torch.Tensor, vocab_size: int, eos_id: int) -> None:
        if tokens.dim() != 1 or tokens.numel() == 0:
            raise ValueError(f"tokens must be a non-empty 1-D stream, got shape {tuple(tokens.shape)}")
        self.tokens = tokens.to(torch.int64)
        self.eos_id = int(eos_id)
        # A stable sort keeps the positions of each word in increasing order.
        self.positions = torch.argsort(self.tokens, stable=True)
        self.counts = torch.bincount(self.tokens, minlength=vocab_size)
        self.offsets = torch.zeros(vocab_size + 1, dtype=torch.int64, device=self.tokens.device)
        torch.cumsum(self.counts, 0, out=self.offsets[1:])

    def positions_of(self, word: int) -> torch.Tensor:
        """All positions j with ``tokens[j] == word`` (increasing)."""
        return self.positions[self.offsets[word] : self.offsets[word + 1]]

    def sample(self, words: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        """``k`` positions per query word, uniform with replacement among its occurrences.

        :param words: ``(n,)`` query words; each must occur in the stream.
        :param k: samples per word.
        :param generator: the sampling generator.
        :return: ``(n, k)`` positions.
        """
        counts = self.counts[words]
        if bool((counts == 0).any()):
            missing = sorted(set(words[counts == 0].tolist()))
            raise ValueError(f"words {missing[:10]} never occur in the training stream")
        u = torch.rand((words.numel(), k), generator=generator, dtype=torch.float64).to(counts.device)
        # floor(u · count) is uniform on {0, …, count−1}; the clamp guards u·count rounding up to count.
        rank = torch.minimum((u * counts[:, None]).long(), counts[:, None] - 1)
        return self.positions[self.offsets[words][:, None] + rank]

    def windows(self, positions: torch.Tensor, length: int) -> torch.Tensor:
        """The histories ``tokens[j−L+1 .. j]`` ending at each position, left-padded with eos.

        :param positions: ``(...,)`` positions j (any shape; flattened).
        :param length: L ≥ 1.
        :return: ``(N, L)`` int64, batch-major; row i ends with ``tokens[positions.flatten()[i]]``.
        """
        if length < 1:
            raise ValueError(f"history length must be >= 1, got {length}")
        j = positions.reshape(-1, 1)
        idx = j - (length - 1) + torch.arange(length, device=j.device)
        # The corpus is read as if preceded by sentence ends (it starts with one anyway).
        return torch.where(idx >= 0, self.tokens[idx.clamp_min(0)], self.eos_id)


def sample_histories(
    index: HistoryIndex, words: torch.Tensor, k: int, length: int, generator: torch.Generator
) -> torch.Tensor:
    """``k`` random training histories of ``length`` words ending in each word: ``(n·k, length)``,
    grouped by word (rows ``i·k … i·k+k−1`` end in ``words[i]``)."""
    return index.windows(index.sample(words, k, generator), length)


def induced_logits(model: LanguageModel, histories: torch.Tensor, n: int) -> torch.Tensor:
    """The model's next-word logits after each history, from a zero state, as ``(n, k, V)``.

    All ``n·k`` histories go through the model as one batch; only the last step is decoded.

    :param histories: ``(n·k, L)`` batch-major histories grouped by context.
    :param n: number of contexts.
    """
    rows = histories.shape[0]
    if n < 1 or rows % n:
        raise ValueError(f"{rows} histories cannot be split into {n} equal groups")
    logits, _ = model(histories.t(), model.init_hidden(rows), last_only=True)
    return logits.view(n, rows // n, -1)


def imm_loss_for(model: LanguageModel, kn, contexts: torch.Tensor, histories: torch.Tensor) -> torch.Tensor:
    """Mean over contexts v of ``KL(P_KN(·|v) ‖ Q̄(·|v))`` with Q̄ the k-sample induced model.

    Differentiable: autograd gives the exact gradient of the k-sample objective (the average over the
    k histories is inside the log).

    :param model: the full model (its train/eval mode decides whether dropout acts on the histories).
    :param kn: the teacher; ``kn.probs(contexts)`` gives ``(n, V)`` rows of ``P_KN(·|v)``.
    :param contexts: ``(n,)`` visible words v.
    :param histories: ``(n·k, L)`` histories, rows ``i·k … i·k+k−1`` ending in ``contexts[i]``.
    """
    logits = induced_logits(model, histories, contexts.numel())
    teacher = kn.probs(contexts).to(logits.dtype)
    return imm_loss(teacher, logits)
