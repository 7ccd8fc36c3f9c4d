"""Interpolated modified Kneser-Ney bigram model (Chen & Goodman, 1998), fully vectorised.

Bigram counts are held sparsely as sorted pair keys ``v * V + w`` with their counts; because the keys are
sorted, the bigrams of one context ``v`` form a contiguous slice (CSR layout, row offsets ``row_ptr``),
which lets :meth:`KneserNeyBigram.probs` build full rows for a batch of contexts without Python loops.

With ``D(c)`` the discount of a bigram seen ``c`` times (D1, D2 or D3+):

    P(w | v) = max(c(v, w) - D(c(v, w)), 0) / c(v) + gamma(v) * p_cont(w)
    gamma(v) = (D1 N1(v .) + D2 N2(v .) + D3+ N3+(v .)) / c(v)        (gamma(v) = 1 if c(v) = 0)

and the backoff (continuation) distribution, with N1+(. w) the number of distinct left neighbours of w,
N1+(. .) the number of distinct bigram types, m the number of words with N1+(. w) > 0 and d' the
continuation discount,

    p_cont(w) = max(N1+(. w) - d', 0) / N1+(. .) + d' m / N1+(. .) / V.

The second term spreads the discounted continuation mass uniformly, so every word, even one that was
never seen after another word, gets a strictly positive probability when d' > 0. With d' = 0 this is the
textbook continuation distribution (and nltk's ``KneserNeyInterpolated`` unigram level).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from rlimm.errors import RlimmError

# Used when the Chen-Goodman estimates are undefined (a count-of-counts n1..n4 is zero, which happens on
# tiny or very dense corpora): the classic absolute discount.
FALLBACK_DISCOUNT = 0.75

# How many contexts get a precomputed dense row (float32, V entries each) to speed up probs().
DENSE_CACHE_ROWS = 128


def _check_tokens(tokens: torch.Tensor, vocab_size: int, name: str = "tokens") -> torch.Tensor:
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 1:
        raise RlimmError(f"{name} must be a 1-D integer tensor of word ids; got {_describe(tokens)}")
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise RlimmError(f"{name} must be an integer tensor of word ids; got dtype {tokens.dtype}")
    tokens = tokens.to(torch.int64)
    if tokens.numel() > 0:
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= vocab_size:
            bad = lo if lo < 0 else hi
            raise RlimmError(f"{name} contains word id {bad}; accepted are ids 0..{vocab_size - 1}")
    return tokens


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dim()}-D tensor of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def bigram_counts(tokens: torch.Tensor, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Count the bigrams (consecutive pairs) of ``tokens``.

    :param tokens: int 1-D tensor of word ids in ``[0, vocab_size)``.
    :param vocab_size: V, the number of word ids.
    :return: ``(keys, counts)``: sorted distinct keys ``v * V + w`` (int64) and their counts (int64).
    """
    tokens = _check_tokens(tokens, vocab_size)
    keys = tokens[:-1] * vocab_size + tokens[1:]
    return torch.unique(keys, sorted=True, return_counts=True)


def count_of_counts(counts: torch.Tensor, max_count: int = 4) -> torch.Tensor:
    """Count-of-counts ``n_r``: how many distinct bigrams were seen exactly ``r`` times.

    :param counts: int tensor of bigram counts (one entry per distinct bigram).
    :param max_count: the largest ``r`` reported.
    :return: int64 tensor ``(max_count,)`` holding ``n_1 .. n_max_count``.
    """
    binned = torch.bincount(counts.to(torch.int64).clamp(max=max_count + 1), minlength=max_count + 2)
    return binned[1 : max_count + 1]


