"""Kneser-Ney noising (Xie et al., ICLR 2017), the naive baseline of the language-modelling experiment.

At each input position t, with probability ``γ(x_t) = min(1, γ0 · N1+(x_t, •) / c(x_t))``, both the
input token x_t and its target x_{t+1} are replaced by independent draws from the Kneser-Ney
continuation distribution ``p_cont``. Words followed by many distinct words (whose bigram is closer to
the back-off) are noised more often. In expectation this trains the LSTM towards the bigram's back-off
at every full context: the naive restricted-teacher regulariser (README, "What this is"), applied
through data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KNNoiser:
    """Per-word replacement probabilities and a continuation sampler.

    :param replace_prob: ``(V,)`` probability of noising a position whose input word is v.
    :param continuation_cdf: ``(V,)`` float64 cumulative continuation distribution (last entry 1).
    """

    replace_prob: torch.Tensor
    continuation_cdf: torch.Tensor

    @classmethod
    def from_counts(
        cls,
        context_counts: torch.Tensor,
        followers: torch.Tensor,
        continuation: torch.Tensor,
        gamma0: float,
    ) -> KNNoiser:
        """Build from the bigram statistics ``c(v)``, ``N1+(v, •)`` and ``p_cont``.

        :param context_counts: ``(V,)`` number of times v occurs as a context.
        :param followers: ``(V,)`` number of distinct words that follow v.
        :param continuation: ``(V,)`` continuation distribution (non-negative, positive sum).
        :param gamma0: the base noising rate γ0 ≥ 0.
        """
        if gamma0 < 0:
            raise ValueError(f"gamma0 must be >= 0, got {gamma0}")
        counts = context_counts.to(torch.float64)
        # A word never seen as a context has no bigram statistics: it is never noised.
        ratio = torch.where(counts > 0, followers.to(torch.float64) / counts.clamp_min(1.0), 0.0)
        cdf = torch.cumsum(continuation.to(torch.float64), 0)
        if not cdf[-1] > 0:
            raise ValueError("the continuation distribution has no mass")
        return cls((gamma0 * ratio).clamp(max=1.0), cdf / cdf[-1])

    @classmethod
    def from_kn(cls, kn, gamma0: float) -> KNNoiser:
        """Build from a :class:`rlimm.lm.kneser_ney.KneserNeyBigram`."""
        return cls.from_counts(kn.context_counts, kn.followers, kn.continuation, gamma0)

    def sample_continuation(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` independent draws from ``p_cont`` (inverse-CDF sampling, int64)."""
        # Drawn on the CPU generator, then moved: the same draws on every device.
        u = torch.rand(n, generator=generator, dtype=torch.float64).to(self.continuation_cdf.device)
        idx = torch.searchsorted(self.continuation_cdf, u, right=True)
        # u < 1 = cdf[-1] up to rounding; the clamp guards the rounding case.
        return idx.clamp_(max=self.continuation_cdf.numel() - 1)

    def __call__(
        self, inputs: torch.Tensor, targets: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Noise a window.

        :param inputs: ``(T, B)`` input ids.
        :param targets: ``(T, B)`` target ids (the next words).
        :param generator: the noising generator (its draws depend only on the window's shape).
        :return: ``(noised_inputs, noised_targets, mask)``; ``mask`` marks the replaced positions.
        """
        if inputs.shape != targets.shape:
            raise ValueError(f"inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} differ")
        u = torch.rand(inputs.shape, generator=generator, dtype=torch.float64).to(inputs.device)
        mask = u < self.replace_prob[inputs]
        n = int(mask.sum())
        noised_inputs, noised_targets = inputs.clone(), targets.clone()
        if n:
            draws = self.sample_continuation(2 * n, generator)
            # Input and target are replaced by *independent* draws.
            noised_inputs[mask] = draws[:n]
            noised_targets[mask] = draws[n:]
        return noised_inputs, noised_targets, mask
