"""Tests written to kill mutants of the IMM core (rlimm/induction.py, rlimm/losses.py,
rlimm/coefficients.py) that survived the rest of the suite; see docs/mutation.md for the run, the
results and the mutants left alive because they are equivalent."""

import math
import re

import pytest
import torch

from rlimm.coefficients import Linear, paper_grid_ratio
from rlimm.induction import induced_log_probs, induced_probs
from rlimm.losses import imm_loss

F64 = torch.float64


# --------------------------------------------------------------------------- coefficients


def test_paper_rule_accepts_one_epoch():
    # The rule is defined for every positive number of epochs, the smallest included.
    assert paper_grid_ratio(1) == pytest.approx(0.2, abs=1e-12)


def test_linear_stores_checked_floats():
    # __post_init__ writes the checked values back: whatever number type comes in, floats are stored.
    lin = Linear(1, torch.tensor(3.0))
    assert type(lin.start) is float and type(lin.end) is float
    assert (lin.start, lin.end) == (1.0, 3.0)
    assert vars(lin) == {"start": 1.0, "end": 3.0}


def test_linear_clamps_progress_remaining_to_the_unit_interval():
    # Outside [0, 1] the schedule holds its end values; it never extrapolates.
    lin = Linear(0.2, 1.0)
    assert lin.value(1.5) == pytest.approx(0.2, abs=1e-15)
    assert lin.value(2.5) == pytest.approx(0.2, abs=1e-15)
    assert lin.value(-0.5) == pytest.approx(1.0, abs=1e-15)


# --------------------------------------------------------------------------- induction: messages


def test_shape_errors_name_the_expected_and_the_given_shapes():
    # The messages tell the caller what was expected, exactly.
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


# --------------------------------------------------------------------------- losses: shared contexts


def test_imm_loss_with_rows_reads_each_example_from_its_context_row():
    # Two distinct visible contexts, induced once each; four examples point at them through `rows`.
    probs = torch.tensor(
        [[[0.9, 0.1], [0.1, 0.9]], [[0.6, 0.4], [0.2, 0.8]]], dtype=F64
    )  # induced (uniform): [0.5, 0.5] and [0.4, 0.6]
    teacher = torch.tensor([[0.3, 0.7], [0.8, 0.2], [0.5, 0.5], [0.4, 0.6]], dtype=F64)
    rows = torch.tensor([1, 0, 0, 1])

    def kl(p, q):
        return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))

    induced = [[0.5, 0.5], [0.4, 0.6]]
    expected = sum(kl(teacher[i].tolist(), induced[r]) for i, r in enumerate(rows.tolist())) / 4
    out = imm_loss(teacher, probs.log(), rows=rows)
    assert out.shape == ()
    assert out.item() == pytest.approx(expected, rel=1e-12)
    # rows=None is row i for example i; identity rows give the same value.
    two = teacher[[1, 3]]
    assert imm_loss(two, probs.log()).item() == pytest.approx(
        imm_loss(two, probs.log(), rows=torch.tensor([0, 1])).item(), rel=1e-15
    )
    assert imm_loss(two, probs.log()).item() == pytest.approx(
        (kl(two[0].tolist(), induced[0]) + kl(two[1].tolist(), induced[1])) / 2, rel=1e-12
    )
