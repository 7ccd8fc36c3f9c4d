"""The full model: an LSTM language model in the style of Zaremba et al. (2014), and the interface every
full model shares (:class:`LanguageModel`; the Transformer is :mod:`rlimm.lm.transformer`).

embedding → dropout → multi-layer LSTM (dropout between layers) → dropout → linear decoder.

Layout: tokens are **time-major**, ``(T, B)`` (the layout of ``nn.LSTM`` without ``batch_first`` and of
:func:`rlimm.lm.batches.batchify`); logits come back as ``(T, B, V)``. The hidden state is the
``(h, c)`` pair of ``nn.LSTM``, each ``(layers, B, hidden)``.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

Hidden = tuple[torch.Tensor, torch.Tensor]
#: What a model carries from one window to the next: the LSTM's ``(h, c)``, or ``()`` for a model that
#: carries nothing (the Transformer).
State = tuple[torch.Tensor, ...]


class LanguageModel(Protocol):
    """What the training loop, the evaluation and the IMM term ask of a full model.

    ``model(tokens (T, B), state, last_only) -> (logits, state)`` with logits ``(T, B, V)`` (``(B, V)``
    when ``last_only``), ``init_hidden(B)`` the state a column starts from, and ``vocab_size``; plus
    everything of an ``nn.Module`` (parameters, ``train``/``eval``, ``to``, ``state_dict``).
    """

    vocab_size: int

    def init_hidden(self, batch: int) -> State: ...

    def __call__(
        self, tokens: torch.Tensor, hidden: State | None = None, last_only: bool = False
    ) -> tuple[torch.Tensor, State]: ...


class LSTMLanguageModel(nn.Module):
    """A word-level LSTM language model.

    :param vocab_size: number of word types V.
    :param hidden: width of the embedding and of every LSTM layer.
    :param layers: number of stacked LSTM layers.
    :param dropout: dropout probability on the embeddings, between LSTM layers and before the decoder.
    :param tie_weights: share the embedding matrix with the decoder (Press & Wolf 2017).
    :param init_scale: every parameter starts uniform in ``[-init_scale, init_scale]`` (Zaremba: 0.1).
    """

    def __init__(
        self,
        vocab_size: int,
        hidden: int,
        layers: int,
        dropout: float,
        tie_weights: bool = False,
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        if vocab_size < 1 or hidden < 1 or layers < 1:
            raise ValueError(
                f"vocab_size, hidden and layers must be positive, got {vocab_size, hidden, layers}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.vocab_size = vocab_size
        self.hidden_size = hidden
        self.layers = layers
        self.embedding = nn.Embedding(vocab_size, hidden)
        self.drop = nn.Dropout(dropout)
        # nn.LSTM's own dropout acts between layers only (not after the last one): that is Zaremba's.
        self.lstm = nn.LSTM(hidden, hidden, layers, dropout=dropout if layers > 1 else 0.0)
        self.decoder = nn.Linear(hidden, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embedding.weight
        for p in self.parameters():
            nn.init.uniform_(p, -init_scale, init_scale)

    def init_hidden(self, batch: int) -> Hidden:
        """A zero state for ``batch`` sequences, with the parameters' dtype and device."""
        w = self.decoder.weight
        shape = (self.layers, batch, self.hidden_size)
        return (w.new_zeros(shape), w.new_zeros(shape))

    def forward(
        self, tokens: torch.Tensor, hidden: Hidden | None = None, last_only: bool = False
    ) -> tuple[torch.Tensor, Hidden]:
        """Next-word logits at every position.

        :param tokens: ``(T, B)`` int64 word ids, time-major.
        :param hidden: state carried from the previous window; ``None`` for a zero state.
        :param last_only: decode the last step only (``(B, V)`` logits): a sampled history needs only
            its prediction after the last word, and the V-way decoder dominates the cost.
        :return: ``(logits, hidden)``, logits ``(T, B, V)`` (or ``(B, V)`` with ``last_only``).
        """
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (T, B), got shape {tuple(tokens.shape)}")
        if hidden is None:
            hidden = self.init_hidden(tokens.shape[1])
        out, hidden = self.lstm(self.drop(self.embedding(tokens)), hidden)
        if last_only:
            out = out[-1]
        return self.decoder(self.drop(out)), hidden


def detach_hidden(hidden: State) -> State:
    """Cut the graph behind a carried state (truncated BPTT); ``()`` stays ``()``."""
    return tuple(h.detach() for h in hidden)
