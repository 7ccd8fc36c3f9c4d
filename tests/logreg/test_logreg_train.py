"""Batched training: many runs (and λ values) trained as one tensor problem give exactly what training
them one by one does — the one-by-one reference being a plain torch.optim.SGD loop over the core's
imm_loss / naive_loss with the learning rate divided by (1 + λ)."""

import re

import numpy as np
import pytest
import torch

import rlimm.logreg.train as T
from rlimm.errors import RlimmError
from rlimm.logreg.data import TrueModel, sample_dataset
from rlimm.logreg.restricted import ExactTeacher

MODEL = TrueModel((4.0, 4.0, 4.0), 0.0)
# 40 examples with a window of 16 contexts exercises the sliding IMM window (it wraps around).
SETTINGS = T.TrainSettings(steps=30, lr=1.0, momentum=0.9, imm_contexts=16)


def _data(runs=5, n=40, seed=0):
    x, y = sample_dataset(MODEL, runs, n, np.random.default_rng(seed))
    teacher = torch.from_numpy(ExactTeacher.build(MODEL, nodes=32).prob(x[..., 0].numpy().astype(np.float64)))
    return x.double(), y.double(), teacher


@pytest.mark.parametrize("method", ["baseline", "imm", "noising", "interpolation"])
def test_batched_training_equals_training_one_run_at_a_time(method):
    x, y, teacher = _data()
    lams = [0.25, 1.0, 4.0, 0.0, 9.0]  # a different λ for every run
    batched = T.train(x, y, teacher, method, torch.tensor(lams, dtype=torch.float64), SETTINGS)
    one_by_one = torch.stack(
        [T.train_reference(x[r], y[r], teacher[r], method, lams[r], SETTINGS) for r in range(len(lams))]
    )
    torch.testing.assert_close(batched, one_by_one, rtol=1e-9, atol=1e-9)
    if method in ("imm", "noising"):  # the teacher did something
        assert not torch.allclose(batched, T.train(x, y, teacher, "baseline", 0.0, SETTINGS))


def test_small_training_sets_use_every_context_every_step():
    assert T.context_window(7, 10, 32).tolist() == list(range(10))
    assert T.context_window(0, 40, 16).tolist() == list(range(16))
    assert T.context_window(2, 40, 16).tolist() == [32 + i for i in range(8)] + list(range(8))


def test_chunking_runs_does_not_change_the_result(monkeypatch):
    x, y, teacher = _data(runs=6)
    whole = T.train(x, y, teacher, "imm", 1.0, SETTINGS)
    monkeypatch.setattr(T, "_BLOCK_ELEMENTS", 1)  # one run per chunk
    torch.testing.assert_close(T.train(x, y, teacher, "imm", 1.0, SETTINGS), whole, rtol=0, atol=1e-12)


def test_float32_batched_training_matches_the_float64_reference():
    # The experiment trains in float32; that changes nothing that matters.
    x, y, teacher = _data(runs=3)
    fast = T.train(x.float(), y.float(), teacher.float(), "imm", 1.0, SETTINGS).double()
    ref = torch.stack([T.train_reference(x[r], y[r], teacher[r], "imm", 1.0, SETTINGS) for r in range(3)])
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)


def test_interpolation_mixes_the_teacher_in_at_prediction_time():
    theta = torch.tensor([[0.0, 0.0, 1.0, 0.0]])  # Q = σ(x2)
    x_test = torch.tensor([[0.9, -0.5, 0.0], [-0.9, 0.5, 0.0]])
    teacher = torch.tensor([0.9, 0.1])  # P̄ disagrees with Q at both points
    assert T.predict_positive(theta, x_test, "baseline").tolist() == [[False, True]]
    assert T.predict_positive(theta, x_test, "interpolation", 0.2, teacher).tolist() == [[False, True]]
    assert T.predict_positive(theta, x_test, "interpolation", 0.8, teacher).tolist() == [[True, False]]
    with pytest.raises(RlimmError, match="teacher"):
        T.predict_positive(theta, x_test, "interpolation", 0.5)


def test_unknown_method_is_refused():
    x, y, teacher = _data(runs=1, n=4)
    with pytest.raises(
        RlimmError, match=re.escape("unknown method 'kd'; accepted: baseline, imm, noising, interpolation")
    ):
        T.train(x, y, teacher, "kd", 1.0, SETTINGS)


def _steps_by_hand(x, y, teacher, method, lam, settings):
    """The training of one run written out with plain torch ops, independently of rlimm.losses and of
    the trainers: objective (CE + λ·KL(P̄(·|x1_i) ‖ model)) / (1 + λ), heavy-ball SGD from θ = 0.
    IMM's model at x1_i is Q̄_i = (1/n) Σ_j σ(θ0 + θ1·x1_i + θ2·x2_j + θ3·x3_j) — the mean of the
    probabilities, before the log — over a window of contexts (step · size + 0 … size−1) mod n;
    noising's is Q(y|x_i) itself."""

    def kl(t, q):  # binary KL(t ‖ q), elementwise
        return t * torch.log(t / q) + (1 - t) * torch.log((1 - t) / (1 - q))

    if method == "baseline":
        lam = 0.0  # the baseline ignores λ: plain CE at the full learning rate
    n = x.shape[0]
    theta = torch.zeros(4, dtype=x.dtype, requires_grad=True)
    velocity = torch.zeros(4, dtype=x.dtype)
    for step in range(settings.steps):
        p = torch.sigmoid(theta[0] + x @ theta[1:])
        ce = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
        if method == "imm":
            size = min(n, settings.imm_contexts)
            idx = (torch.arange(size) + step * size) % n
            q = torch.stack(
                [
                    torch.sigmoid(theta[0] + theta[1] * x[i, 0] + x[:, 1:] @ theta[2:]).mean()
                    for i in idx.tolist()
                ]
            )
            reg = kl(teacher[idx], q).mean()
        elif method == "noising":
            reg = kl(teacher, p).mean()
        else:
            reg = torch.zeros((), dtype=x.dtype)
        (grad,) = torch.autograd.grad((ce + lam * reg) / (1 + lam), theta)
        with torch.no_grad():
            velocity = settings.momentum * velocity + grad
            theta -= settings.lr * velocity
    return theta.detach()