def modified_discounts(counts: torch.Tensor) -> torch.Tensor:
    """Chen & Goodman's modified Kneser-Ney discounts from count-of-counts.

    ``Y = n1 / (n1 + 2 n2)``, ``D1 = 1 - 2 Y n2 / n1``, ``D2 = 2 - 3 Y n3 / n2``, ``D3+ = 3 - 4 Y n4 / n3``,
    each clamped into ``[0, r]`` (the range that keeps every distribution normalised). If one of n1..n4
    is zero the estimates are undefined and all three discounts are ``FALLBACK_DISCOUNT``.

    :param counts: int tensor of bigram counts (one entry per distinct bigram).
    :return: float64 tensor ``(3,)``: D1, D2, D3+.
    """
    n1, n2, n3, n4 = (float(n) for n in count_of_counts(counts, 4))
    if min(n1, n2, n3, n4) == 0:
        return torch.full((3,), FALLBACK_DISCOUNT, dtype=torch.float64)
    y = n1 / (n1 + 2 * n2)
    raw = torch.tensor([1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3], dtype=torch.float64)
    return torch.minimum(raw.clamp(min=0.0), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


def _as_discounts(discounts: float | Sequence[float] | torch.Tensor) -> torch.Tensor:
    if isinstance(discounts, (int, float)) and not isinstance(discounts, bool):
        d = float(discounts)
        if not 0.0 <= d <= 1.0:
            raise RlimmError(f"discount {discounts!r} is out of range; a single discount must be in [0, 1]")
        return torch.full((3,), d, dtype=torch.float64)
    try:
        values = torch.as_tensor(discounts, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise RlimmError(
            f"discounts {discounts!r} not understood; give one number in [0, 1] or three (D1, D2, D3+)"
        ) from exc
    if values.numel() != 3:
        raise RlimmError(
            f"discounts {discounts!r} has {values.numel()} values; give one number or three (D1, D2, D3+)"
        )
    limits = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    if not bool(((values >= 0) & (values <= limits)).all()):
        raise RlimmError(
            f"discounts {values.tolist()} out of range; accepted are "
            "0 <= D1 <= 1, 0 <= D2 <= 2, 0 <= D3+ <= 3"
        )
    return values.clone()


class KneserNeyBigram:
    """Interpolated modified Kneser-Ney bigram (Chen & Goodman).

    Build it with :meth:`fit` (or :meth:`from_state_dict`). Attributes:

    - ``vocab_size``: V.
    - ``discounts``: float64 ``(3,)``: D1, D2, D3+.
    - ``continuation_discount``: d' of the backoff distribution.
    - ``bigram_keys`` / ``bigram_counts``: sorted distinct keys ``v * V + w`` and their counts (int64).
    - ``bigram_next``: int64, the next word w of each key; ``bigram_alpha``: float64, its discounted
      term ``max(c(v, w) - D, 0) / c(v)``.
    - ``row_ptr``: int64 ``(V + 1,)``; the bigrams of context v are ``bigram_keys[row_ptr[v]:row_ptr[v+1]]``.
    - ``context_counts``: int64 ``(V,)`` c(v), the number of bigrams (v, .).
    - ``followers``: int64 ``(V,)`` N1+(v .), the number of distinct words following v.
    - ``gamma``: float64 ``(V,)`` backoff weight gamma(v) (1 for contexts never seen).
    - ``continuation``: float64 ``(V,)`` p_cont, sums to 1 (strictly positive if d' > 0).
    """

    def __init__(
        self,
        vocab_size: int,
        bigram_keys: torch.Tensor,
        bigram_counts: torch.Tensor,
        discounts: float | Sequence[float] | torch.Tensor,
        continuation_discount: float,
    ) -> None:
        """Build the model from sparse bigram counts (use :meth:`fit` to count a token sequence).

        :param vocab_size: V, the number of word ids.
        :param bigram_keys: sorted distinct int64 keys ``v * V + w``.
        :param bigram_counts: the (positive) count of each key.
        :param discounts: one discount in [0, 1] for all counts, or three (D1, D2, D3+).
        :param continuation_discount: d' in [0, 1] of the backoff distribution.
        """
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
            raise RlimmError(f"vocab_size {vocab_size!r} must be a positive integer")
        d_cont = float(continuation_discount)
        if not 0.0 <= d_cont <= 1.0:
            raise RlimmError(f"continuation_discount {continuation_discount!r} must be in [0, 1]")
        keys = bigram_keys.to(torch.int64)
        counts = bigram_counts.to(torch.int64)
        if keys.dim() != 1 or keys.shape != counts.shape or keys.numel() == 0:
            raise RlimmError("bigram_keys and bigram_counts must be non-empty 1-D tensors of equal length")
        if bool((keys[1:] <= keys[:-1]).any()) or int(keys[0]) < 0 or int(keys[-1]) >= vocab_size**2:
            raise RlimmError(f"bigram_keys must be strictly increasing keys in [0, {vocab_size}^2)")
        if bool((counts <= 0).any()):
            raise RlimmError("bigram_counts must be positive")
        V = vocab_size
        self.vocab_size = V
        self.discounts = _as_discounts(discounts)
        self.continuation_discount = d_cont
        self.bigram_keys = keys
        self.bigram_counts = counts
        prev = keys // V
        self.bigram_next = keys % V

        self.context_counts = torch.zeros(V, dtype=torch.int64).index_add(0, prev, counts)
        self.followers = torch.bincount(prev, minlength=V)
        self.row_ptr = torch.zeros(V + 1, dtype=torch.int64)
        self.row_ptr[1:] = torch.cumsum(self.followers, 0)

        # D(c) per bigram; as D_r <= r, exactly D(c) is removed from every bigram, and gamma collects it.
        d_of = self.discounts[counts.clamp(max=3) - 1]
        c_prev = self.context_counts[prev].to(torch.float64)
        self.bigram_alpha = (counts.to(torch.float64) - d_of).clamp(min=0.0) / c_prev
        removed = torch.zeros(V, dtype=torch.float64).index_add(0, prev, d_of)
        seen = self.context_counts > 0
        self.gamma = torch.where(seen, removed / self.context_counts.clamp(min=1).to(torch.float64), 1.0)

        # Continuation distribution: distinct left neighbours, discounted, mass spread uniformly.
        left = torch.bincount(self.bigram_next, minlength=V).to(torch.float64)
        n_types = float(keys.numel())
        n_continued = float((left > 0).sum())
        self.continuation = (left - d_cont).clamp(min=0.0) / n_types + d_cont * n_continued / n_types / V

        # float32 copies for probs(), which is called every training batch.
        self._alpha32 = self.bigram_alpha.to(torch.float32)
        self._gamma32 = self.gamma.to(torch.float32)
        self._cont32 = self.continuation.to(torch.float32)

        # Dense rows for the contexts that cost the most to scatter (frequent and with many followers):
        # on PTB the top 128 hold ~98% of the bigram entries a training batch gathers, so probs() mostly
        # copies cached rows. _cache_slot[v] is v's row in _cache, or -1.
        work = self.context_counts.to(torch.float64) * self.followers.to(torch.float64)
        n_cached = min(DENSE_CACHE_ROWS, int((work > 0).sum()))
        cached = torch.argsort(work, descending=True, stable=True)[:n_cached]
        self._cache_slot = torch.full((V,), -1, dtype=torch.int64)
        self._cache_slot[cached] = torch.arange(n_cached, dtype=torch.int64)
        self._cache = self._scatter_probs(cached)

    @property
    def device(self) -> torch.device:
        """Where the tables live."""
        return self.bigram_keys.device

    def to(self, device: torch.device | str) -> KneserNeyBigram:
        """The same model with every table on ``device`` (``self`` when they are there already)."""
        device = torch.device(device)
        if self.device == device:
            return self
        moved = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(moved, name, value.to(device))
        return moved

    @classmethod
    def fit(
        cls,
        tokens: torch.Tensor,
        vocab_size: int,
        discounts: float | Sequence[float] | None = None,
        continuation_discount: float | None = None,
    ) -> KneserNeyBigram:
        """Count the bigrams of ``tokens`` and build the model.

        :param tokens: int 1-D tensor of word ids (at least two); bigrams are its consecutive pairs.
        :param vocab_size: V; ids must lie in ``[0, V)``.
        :param discounts: None for the modified Kneser-Ney estimates from count-of-counts (see
            :func:`modified_discounts`); one number in [0, 1] for a single discount (nltk-style); or three
            numbers D1, D2, D3+.
        :param continuation_discount: d' in [0, 1] for the backoff distribution; None means D1 (the bigram
            level's discount for singletons), which keeps p_cont strictly positive whenever D1 > 0. Use 0
            for the textbook continuation distribution (nltk's), which is zero for words never seen after
            another word.
        :return: the fitted model.
        """
        tokens = _check_tokens(tokens, vocab_size)
        if tokens.numel() < 2:
            raise RlimmError(f"need at least 2 tokens to count bigrams; got {tokens.numel()}")
        keys, counts = bigram_counts(tokens, vocab_size)
        d = modified_discounts(counts) if discounts is None else _as_discounts(discounts)
        d_cont = float(d[0]) if continuation_discount is None else continuation_discount
        return cls(vocab_size, keys, counts, d, d_cont)

    def probs(self, contexts: torch.Tensor) -> torch.Tensor:
        """Full next-word distributions for a batch of contexts.

        :param contexts: int 1-D tensor ``(B,)`` of previous-word ids.
        :return: float32 ``(B, V)``; row b is ``P(. | contexts[b])`` and sums to 1.
        """
        ctx = _check_tokens(contexts, self.vocab_size, "contexts")
        slot = self._cache_slot[ctx]
        # Copy every row from the cache (uncached contexts get row 0 for now), then rebuild the others.
        out = self._cache.index_select(0, slot.clamp(min=0))
        miss = torch.nonzero(slot < 0)[:, 0]
        if miss.numel() > 0:
            ctx_miss = ctx[miss]
            out[miss] = self._gamma32[ctx_miss, None] * self._cont32[None, :]
            self._add_discounted_counts(out, miss, ctx_miss)
        return out

    def _scatter_probs(self, ctx: torch.Tensor) -> torch.Tensor:
        """``probs`` without the dense-row cache (builds the cache; tests compare both paths)."""
        out = self._gamma32[ctx, None] * self._cont32[None, :]
        self._add_discounted_counts(out, torch.arange(ctx.numel(), dtype=torch.int64, device=ctx.device), ctx)
        return out

    def _add_discounted_counts(self, out: torch.Tensor, rows: torch.Tensor, ctx: torch.Tensor) -> None:
        """Add ``max(c(v, w) - D, 0) / c(v)`` of context ``ctx[i]`` to ``out[rows[i]]``, in place."""
        starts = self.row_ptr[ctx]
        lengths = self.row_ptr[ctx + 1] - starts
        total = int(lengths.sum())
        if total == 0:
            return
        ends = torch.cumsum(lengths, 0)
        # Context i's bigrams are the CSR slice starting at starts[i]; laid end to end, entry j of the
        # concatenation (running position j) is bigram j + starts[i] - (ends[i] - lengths[i]).
        shift = torch.repeat_interleave(starts - (ends - lengths), lengths, output_size=total)
        pair = torch.arange(total, dtype=torch.int64, device=shift.device) + shift
        row_base = torch.repeat_interleave(rows * self.vocab_size, lengths, output_size=total)
        flat = row_base + self.bigram_next[pair]
        # Every (row, word) position receives at most one value, so the add is exact and deterministic.
        out.view(-1).index_add_(0, flat, self._alpha32[pair])

    def log_prob(self, prev: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        """``log P(nxt | prev)`` for pairs of ids, without building full rows.

        :param prev: int 1-D tensor ``(N,)`` of previous-word ids.
        :param nxt: int 1-D tensor ``(N,)`` of next-word ids.
        :return: float64 ``(N,)`` log probabilities (``-inf`` only where the probability is 0, which
            needs ``continuation_discount=0``).
        """
        prev = _check_tokens(prev, self.vocab_size, "prev")
        nxt = _check_tokens(nxt, self.vocab_size, "nxt")
        if prev.shape != nxt.shape:
            raise RlimmError(f"prev and nxt must have the same length; got {prev.numel()} and {nxt.numel()}")
        keys = prev * self.vocab_size + nxt
        pos = torch.searchsorted(self.bigram_keys, keys).clamp(max=self.bigram_keys.numel() - 1)
        found = self.bigram_keys[pos] == keys
        alpha = torch.where(found, self.bigram_alpha[pos], 0.0)
        return torch.log(alpha + self.gamma[prev] * self.continuation[nxt])

    def perplexity(self, tokens: torch.Tensor) -> float:
        """Perplexity over the consecutive pairs ``(tokens[i], tokens[i + 1])``.

        :param tokens: int 1-D tensor of at least two word ids.
        :return: ``exp`` of the mean negative log probability.
        """
        tokens = _check_tokens(tokens, self.vocab_size)
        if tokens.numel() < 2:
            raise RlimmError(f"need at least 2 tokens for a perplexity; got {tokens.numel()}")
        nll = -self.log_prob(tokens[:-1], tokens[1:]).mean()
        return math.exp(float(nll))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the model (tensors and plain numbers; ``torch.save``-able and
        loadable with ``torch.load(..., weights_only=True)``)."""
        return {
            "vocab_size": self.vocab_size,
            "bigram_keys": self.bigram_keys.clone(),
            "bigram_counts": self.bigram_counts.clone(),
            "discounts": self.discounts.clone(),
            "continuation_discount": self.continuation_discount,
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> KneserNeyBigram:
        """Rebuild a model saved with :meth:`state_dict`.

        :param state: the mapping returned by :meth:`state_dict`.
        :return: the model.
        """
        expected = ("vocab_size", "bigram_keys", "bigram_counts", "discounts", "continuation_discount")
        missing = [k for k in expected if k not in state]
        if missing:
            raise RlimmError(
                f"Kneser-Ney state lacks {', '.join(missing)}; expected the keys {', '.join(expected)}"
            )
        return cls(
            int(state["vocab_size"]),
            state["bigram_keys"],
            state["bigram_counts"],
            state["discounts"],
            float(state["continuation_discount"]),
        )
