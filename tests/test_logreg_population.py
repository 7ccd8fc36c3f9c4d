"""IMM is consistent and noising is not: with population data (quadrature) or a large sample, the true
model minimises the IMM objective for every λ, while the noising objective pulls it elsewhere."""

import numpy as np
import pytest
import torch

from rlimm.logreg.data import TrueModel, sample_dataset
from rlimm.logreg.population import population_minimiser, population_objective
from rlimm.logreg.restricted import ExactTeacher
from rlimm.logreg.train import TrainSettings, objective, train

MODEL = TrueModel((4.0, 4.0, 4.0), 0.0)
SKEWED = TrueModel((2.5, -3.0, 1.5), 0.7)


def _grad(model, method, lam):
    theta = torch.tensor(model.theta, requires_grad=True)
    (g,) = torch.autograd.grad(population_objective(theta, model, method, lam), theta)
    return g


@pytest.mark.parametrize("model", [MODEL, SKEWED])
@pytest.mark.parametrize("lam", [0.25, 1.0, 9.0])
def test_population_imm_objective_is_minimised_at_the_true_model(model, lam):
    assert _grad(model, "imm", lam).norm() < 1e-9
    hess = torch.autograd.functional.hessian(
        lambda t: population_objective(t, model, "imm", lam), torch.tensor(model.theta)
    )
    assert torch.linalg.eigvalsh(hess).min() > 0  # a strict local minimum, and the one found from θ = 0
    np.testing.assert_allclose(population_minimiser(model, "imm", lam), model.theta, atol=1e-6)


@pytest.mark.parametrize("model", [MODEL, SKEWED])
@pytest.mark.parametrize("lam", [0.25, 1.0, 9.0])
def test_population_noising_objective_is_not(model, lam):
    assert _grad(model, "noising", lam).norm() > 1e-2
    theta = population_minimiser(model, "noising", lam)
    # Pulled towards the restricted answer: the hidden weights shrink.
    assert np.all(np.abs(theta[2:]) < 0.9 * np.abs(model.theta[2:]))


def test_noising_bias_grows_with_lambda():
    hidden = [population_minimiser(MODEL, "noising", lam)[2] for lam in (0.1, 1.0, 10.0)]
    assert hidden[0] > hidden[1] > hidden[2] > 0
    np.testing.assert_allclose(population_minimiser(MODEL, "baseline", 0.0), MODEL.theta, atol=1e-6)


def test_large_sample_training_finds_the_true_model_with_imm_but_not_with_noising():
    x, y = sample_dataset(MODEL, 1, 4000, np.random.default_rng(3))
    x, y = x.double(), y.double()
    teacher = torch.from_numpy(ExactTeacher.build(MODEL).prob(x[..., 0].numpy()))
    theta = torch.tensor(MODEL.theta[None, :], requires_grad=True)
    lam = torch.tensor([1.0], dtype=torch.float64)
    grads = {}
    for kind, contexts in (("baseline", 1), ("imm", 4000), ("noising", 1)):
        loss = objective(theta, x, y, teacher, kind, lam, imm_contexts=contexts).sum()
        grads[kind] = torch.autograd.grad(loss, theta)[0].norm().item()
    # At the true parameters IMM's gradient is sampling noise, like the plain likelihood's; noising's
    # is a systematic pull an order of magnitude larger.
    assert grads["imm"] < 0.02 and grads["baseline"] < 0.02
    assert grads["noising"] > 5 * grads["imm"]

    settings = TrainSettings(steps=200)
    fitted = {
        k: train(x.float(), y.float(), teacher.float(), k, 1.0, settings)[0].numpy()
        for k in ("imm", "noising")
    }
    assert np.abs(fitted["imm"] - MODEL.theta).max() < 0.5
    assert np.abs(fitted["noising"][2:]).max() < 2.0
