"""Exact induced models: Q̄(y|x̄) = Σ_h π(h|x̄) softmax(logits)_h."""

import math
import re

import pytest
import torch

from rlimm.induction import induced_log_probs, induced_probs

# A toy written out by hand: 2 visible contexts, 3 hidden values, 2 classes.
# Logits are chosen so that softmax is easy to write down: softmax([log a, log b]) = [a, b] / (a + b).
PROBS = [
    [[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]],  # context 0
    [[0.6, 0.4], [0.3, 0.7], [1.0 / 3.0, 2.0 / 3.0]],  # context 1
]
BELIEF = [[0.5, 0.3, 0.2], [0.1, 0.0, 0.9]]
# Hand marginalisation Σ_h π(h|x̄) Q(y|x̄,h):
#   context 0: 0.5·0.9 + 0.3·0.5 + 0.2·0.2 = 0.64 ; 0.5·0.1 + 0.3·0.5 + 0.2·0.8 = 0.36
#   context 1: 0.1·0.6 + 0·0.3 + 0.9·(1/3) = 0.36 ; 0.1·0.4 + 0·0.7 + 0.9·(2/3) = 0.64
EXPECTED_BELIEF = [[0.64, 0.36], [0.36, 0.64]]
# Uniform belief: (0.9 + 0.5 + 0.2)/3 = 1.6/3 ; (0.6 + 0.3 + 1/3)/3 = (37/30)/3
EXPECTED_UNIFORM = [
    [1.6 / 3.0, 1.4 / 3.0],
    [(0.9 + 1.0 / 3.0) / 3.0, (1.1 + 2.0 / 3.0) / 3.0],
]


def _logits(shift=0.0):
    # log-probabilities plus an arbitrary per-row shift: softmax must undo it.
    return torch.log(torch.tensor(PROBS, dtype=torch.float64)) + shift


def test_induced_log_probs_matches_hand_marginalisation():
    out = induced_log_probs(_logits(), torch.tensor(BELIEF, dtype=torch.float64))
    assert out.shape == (2, 2)
    torch.testing.assert_close(out.exp(), torch.tensor(EXPECTED_BELIEF, dtype=torch.float64))


def test_induced_log_probs_is_invariant_to_logit_shifts():
    shift = torch.tensor([[[3.0], [-7.0], [0.5]], [[100.0], [2.0], [-50.0]]], dtype=torch.float64)
    out = induced_log_probs(_logits(shift), torch.tensor(BELIEF, dtype=torch.float64))
    torch.testing.assert_close(out.exp(), torch.tensor(EXPECTED_BELIEF, dtype=torch.float64))


def test_induced_probs_matches_hand_marginalisation():
    probs = torch.tensor(PROBS, dtype=torch.float64)
    out = induced_probs(probs, torch.tensor(BELIEF, dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor(EXPECTED_BELIEF, dtype=torch.float64))


def test_uniform_belief_none_is_the_mean():
    expected = torch.tensor(EXPECTED_UNIFORM, dtype=torch.float64)
    torch.testing.assert_close(induced_log_probs(_logits()).exp(), expected)
    torch.testing.assert_close(induced_probs(torch.tensor(PROBS, dtype=torch.float64)), expected)
    # and None agrees with an explicit uniform belief
    uniform = torch.full((2, 3), 1.0 / 3.0, dtype=torch.float64)
    torch.testing.assert_close(induced_log_probs(_logits(), uniform), induced_log_probs(_logits()))


def test_induced_log_probs_rows_are_normalised():
    torch.manual_seed(0)
    logits = torch.randn(5, 4, 7, dtype=torch.float64) * 5
    belief = torch.softmax(torch.randn(5, 4, dtype=torch.float64), dim=-1)
    for b in (belief, None):
        total = induced_log_probs(logits, b).exp().sum(-1)
        torch.testing.assert_close(total, torch.ones(5, dtype=torch.float64))


def test_zero_belief_hidden_values_are_ignored_even_with_extreme_logits():
    belief = torch.tensor([[0.0, 1.0, 0.0], [0.25, 0.0, 0.75]], dtype=torch.float64)
    logits = torch.zeros(2, 3, 2, dtype=torch.float64)
    logits[0, 1] = torch.tensor([math.log(0.3), math.log(0.7)])
    logits[1, 0] = torch.tensor([math.log(0.2), math.log(0.8)])
    logits[1, 2] = torch.tensor([math.log(0.6), math.log(0.4)])
    # Ruled-out hidden values get absurd logits: they must not leak into the result.
    logits[0, 0] = torch.tensor([1e6, -1e6])
    logits[0, 2] = torch.tensor([-1e6, 1e6])
    logits[1, 1] = torch.tensor([-1e30, 1e30])
    logits.requires_grad_(True)
    out = induced_log_probs(logits, belief)
    # context 0: only h=1 -> [0.3, 0.7]; context 1: 0.25·[0.2, 0.8] + 0.75·[0.6, 0.4] = [0.5, 0.5]
    expected = torch.tensor([[0.3, 0.7], [0.5, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(out.exp(), expected)
    # and they receive no gradient (nor a nan)
    out[:, 0].sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert torch.all(logits.grad[0, 0] == 0) and torch.all(logits.grad[0, 2] == 0)
    assert torch.all(logits.grad[1, 1] == 0)
    assert logits.grad[0, 1].abs().sum() > 0


def test_zero_belief_ignored_in_induced_probs():
    probs = torch.tensor([[[1.0, 0.0], [0.3, 0.7]]], dtype=torch.float64)
    out = induced_probs(probs, torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor([[0.3, 0.7]], dtype=torch.float64))


@pytest.mark.parametrize("shape", [(2, 3), (6,), (1, 2, 3, 4)])
def test_logits_of_wrong_rank_raise(shape):
    with pytest.raises(ValueError, match="logits must be"):
        induced_log_probs(torch.zeros(shape))


@pytest.mark.parametrize("belief_shape", [(2, 2), (3, 2), (2,), (2, 3, 1)])
def test_belief_of_wrong_shape_raises(belief_shape):
    with pytest.raises(ValueError, match="belief must have shape"):
        induced_log_probs(torch.zeros(2, 3, 4), torch.full(belief_shape, 0.5))


def test_induced_probs_shape_errors_raise_value_error():
    with pytest.raises(ValueError):
        induced_probs(torch.full((2, 3, 2), 0.5), torch.full((2, 2), 0.5))
    with pytest.raises(ValueError):
        induced_probs(torch.full((2, 3), 1.0 / 3.0))


def test_shape_errors_name_the_expected_and_the_given_shapes():
    # Found by mutation testing: the messages tell the caller what was expected, exactly.
    with pytest.raises(
        ValueError, match=re.escape("belief must have shape (2, 3) (batch, n_hidden), got (3, 2)")
    ):
        induced_log_probs(torch.zeros(2, 3, 4), torch.full((3, 2), 0.5))
    with pytest.raises(
        ValueError, match=re.escape("belief must have shape (2, 3) (batch, n_hidden), got (2, 2)")
    ):
        induced_probs(torch.full((2, 3, 4), 0.25), torch.full((2, 2), 0.5))
    with pytest.raises(
        ValueError, match=re.escape("probs must be (batch, n_hidden, n_classes), got shape (2, 3)")
    ):
        induced_probs(torch.full((2, 3), 1.0 / 3.0))
    with pytest.raises(
        ValueError, match=re.escape("logits must be (batch, n_hidden, n_classes), got shape (2, 3)")
    ):
        induced_log_probs(torch.zeros(2, 3))
