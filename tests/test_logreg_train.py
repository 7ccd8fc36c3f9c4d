"""Batched training: many runs (and λ values) trained as one tensor problem give exactly what training
them one by one does — the one-by-one reference being a plain torch.optim.SGD loop over the core's
imm_loss / naive_loss with the learning rate divided by (1 + λ)."""

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
    with pytest.raises(RlimmError, match="unknown method 'kd'.*imm"):
        T.train(x, y, teacher, "kd", 1.0, SETTINGS)
