"""Interpolated modified Kneser-Ney bigram (rlimm.lm.kneser_ney)."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from rlimm.errors import RlimmError
from rlimm.lm import kneser_ney
from rlimm.lm.data import load_ptb
from rlimm.lm.kneser_ney import FALLBACK_DISCOUNT, KneserNeyBigram, modified_discounts
from rlimm.lm.synthetic import synthetic_bigram_corpus


@pytest.fixture(scope="module")
def ptb_model(ptb_dir):  # skipped without the data, failed in CI (conftest.py)
    corpus = load_ptb(ptb_dir)
    return corpus, KneserNeyBigram.fit(corpus.train, len(corpus.vocab))


def random_tokens(vocab_size: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Zipf-like frequencies so that counts of 1, 2, 3 and more all occur.
    weights = 1.0 / torch.arange(1, vocab_size + 1, dtype=torch.float64)
    return torch.multinomial(weights, n, replacement=True, generator=g)


def tiny_tokens() -> torch.Tensor:
    # Word 0 never follows another word (zero continuation count); word 1 only ends the text (c(1) = 0).
    body = random_tokens(5, 60, seed=7) + 2
    return torch.cat([torch.tensor([0]), body, torch.tensor([1])])


def reference_probs(
    tokens: list[int], V: int, D: tuple[float, float, float], d_cont: float
) -> list[list[float]]:
    """The Kneser-Ney formula written out with dicts and loops, independently of the implementation."""
    pairs = Counter(zip(tokens[:-1], tokens[1:], strict=True))
    c_ctx = Counter()
    gamma_num = Counter()
    left = Counter()
    for (v, w), c in pairs.items():
        c_ctx[v] += c
        gamma_num[v] += D[min(c, 3) - 1]
        left[w] += 1
    types = len(pairs)
    continued = sum(1 for w in range(V) if left[w] > 0)
    p_cont = [max(left[w] - d_cont, 0) / types + d_cont * continued / types / V for w in range(V)]
    rows = []
    for v in range(V):
        if c_ctx[v] == 0:
            rows.append(list(p_cont))
            continue
        row = []
        for w in range(V):
            c = pairs.get((v, w), 0)
            alpha = max(c - D[min(c, 3) - 1], 0) / c_ctx[v] if c else 0.0
            row.append(alpha + gamma_num[v] / c_ctx[v] * p_cont[w])
        rows.append(row)
    return rows


def test_rows_sum_to_one_and_positive_on_small_corpora():
    for tokens, V in ((tiny_tokens(), 7), (synthetic_bigram_corpus().corpus.train, 12)):
        model = KneserNeyBigram.fit(tokens, V)
        P = model.probs(torch.arange(V))
        assert P.shape == (V, V) and P.dtype == torch.float32
        assert float((P.sum(1) - 1).abs().max()) < 1e-5
        assert bool((P > 0).all())
        assert torch.allclose(model.continuation.sum(), torch.tensor(1.0, dtype=torch.float64))
        assert bool((model.continuation > 0).all())


def test_textbook_continuation_has_zeros():
    # With continuation_discount=0 a word never seen after another word gets no backoff mass.
    model = KneserNeyBigram.fit(tiny_tokens(), 7, continuation_discount=0.0)
    assert float(model.continuation[0]) == 0.0
    assert float(model.probs(torch.tensor([1]))[0, 0]) == 0.0
    assert float(model.probs(torch.arange(7)).sum(1).sub(1).abs().max()) < 1e-5


def uncached_fit(monkeypatch, tokens, vocab_size, **kwargs) -> KneserNeyBigram:
    """A model fitted with a dense-row cache of one row (the smallest there is): its ``probs()`` scatters
    the rows of every other context, the path the cache saves."""
    monkeypatch.setattr(kneser_ney, "DENSE_CACHE_ROWS", 1)
    model = KneserNeyBigram.fit(tokens, vocab_size, **kwargs)
    monkeypatch.undo()
    return model


def test_ptb_batch_rows_sum_to_one(ptb_model, monkeypatch):
    corpus, model = ptb_model
    g = torch.Generator().manual_seed(0)
    # Frequent contexts (served from the dense cache) and rare ones (scattered), including repeats.
    contexts = torch.cat(
        [
            corpus.train[torch.randint(0, corpus.train.numel(), (300,), generator=g)],
            torch.arange(9_900, 10_000),
            torch.tensor([corpus.vocab.eos_id] * 3),
        ]
    )
    P = model.probs(contexts)
    assert P.shape == (contexts.numel(), 10_000)
    assert float((P.sum(1).double() - 1).abs().max()) < 1e-5
    assert bool((P > 0).all())
    uncached = uncached_fit(monkeypatch, corpus.train, len(corpus.vocab))
    assert torch.allclose(P, uncached.probs(contexts), rtol=0, atol=1e-7)


def test_hand_computed_entries():
    # Words a=0 b=1 c=2 d=3 e=4; text e a b a b a c b a b d.
    tokens = torch.tensor([4, 0, 1, 0, 1, 0, 2, 1, 0, 1, 3])
    # Bigrams: (e,a)x1 (a,b)x3 (b,a)x3 (a,c)x1 (c,b)x1 (b,d)x1: 6 types.
    model = KneserNeyBigram.fit(tokens, 5, discounts=(0.5, 1.0, 1.5), continuation_discount=0.5)
    # Left neighbours: a {b, e} = 2, b {a, c} = 2, c {a} = 1, d {b} = 1, e none; 4 words continued.
    # p_cont(w) = max(N - 0.5, 0) / 6 + 0.5 * 4 / 6 / 5 = max(N - 0.5, 0) / 6 + 4 / 60.
    expected_cont = torch.tensor([19, 19, 9, 9, 4], dtype=torch.float64) / 60
    assert torch.allclose(model.continuation, expected_cont, rtol=0, atol=1e-15)
    # Context a: c(a) = 4, (a,b)=3 discounted by D3+ = 1.5, (a,c)=1 by D1 = 0.5; gamma = (0.5 + 1.5) / 4.
    P = model.probs(torch.tensor([0, 1, 3, 4])).double()
    assert P[0, 1].item() == pytest.approx(1.5 / 4 + 0.5 * 19 / 60, abs=1e-7)  # 8/15
    assert P[0, 1].item() == pytest.approx(8 / 15, abs=1e-7)
    assert P[0, 2].item() == pytest.approx(1 / 5, abs=1e-7)  # 0.5/4 + 0.5 * 9/60
    assert P[0, 4].item() == pytest.approx(1 / 30, abs=1e-7)  # unseen: 0.5 * 4/60
    assert P[1, 3].item() == pytest.approx(1 / 5, abs=1e-7)  # context b mirrors a
    # Context d only ends the text: P(. | d) = p_cont.
    assert torch.allclose(P[2], expected_cont, atol=1e-7)
    # Context e: c(e) = 1, (e,a) discounted by 0.5, gamma = 0.5.
    assert P[3, 0].item() == pytest.approx(1 / 2 + 19 / 120, abs=1e-7)  # 79/120
    # Count-of-counts n1=4, n2=0: the Chen-Goodman estimates are undefined -> fallback discount.
    default = KneserNeyBigram.fit(tokens, 5)
    assert default.discounts.tolist() == [FALLBACK_DISCOUNT] * 3
    assert default.continuation_discount == FALLBACK_DISCOUNT


@pytest.mark.parametrize("discount", [0.1, 0.6, 1.0])
def test_matches_nltk_single_discount(discount):
    lm = pytest.importorskip("nltk.lm")
    tokens = tiny_tokens()
    V = 7
    words = [f"t{i}" for i in tokens.tolist()]
    bigrams = list(zip(words[:-1], words[1:], strict=True))
    # nltk 3.10's KneserNeyInterpolated: bigram level max(c - d, 0)/c(v) + d N1+(v.)/c(v) * unigram,
    # contexts without counts fall back to the unigram level, and the unigram level is the pure
    # continuation distribution N1+(.w)/N1+(..) (no uniform term, so len(vocab) and <UNK> play no part).
    # That is exactly our discounts=d with continuation_discount=0.
    ref = lm.KneserNeyInterpolated(order=2, discount=discount)
    ref.fit([bigrams], vocabulary_text=words)
    ours = KneserNeyBigram.fit(tokens, V, discounts=discount, continuation_discount=0.0)
    prev = torch.arange(V).repeat_interleave(V)
    nxt = torch.arange(V).repeat(V)
    got = ours.log_prob(prev, nxt).exp()
    expected = torch.tensor(
        [ref.score(f"t{w}", (f"t{v}",)) for v, w in zip(prev.tolist(), nxt.tolist(), strict=True)],
        dtype=torch.float64,
    )
    assert float((got - expected).abs().max()) < 1e-9
    assert float(expected.sum()) == pytest.approx(V, abs=1e-9)


def test_modified_discounts_by_hand():
    # n1=4, n2=2, n3=1, n4=1 (and one count of 7): Y = 4 / (4 + 4) = 0.5,
    # D1 = 1 - 2 * 0.5 * 2/4 = 0.5, D2 = 2 - 3 * 0.5 * 1/2 = 1.25, D3+ = 3 - 4 * 0.5 * 1/1 = 1.0.
    counts = torch.tensor([1, 1, 1, 1, 2, 2, 3, 4, 7])
    assert modified_discounts(counts).tolist() == pytest.approx([0.5, 1.25, 1.0], abs=1e-15)
    # n1=2, n2=1, n3=10, n4=1: D2 = 2 - 3 * 0.5 * 10 < 0 is clamped to 0; D3+ = 3 - 4 * 0.5 / 10 = 2.8.
    counts = torch.tensor([1, 1, 2] + [3] * 10 + [4])
    assert modified_discounts(counts).tolist() == pytest.approx([0.5, 0.0, 2.8], abs=1e-15)


def test_fitted_discounts_match_count_of_counts():
    tokens = random_tokens(30, 3000, seed=1)
    n = Counter(Counter(zip(tokens[:-1].tolist(), tokens[1:].tolist(), strict=True)).values())
    assert min(n[1], n[2], n[3], n[4]) > 0
    y = n[1] / (n[1] + 2 * n[2])
    expected = [1 - 2 * y * n[2] / n[1], 2 - 3 * y * n[3] / n[2], 3 - 4 * y * n[4] / n[3]]
    model = KneserNeyBigram.fit(tokens, 30)
    assert model.discounts.tolist() == pytest.approx(expected, abs=1e-12)
    # The default continuation discount is D1.
    assert model.continuation_discount == pytest.approx(expected[0], abs=1e-12)


def test_log_prob_agrees_with_probs():
    tokens = random_tokens(20, 500, seed=2)
    model = KneserNeyBigram.fit(tokens, 20)
    P = model.probs(torch.arange(20)).double()
    prev = torch.arange(20).repeat_interleave(20)
    nxt = torch.arange(20).repeat(20)
    lp = model.log_prob(prev, nxt)
    assert lp.dtype == torch.float64
    assert torch.allclose(lp.exp(), P[prev, nxt], rtol=1e-6, atol=0)
    pairs = model.log_prob(tokens[:-1], tokens[1:])
    assert model.perplexity(tokens) == pytest.approx(math.exp(-float(pairs.mean())), rel=1e-12)


def test_log_prob_agrees_with_probs_on_ptb(ptb_model):
    corpus, model = ptb_model
    prev, nxt = corpus.valid[:2000], corpus.valid[1:2001]
    P = model.probs(prev).double()
    # log_prob is float64, probs float32: they differ by the float32 rounding of P (measured 1.2e-7).
    assert torch.allclose(model.log_prob(prev, nxt), P[torch.arange(2000), nxt].log(), rtol=0, atol=5e-7)


def test_ptb_discounts_and_perplexities(ptb_model):
    # Measured values (float64 throughout): the Chen-Goodman discounts of the PTB bigram counts, and the
    # bigram's validation and test perplexities (the unigram model is ~690 on valid).
    corpus, model = ptb_model
    assert model.discounts.tolist() == pytest.approx(
        [0.7077248779079559, 1.0838431842243461, 1.4431582707379895], rel=1e-12
    )
    assert model.continuation_discount == pytest.approx(0.7077248779079559, rel=1e-12)
    assert model.perplexity(corpus.valid) == pytest.approx(199.53311069346233, rel=1e-9)
    assert model.perplexity(corpus.test) == pytest.approx(185.71669111612636, rel=1e-9)


def test_approaches_true_transition_with_more_data():
    data = synthetic_bigram_corpus(vocab_size=12, n_train=60_000, seed=5)
    V = len(data.corpus.vocab)
    model = KneserNeyBigram.fit(data.corpus.train, V)
    # Seeded data: the measured errors are exact up to float32 rounding of the probabilities.
    error = float((model.probs(torch.arange(V)).double() - data.transition).abs().max())
    assert error == pytest.approx(0.022213518931796905, rel=1e-5)
    # The same process (same seed) with far fewer samples is estimated worse.
    small = synthetic_bigram_corpus(vocab_size=12, n_train=300, seed=5)
    small_model = KneserNeyBigram.fit(small.corpus.train, V)
    small_error = float((small_model.probs(torch.arange(V)).double() - small.transition).abs().max())
    assert small_error == pytest.approx(0.26552045901559207, rel=1e-5)
    # The held-out perplexity is close to the true process's (3.6186 against 3.6244).
    test = data.corpus.test
    true_ppl = math.exp(-float(data.transition[test[:-1], test[1:]].log().mean()))
    assert true_ppl == pytest.approx(3.6185533802081697, rel=1e-12)
    assert model.perplexity(test) == pytest.approx(3.624429034041468, rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_probs_equal_reference_loop(seed, monkeypatch):
    V = 9
    tokens = random_tokens(V, 80, seed=seed + 10)
    D, d_cont = (0.4, 0.9, 1.3), 0.3
    model = KneserNeyBigram.fit(tokens, V, discounts=D, continuation_discount=d_cont)
    expected = torch.tensor(reference_probs(tokens.tolist(), V, D, d_cont), dtype=torch.float64)
    contexts = torch.tensor([3, 0, 8, 3, 5, 1, 2, 4, 6, 7, 0])
    assert torch.allclose(model.probs(contexts).double(), expected[contexts], rtol=0, atol=1e-6)
    uncached = uncached_fit(monkeypatch, tokens, V, discounts=D, continuation_discount=d_cont)
    assert torch.allclose(uncached.probs(contexts).double(), expected[contexts], rtol=0, atol=1e-6)
    prev = torch.arange(V).repeat_interleave(V)
    nxt = torch.arange(V).repeat(V)
    assert torch.allclose(model.log_prob(prev, nxt).exp(), expected[prev, nxt], rtol=1e-12, atol=0)


def test_state_dict_round_trip(tmp_path):
    tokens = random_tokens(15, 400, seed=3)
    model = KneserNeyBigram.fit(tokens, 15)
    path = tmp_path / "kn.pt"
    torch.save(model.state_dict(), path)
    loaded = KneserNeyBigram.from_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(loaded.probs(torch.arange(15)), model.probs(torch.arange(15)))
    assert torch.equal(loaded.discounts, model.discounts)
    with pytest.raises(RlimmError, match="bigram_counts"):
        KneserNeyBigram.from_state_dict({k: v for k, v in model.state_dict().items() if k != "bigram_counts"})


def test_bad_arguments_are_user_errors():
    tokens = random_tokens(5, 50, seed=4)
    with pytest.raises(RlimmError, match="1.5"):
        KneserNeyBigram.fit(tokens, 5, discounts=1.5)
    with pytest.raises(RlimmError, match="D2"):
        KneserNeyBigram.fit(tokens, 5, discounts=(0.5, 2.5, 1.0))
    with pytest.raises(RlimmError, match="three"):
        KneserNeyBigram.fit(tokens, 5, discounts=(0.5, 0.5))
    with pytest.raises(RlimmError, match="continuation_discount"):
        KneserNeyBigram.fit(tokens, 5, continuation_discount=-0.1)
    with pytest.raises(RlimmError, match="word id 7"):
        KneserNeyBigram.fit(torch.tensor([0, 7, 1]), 5)
    with pytest.raises(RlimmError, match="at least 2"):
        KneserNeyBigram.fit(torch.tensor([1]), 5)
    model = KneserNeyBigram.fit(tokens, 5)
    with pytest.raises(RlimmError, match="word id 5"):
        model.probs(torch.tensor([0, 5]))
    with pytest.raises(RlimmError, match="1-D"):
        model.probs(torch.zeros(2, 2, dtype=torch.int64))
