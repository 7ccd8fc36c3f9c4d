"""Restricted models of the logistic-regression experiment: the exact teacher and estimated ones, and
the induced model of the learner (which must reproduce the exact teacher at the true parameters)."""

import numpy as np
import pytest
import torch

from rlimm.induction import induced_log_probs, induced_probs
from rlimm.logreg.data import TrueModel, sample_features
from rlimm.logreg.restricted import (
    ExactTeacher,
    fit_logistic_teacher,
    monte_carlo_restricted_prob,
    quadrature_restricted_prob,
)
from rlimm.logreg.train import induced_positive_prob

MODEL = TrueModel((4.0, 4.0, 4.0), 0.0)
SKEWED = TrueModel((2.5, -3.0, 1.5), 0.7)  # unequal weights and a bias: no symmetry to hide behind
X1 = np.linspace(-1.0, 1.0, 21)


@pytest.mark.parametrize("model", [MODEL, SKEWED])
def test_quadrature_agrees_with_monte_carlo(model):
    samples = 200_000
    mc = monte_carlo_restricted_prob(model, X1, samples, np.random.default_rng(0))
    quad = quadrature_restricted_prob(model, X1)
    # Each Monte Carlo value has standard error <= 0.5 / sqrt(samples) ~ 0.0011.
    assert np.abs(mc - quad).max() < 5 * 0.5 / np.sqrt(samples)
    # The quadrature itself is converged, and the tabulated teacher reproduces it.
    np.testing.assert_allclose(quadrature_restricted_prob(model, X1, nodes=32), quad, atol=1e-9)
    np.testing.assert_allclose(ExactTeacher.build(model).prob(X1), quad, atol=1e-6)


def test_restricted_model_is_informative_but_not_sufficient():
    p = quadrature_restricted_prob(MODEL, X1)
    assert np.all(np.diff(p) > 0)  # increasing in x1
    # Far from certain even at the edges (measured; quadrature in float64).
    assert p[0] == pytest.approx(0.14984754475220577, rel=1e-9)
    assert p[-1] == pytest.approx(0.8501524552477939, rel=1e-9)
    np.testing.assert_allclose(p + p[::-1], 1.0, atol=1e-12)  # symmetric model, symmetric teacher


@pytest.mark.parametrize("model", [MODEL, SKEWED])
def test_induced_model_of_the_true_model_is_the_bayes_optimal_restricted_model(model):
    # Population induction with the core: hidden values on a Gauss-Legendre rule, belief = its weights.
    g, gw = np.polynomial.legendre.leggauss(40)
    hidden = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    belief = np.tile((gw[:, None] * gw[None, :]).ravel() / 4.0, (len(X1), 1))
    x = np.concatenate([np.repeat(X1, len(hidden))[:, None], np.tile(hidden, (len(X1), 1))], 1)
    p_full = model.prob(x).reshape(len(X1), len(hidden))
    probs = torch.from_numpy(np.stack([1 - p_full, p_full], -1))
    induced = induced_probs(probs, torch.from_numpy(belief))[:, 1].numpy()
    np.testing.assert_allclose(induced, ExactTeacher.build(model).prob(X1), atol=1e-6)

    # The learner's induction, exact over a (large) sample of hidden parts, at the true parameters.
    n = 20_000
    sample = sample_features(np.random.default_rng(1), (1, n))
    sample[0, : len(X1), 0] = X1  # evaluate at the chosen x1 values
    theta = torch.from_numpy(model.theta[None, :])
    q = induced_positive_prob(theta, torch.from_numpy(sample), torch.arange(len(X1)))[0].numpy()
    assert np.abs(q - ExactTeacher.build(model).prob(X1)).max() < 5 * 0.5 / np.sqrt(n)


def test_learner_induction_is_the_core_induction():
    # induced_positive_prob is the binary special case of rlimm.induction for a logistic learner.
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 7, 3, generator=gen, dtype=torch.float64) * 2 - 1
    theta = torch.randn(3, 4, generator=gen, dtype=torch.float64) * 3
    contexts = torch.tensor([0, 2, 5])
    fast = induced_positive_prob(theta, x, contexts)
    for b in range(3):
        full = torch.cat([x[b, contexts, None, :1].expand(-1, 7, 1), x[b, None, :, 1:].expand(3, 7, 2)], -1)
        z = theta[b, 0] + full @ theta[b, 1:]
        core = induced_log_probs(torch.stack([torch.zeros_like(z), z], -1)).exp()[:, 1]
        torch.testing.assert_close(fast[b], core)


def test_estimated_teachers_improve_with_their_restricted_sample():
    exact = ExactTeacher.build(MODEL).prob(X1)
    errors = []
    for samples in (10, 100, 5000):
        teacher = fit_logistic_teacher(MODEL, 100, samples, np.random.default_rng(samples))
        p = teacher.prob(np.tile(X1, (100, 1)))
        assert p.shape == (100, len(X1)) and np.isfinite(p).all()
        np.testing.assert_allclose(teacher.prob(X1), p)  # shared points broadcast over runs
        errors.append(np.abs(p - exact).mean())
    assert errors[0] > errors[1] > errors[2]
    # Measured (seeded). With 5000 samples a one-feature logistic is not exactly P̄ (a mean of
    # sigmoids), but within 0.008 of it on average.
    assert errors == pytest.approx(
        [0.15869001058917515, 0.050911774525696306, 0.007801400763116488], rel=1e-6
    )