@pytest.mark.parametrize("method", ["imm", "noising", "baseline"])
def test_training_steps_match_the_objective_written_out_by_hand(method):
    # Three steps: the first IMM window (contexts 0-15), the second (16-31) and the wrapped third
    # (32-39, 0-7); momentum carries the earlier gradients. λ = 0 (the baseline), 1/4 and 4: a wrong
    # sign, a dropped λ or a missing 1/(1+λ) changes the result (λ = 1 alone would hide a dropped λ).
    x, y, teacher = _data(runs=3)
    settings = T.TrainSettings(steps=3, lr=1.0, momentum=0.9, imm_contexts=16)
    lams = [0.25, 4.0, 0.0]
    by_hand = torch.stack(
        [_steps_by_hand(x[r], y[r], teacher[r], method, lams[r], settings) for r in range(3)]
    )
    batched = T.train(x, y, teacher, method, torch.tensor(lams, dtype=torch.float64), settings)
    reference = torch.stack(
        [T.train_reference(x[r], y[r], teacher[r], method, lams[r], settings) for r in range(3)]
    )
    torch.testing.assert_close(batched, by_hand, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(reference, by_hand, rtol=1e-12, atol=1e-12)
    # The teacher term moves the parameters by far more than the tolerance.
    if method != "baseline":
        plain = torch.stack(
            [_steps_by_hand(x[r], y[r], teacher[r], "baseline", 0, settings) for r in range(2)]
        )
        assert (by_hand[:2] - plain).abs().max() > 1e-2


def test_a_python_float_lambda_is_used_at_the_data_precision():
    # λ = 0.1 is not a float32 number: in float64 training it must stay the float64 0.1.
    x, y, teacher = _data(runs=2)
    settings = T.TrainSettings(steps=3, lr=1.0, momentum=0.9, imm_contexts=16)
    for method in ("imm", "noising"):
        batched = T.train(x, y, teacher, method, 0.1, settings)
        by_hand = torch.stack(
            [_steps_by_hand(x[r], y[r], teacher[r], method, 0.1, settings) for r in range(2)]
        )
        torch.testing.assert_close(batched, by_hand, rtol=1e-13, atol=1e-13)


def test_objective_defaults_are_step_0_and_a_window_of_32():
    x, y, teacher = _data(runs=2, n=80)  # more than 32 contexts: the window matters
    theta = torch.tensor([[0.3, 1.0, -0.5, 0.8], [-0.2, 0.4, 1.5, -1.0]], dtype=torch.float64)
    lam = torch.tensor([0.5, 2.0], dtype=torch.float64)
    default = T.objective(theta, x, y, teacher, "imm", lam)
    torch.testing.assert_close(default, T.objective(theta, x, y, teacher, "imm", lam, 0, 32), rtol=0, atol=0)
    assert not torch.allclose(default, T.objective(theta, x, y, teacher, "imm", lam, 1, 32))
    assert not torch.allclose(default, T.objective(theta, x, y, teacher, "imm", lam, 0, 33))


@pytest.mark.parametrize("bias", [-200.0, 200.0])
def test_a_saturated_induced_model_keeps_the_float32_objective_finite(bias):
    # σ(±200) is exactly 0 or 1 in float32: the induced probability is clamped away from both.
    x, y, teacher = _data(runs=1, n=8)
    theta = torch.tensor([[bias, 1.0, 1.0, 1.0]], requires_grad=True)
    loss = T.objective(theta, x.float(), y.float(), teacher.float(), "imm", torch.tensor([1.0]))
    assert torch.isfinite(loss).all()
    (grad,) = torch.autograd.grad(loss.sum(), theta)
    assert torch.isfinite(grad).all()


def test_objective_names_the_accepted_kinds():
    x, y, teacher = _data(runs=1, n=4)
    with pytest.raises(RlimmError, match="unknown objective 'kd'; accepted: baseline, imm, noising"):
        T.objective(torch.zeros(1, 4, dtype=torch.float64), x, y, teacher, "kd", torch.ones(1))


def test_predictions_on_a_test_set_shared_by_all_problems():
    # Two problems, three test points: ŷ = [θ0 + θ[1:]·x > 0]; a tie (logit exactly 0) predicts 0.
    theta = torch.tensor([[0.5, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    x_test = torch.tensor([[-1.0, 0.3, 0.2], [0.0, -0.7, 0.9], [-0.5, 0.1, 0.1]])
    expected = [[False, True, False], [False, False, False]]  # logits [-0.5, 0.5, 0.0] and zeros
    assert T.predict_positive(theta, x_test, "baseline").tolist() == expected
    # Interpolation without a ratio is the baseline; a mixed probability of exactly 0.5 predicts 0.
    teacher = torch.tensor([0.9, 0.2, 0.5])
    assert T.predict_positive(theta, x_test, "interpolation", teacher_test=teacher).tolist() == expected
    assert T.predict_positive(theta[1:], x_test, "interpolation", 0.5, teacher).tolist() == [
        [True, False, False]
    ]
    message = "interpolation needs the teacher's probabilities at the test points"
    with pytest.raises(RlimmError, match=f"^{re.escape(message)}$"):
        T.predict_positive(theta, x_test, "interpolation", 0.5)
