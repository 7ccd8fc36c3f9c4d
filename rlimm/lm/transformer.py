"""The second full model: a small causal Transformer language model built from torch's own modules.

token embedding + learned position embedding → dropout → ``layers`` pre-norm
``nn.TransformerEncoderLayer`` (``heads`` attention heads, feed-forward width 4 × ``hidden``, a causal
mask) → layer norm → linear decoder (optionally tied to the token embedding). Each layer computes
h ← h + Attn(LN(h)), then h ← h + FF(LN(h)), where head j of Attn at position t is
Σ_{s ≤ t} softmax_s(q_t · k_s / √(d/H)) v_s: the causal mask removes every s > t.

It has the LSTM's interface (:class:`rlimm.lm.model.LanguageModel`): time-major ``(T, B)`` tokens in,
``(T, B, V)`` logits out, and a state returned beside them. A Transformer carries no state: position t
attends to positions 0 … t *of the same call* and to nothing before it. The state is therefore the empty
tuple, and every call is its own context:

- training reads each BPTT window of ``train.bptt`` words as one context (the first word of a window
  sees no earlier word; on average a prediction sees about ``bptt / 2`` words, against the LSTM's whole
  column so far);
- perplexity is measured the same way, window by window (``train.bptt`` is then part of the figure, not
  only a memory knob as for the LSTM);
- an IMM or evaluation history of L words is one context of L words, exactly as the LSTM reads it from a
  zero state.

``context`` (``model.context``, by default ``train.bptt``) is the number of learned positions: no call
may be longer, which the configuration checks for the windows and both history lengths.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

#: The empty state of a model that carries none across calls.
NoState = tuple[()]


class TransformerLanguageModel(nn.Module):
    """A word-level causal Transformer language model.

    :param vocab_size: number of word types V.
    :param hidden: the width d (embeddings, attention and residual stream).
    :param layers: number of encoder layers.
    :param heads: attention heads per layer; must divide ``hidden``.
    :param context: number of learned positions (the longest input).
    :param dropout: dropout on the embeddings and inside every layer (attention weights, sub-layer
        outputs, feed-forward).
    :param tie_weights: share the token embedding with the decoder (Press & Wolf 2017).
    :param init_scale: token and position embeddings start uniform in ``[-init_scale, init_scale]`` (as
        the LSTM's parameters); the encoder layers keep torch's own initialisation (Xavier / Kaiming
        uniform, layer norms at 1 and 0) and the decoder's bias starts at 0.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden: int,
        layers: int,
        heads: int,
        context: int,
        dropout: float,
        tie_weights: bool = False,
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        if min(vocab_size, hidden, layers, heads, context) < 1:
            raise ValueError(
                "vocab_size, hidden, layers, heads and context must be positive, got "
                f"{vocab_size, hidden, layers, heads, context}"
            )
        if hidden % heads:
            raise ValueError(f"heads ({heads}) must divide hidden ({hidden})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.vocab_size = vocab_size
        self.hidden_size = hidden
        self.layers = layers
        self.context = context
        self.embedding = nn.Embedding(vocab_size, hidden)
        self.position = nn.Embedding(context, hidden)
        self.drop = nn.Dropout(dropout)
        # Pre-norm layers (norm_first): the residual stream is never normalised away, which is what lets
        # the same plain SGD with clipping that trains the LSTM train this model too. The GELU is GPT's.
        layer = nn.TransformerEncoderLayer(
            hidden,
            heads,
            dim_feedforward=4 * hidden,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # Nested tensors only serve padded batches, which a language model's windows never are.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.decoder = nn.Linear(hidden, vocab_size)
        for emb in (self.embedding, self.position):
            nn.init.uniform_(emb.weight, -init_scale, init_scale)
        nn.init.zeros_(self.decoder.bias)
        self.tied = tie_weights
        if tie_weights:
            self.decoder.weight = self.embedding.weight
        else:
            nn.init.uniform_(self.decoder.weight, -init_scale, init_scale)

    def _apply(
        self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True
    ) -> TransformerLanguageModel:
        # .to(device) keeps a shared parameter shared when it can convert in place (CPU ↔ CUDA), but
        # converts it once per owner otherwise (e.g. to the meta device): tie the copies again.
        super()._apply(fn, recurse)
        if self.tied:
            self.decoder.weight = self.embedding.weight
        return self

    def init_hidden(self, batch: int) -> NoState:
        """The (empty) state: nothing is carried from one call to the next."""
        return ()

    def forward(
        self, tokens: torch.Tensor, hidden: NoState | None = None, last_only: bool = False
    ) -> tuple[torch.Tensor, NoState]:
        """Next-word logits at every position, each seeing only itself and earlier positions.

        :param tokens: ``(T, B)`` int64 word ids, time-major, ``T ≤ context``.
        :param hidden: ignored (accepted for the LSTM's interface; nothing is carried).
        :param last_only: decode the last position only (``(B, V)`` logits), as for a sampled history.
        :return: ``(logits, ())``, logits ``(T, B, V)`` (or ``(B, V)`` with ``last_only``).
        """
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (T, B), got shape {tuple(tokens.shape)}")
        steps = tokens.shape[0]
        if steps > self.context:
            raise ValueError(f"{steps} positions exceed the model's context of {self.context}")
        x = tokens.t()  # (B, T): the encoder is batch-first
        where = torch.arange(steps, device=tokens.device)
        h = self.drop(self.embedding(x) + self.position(where))
        mask = nn.Transformer.generate_square_subsequent_mask(steps, device=tokens.device, dtype=h.dtype)
        h = self.norm(self.encoder(h, mask=mask, is_causal=True))
        h = h[:, -1] if last_only else h.transpose(0, 1)  # back to time-major (T, B, d)
        return self.decoder(h), ()
