"""A tiny corpus drawn from a known bigram (first-order Markov) process, for fast tests.

Word 0 of the generating process is ``<eos>`` and word i > 0 is ``"w{i}"``. Each row of the true
transition matrix puts its mass on a few words (Dirichlet weights, floored so no allowed transition is
negligible); its support always includes the "next" word ``(i + 1) mod V``, which makes the chain
irreducible so every word occurs in a long enough sample. Each split is an independent run of the chain
started at ``<eos>``, matching the PTB convention that every split is preceded by one ``<eos>``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
import torch

from rlimm.errors import RlimmError
from rlimm.lm.data import EOS, SPLITS, Corpus, corpus_from_tokens

# Words each transition row can reach (including the cycle successor), and the share of a row's mass
# spread evenly over its support: keeps every allowed transition at least FLOOR / SUPPORT likely.
SUPPORT = 4
FLOOR = 0.2


@dataclass(frozen=True)
class SyntheticBigram:
    """A sampled corpus with its generating process.

    :param transition: float64 ``(V, V)`` true ``P(w | v)`` indexed by the corpus's word ids (rows sum
        to 1).
    :param corpus: the sampled splits; ``corpus.vocab`` orders the words by training frequency.
    """

    transition: torch.Tensor
    corpus: Corpus


def _word(i: int) -> str:
    return EOS if i == 0 else f"w{i}"


def _positive_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise RlimmError(f"{name} {value!r} is not accepted; give an integer >= {minimum}")
    return int(value)


def _sample_chain(cumulative: list[list[float]], n: int, rng: np.random.Generator) -> list[int]:
    # One uniform draw per step, inverted through the row's cumulative distribution.
    uniforms = rng.random(n).tolist()
    state, out = 0, []
    for u in uniforms:
        state = bisect.bisect_right(cumulative[state], u)
        out.append(state)
    return out


def synthetic_bigram_corpus(
    vocab_size: int = 12, n_train: int = 4000, n_valid: int = 500, n_test: int = 500, seed: int = 0
) -> SyntheticBigram:
    """Sample a corpus from a random sparse bigram process.

    :param vocab_size: V, the number of words including ``<eos>`` (at least 2).
    :param n_train: number of sampled training tokens (the split tensor has one more: the leading eos).
    :param n_valid: number of sampled validation tokens.
    :param n_test: number of sampled test tokens.
    :param seed: seed of the ``numpy.random.Generator`` that draws the process and the samples; the
        result is a deterministic function of all arguments.
    :return: the transition matrix (in the corpus's id order) and the corpus.
    :raises RlimmError: on invalid sizes, or if ``n_train`` is too small for every word to occur.
    """
    V = _positive_int("vocab_size", vocab_size, 2)
    sizes = [
        _positive_int(f"n_{split}", n, 1) for split, n in zip(SPLITS, (n_train, n_valid, n_test), strict=True)
    ]
    rng = np.random.default_rng(seed)

    k = min(SUPPORT, V)
    transition = np.zeros((V, V))
    for v in range(V):  # V is tiny; a loop over rows is clearer than index tricks here
        others = np.array([w for w in range(V) if w != (v + 1) % V])
        support = np.concatenate([[(v + 1) % V], rng.choice(others, size=k - 1, replace=False)])
        transition[v, support] = (1 - FLOOR) * rng.dirichlet(np.ones(k)) + FLOOR / k
    transition /= transition.sum(axis=1, keepdims=True)

    cumulative = np.cumsum(transition, axis=1)
    # From a row's last reachable word on, the threshold is +inf: rounding can never select a word
    # with zero probability, nor run past the end.
    last = V - 1 - np.argmax(transition[:, ::-1] > 0, axis=1)
    cumulative[np.arange(V)[None, :] >= last[:, None]] = np.inf
    rows = cumulative.tolist()

    samples = [[_word(i) for i in _sample_chain(rows, n, rng)] for n in sizes]
    missing = sorted(set(range(V)) - {int(w[1:]) if w != EOS else 0 for w in samples[0]})
    if missing:
        raise RlimmError(
            f"n_train {n_train} is too small: words {[_word(i) for i in missing]} never occur in the "
            "sampled training split; use a larger n_train"
        )
    corpus = corpus_from_tokens(*samples, source="synthetic bigram")

    # Re-index the true process by the corpus ids (which are ordered by training frequency).
    original = torch.tensor([0 if w == EOS else int(w[1:]) for w in corpus.vocab.words], dtype=torch.int64)
    true = torch.from_numpy(transition)[original][:, original].contiguous()
    return SyntheticBigram(transition=true, corpus=corpus)
