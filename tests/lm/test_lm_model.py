"""The LSTM, BPTT batching and Kneser-Ney noising: shapes, carried state, noising statistics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rlimm.lm.batches import batchify, n_windows, window
from rlimm.lm.kneser_ney import KneserNeyBigram
from rlimm.lm.model import LSTMLanguageModel, detach_hidden
from rlimm.lm.noising import KNNoiser
from rlimm.lm.synthetic import synthetic_bigram_corpus


def _model(**kw):
    torch.manual_seed(0)
    args = {"vocab_size": 7, "hidden": 5, "layers": 2, "dropout": 0.0} | kw
    return LSTMLanguageModel(**args)


def test_forward_is_time_major_and_last_only_decodes_the_last_step():
    model = _model().eval()
    tokens = torch.randint(0, 7, (6, 3))  # (T, B)
    logits, (h, c) = model(tokens)
    assert logits.shape == (6, 3, 7)
    assert h.shape == c.shape == (2, 3, 5)
    last, _ = model(tokens, last_only=True)
    torch.testing.assert_close(last, logits[-1])
    # Column b of the output depends on column b of the input only (batch independence, time-major).
    alone, _ = model(tokens[:, 1:2])
    torch.testing.assert_close(alone[:, 0], logits[:, 1])
    with pytest.raises(ValueError, match=r"\(T, B\)"):
        model(tokens.flatten())


def test_init_is_uniform_within_scale_and_hidden_starts_at_zero():
    model = _model(vocab_size=50, hidden=20, init_scale=0.1)
    values = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert values.abs().max() <= 0.1
    # Uniform on [-0.1, 0.1]: mean 0, standard deviation 0.1/√3 (biases included, as in Zaremba).
    assert abs(values.mean()) < 0.005 and abs(values.std() - 0.1 / math.sqrt(3)) < 0.003
    h, c = model.init_hidden(4)
    assert h.shape == (2, 4, 20) and not h.any() and not c.any()


def test_tied_weights_share_the_embedding():
    model = _model(tie_weights=True)
    assert model.decoder.weight is model.embedding.weight
    n_tied = sum(p.numel() for p in model.parameters())
    assert n_tied == sum(p.numel() for p in _model().parameters()) - 7 * 5


def test_dropout_acts_in_train_mode_only():
    model = _model(dropout=0.5)
    tokens = torch.randint(0, 7, (4, 2))
    model.train()
    a, _ = model(tokens)
    b, _ = model(tokens)
    assert not torch.equal(a, b)
    model.eval()
    c, _ = model(tokens)
    d, _ = model(tokens)
    assert torch.equal(c, d)


def test_batchify_cuts_contiguous_columns():
    tokens = torch.arange(23)
    source = batchify(tokens, 4)
    assert source.shape == (5, 4)  # 23 // 4 = 5 rows, 3 tokens dropped
    assert source[:, 1].tolist() == [5, 6, 7, 8, 9]  # column b is the b-th contiguous chunk


def test_windows_shift_targets_by_one_and_cover_every_column():
    source = batchify(torch.arange(40), 2)  # (20, 2)
    assert n_windows(source, 6) == 4  # inputs 0..18 in windows of 6, 6, 6, 1
    seen = []
    for i in range(n_windows(source, 6)):
        x, y = window(source, i, 6)
        assert torch.equal(y[:-1], x[1:]) and torch.equal(y, x + 1)
        seen.append(x)
    assert torch.equal(torch.cat(seen), source[:-1])
    with pytest.raises(IndexError):
        window(source, 4, 6)


def test_carried_state_reads_each_column_as_one_sequence():
    # Truncated BPTT with a carried (detached) state gives the same predictions as one long pass.
    model = _model().eval()
    source = batchify(torch.randint(0, 7, (61,)), 3)
    full, _ = model(source[:-1])
    hidden, parts = None, []
    for i in range(n_windows(source, 4)):
        x, _ = window(source, i, 4)
        logits, hidden = model(x, hidden)
        hidden = detach_hidden(hidden)
        parts.append(logits)
    torch.testing.assert_close(torch.cat(parts), full)


# --- Kneser-Ney noising -----------------------------------------------------------------------------


def test_replacement_probability_is_gamma0_times_followers_over_count_clamped():
    counts = torch.tensor([10, 4, 0, 5])
    followers = torch.tensor([2, 4, 0, 5])
    cont = torch.tensor([0.1, 0.2, 0.3, 0.4])
    noiser = KNNoiser.from_counts(counts, followers, cont, gamma0=0.5)
    torch.testing.assert_close(noiser.replace_prob, torch.tensor([0.1, 0.5, 0.0, 0.5], dtype=torch.float64))
    clamped = KNNoiser.from_counts(counts, followers, cont, gamma0=3.0)
    torch.testing.assert_close(clamped.replace_prob, torch.tensor([0.6, 1.0, 0.0, 1.0], dtype=torch.float64))


def test_noising_frequency_per_word_matches_the_kn_statistics():
    corpus = synthetic_bigram_corpus(vocab_size=12, n_train=4000, seed=3).corpus
    kn = KneserNeyBigram.fit(corpus.train, 12)
    gamma0 = 60.0  # large, so that rates are measurable on a small vocabulary (some clamp at 1)
    noiser = KNNoiser.from_kn(kn, gamma0)
    expected = (gamma0 * kn.followers.double() / kn.context_counts.double()).clamp(max=1.0)
    assert (expected == 1.0).any() and (expected < 0.9).any()

    source = batchify(corpus.train, 20)
    inputs, targets = source[:-1], source[1:]
    gen = torch.Generator().manual_seed(0)
    hits = torch.zeros(12, dtype=torch.float64)
    draws = 40
    for _ in range(draws):
        _, _, mask = noiser(inputs, targets, gen)
        hits += torch.bincount(inputs[mask], minlength=12).double()
    occurrences = torch.bincount(inputs.flatten(), minlength=12).double() * draws
    rate = hits / occurrences
    # Binomial standard error with occurrences ≥ 40 · 200: 5 σ is below 0.03.
    sigma = (expected * (1 - expected) / occurrences).sqrt()
    assert torch.all((rate - expected).abs() <= 5 * sigma + 1e-12), (rate, expected)


def test_replaced_tokens_follow_the_continuation_distribution_and_both_are_replaced():
    V = 6
    cont = torch.tensor([0.0, 0.0, 0.0, 0.5, 0.3, 0.2])  # words 0..2 can never be drawn
    noiser = KNNoiser.from_counts(torch.ones(V), torch.ones(V), cont, gamma0=0.5)  # every word: 1/2
    gen = torch.Generator().manual_seed(1)
    inputs = torch.randint(0, 3, (200, 50), generator=gen)  # only words 0..2 in the data
    targets = torch.randint(0, 3, (200, 50), generator=gen)
    x, y, mask = noiser(inputs, targets, gen)
    # Exactly the masked positions changed, in the input *and* in the target.
    assert torch.equal(x >= 3, mask) and torch.equal(y >= 3, mask)
    assert torch.equal(x[~mask], inputs[~mask]) and torch.equal(y[~mask], targets[~mask])
    assert abs(mask.double().mean() - 0.5) < 0.02
    # The draws follow p_cont, and input and target are drawn independently of each other.
    xs, ys = x[mask], y[mask]
    n = xs.numel()
    freq = torch.bincount(xs, minlength=V)[3:].double() / n
    torch.testing.assert_close(freq, cont[3:].double(), atol=0.02, rtol=0)
    joint = torch.bincount(xs * V + ys, minlength=V * V).view(V, V).double() / n
    product = torch.outer(cont[3:], cont[3:]).double()
    torch.testing.assert_close(joint[3:, 3:], product, atol=0.015, rtol=0)
    assert not torch.equal(xs, ys)


def test_noising_is_a_function_of_the_generator_state():
    noiser = KNNoiser.from_counts(torch.ones(4), torch.ones(4), torch.full((4,), 0.25), gamma0=0.3)
    inputs = torch.randint(0, 4, (10, 3))
    a = noiser(inputs, inputs, torch.Generator().manual_seed(5))
    b = noiser(inputs, inputs, torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))


def test_noised_training_loss_is_finite_on_real_kn_statistics():
    # An end-to-end sanity check of shapes and dtypes: noised windows feed the model directly.
    corpus = synthetic_bigram_corpus().corpus
    kn = KneserNeyBigram.fit(corpus.train, len(corpus.vocab))
    noiser = KNNoiser.from_kn(kn, 0.2)
    x, y = window(batchify(corpus.train, 4), 0, 5)
    x, y, _ = noiser(x, y, torch.Generator().manual_seed(0))
    logits, _ = _model(vocab_size=len(corpus.vocab))(x)
    assert torch.isfinite(F.cross_entropy(logits.flatten(0, 1), y.flatten()))
