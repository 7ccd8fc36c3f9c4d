"""λ and its ratio parametrisation, the paper's data-size rule, picklable schedules."""

import math
import pickle
import re

import pytest
import torch

from rlimm.coefficients import (
    Coefficient,
    Constant,
    Linear,
    as_coefficient,
    lambda_at,
    lambda_to_ratio,
    paper_grid_ratio,
    ratio_to_lambda,
)
from rlimm.errors import RlimmError


@pytest.mark.parametrize(
    ("ratio", "lam"), [(0.0, 0.0), (0.5, 1.0), (0.2, 0.25), (0.1, 1.0 / 9.0), (0.75, 3.0)]
)
def test_ratio_lambda_known_values(ratio, lam):
    assert ratio_to_lambda(ratio) == pytest.approx(lam, rel=1e-12, abs=1e-15)
    assert lambda_to_ratio(lam) == pytest.approx(ratio, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("ratio", [0.0, 0.01, 0.1, 0.2, 0.5, 0.9, 0.999])
def test_ratio_round_trip(ratio):
    assert lambda_to_ratio(ratio_to_lambda(ratio)) == pytest.approx(ratio, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("lam", [0.0, 1e-3, 0.25, 1.0, 7.5, 1e4])
def test_lambda_round_trip(lam):
    assert ratio_to_lambda(lambda_to_ratio(lam)) == pytest.approx(lam, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize(("epochs", "ratio"), [(50, 0.2), (100, 0.2), (175, 0.2), (200, 0.1), (500, 0.1)])
def test_paper_grid_ratio(epochs, ratio):
    assert paper_grid_ratio(epochs) == pytest.approx(ratio, abs=1e-12)


@pytest.mark.parametrize("epochs", [0, -10])
def test_paper_grid_ratio_needs_positive_epochs(epochs):
    with pytest.raises(RlimmError, match=str(epochs)):
        paper_grid_ratio(epochs)


def test_paper_rule_accepts_one_epoch():
    # Found by mutation testing: the rule is defined for every positive number of epochs, the smallest
    # included.
    assert paper_grid_ratio(1) == pytest.approx(0.2, abs=1e-12)


@pytest.mark.parametrize(("lam", "shown"), [(-1.0, "-1.0"), (-1e-9, "-1e-09"), (math.nan, "nan")])
def test_bad_lambda_raises_naming_the_value(lam, shown):
    for make in (lambda_to_ratio, Constant, lambda v: Linear(0.1, v), lambda v: Linear(v, 0.1)):
        with pytest.raises(RlimmError, match=re.escape(shown)):
            make(lam)


def test_infinite_lambda_raises():
    with pytest.raises(RlimmError, match="inf"):
        Constant(math.inf)


@pytest.mark.parametrize(("ratio", "shown"), [(-0.1, "-0.1"), (1.0, "1.0"), (1.5, "1.5"), (math.nan, "nan")])
def test_bad_ratio_raises_naming_the_value(ratio, shown):
    for make in (ratio_to_lambda, Constant.from_ratio, lambda r: Linear.from_ratios(0.1, r)):
        with pytest.raises(RlimmError, match=re.escape(shown)):
            make(ratio)


def test_rlimm_error_is_a_value_error():
    with pytest.raises(ValueError):
        Constant(-2.0)


def test_constant():
    c = Constant(0.3)
    assert isinstance(c, Coefficient)
    assert c.value(0.0) == c.value(0.5) == c.value(1.0) == c(0.7) == 0.3
    assert Constant.from_ratio(0.2).value(0.0) == pytest.approx(0.25)
    assert isinstance(Constant(1).lam, float)


def test_linear_values_follow_sb3_progress_remaining():
    # SB3's convention: progress_remaining is 1 at the start of training and 0 at its end.
    lin = Linear(0.2, 1.0)
    assert lin.value(1.0) == pytest.approx(0.2)
    assert lin.value(0.5) == pytest.approx(0.6)
    assert lin.value(0.0) == pytest.approx(1.0)
    assert lin(0.75) == pytest.approx(0.4)
    down = Linear(2.0, 0.0)
    assert [down.value(p) for p in (1.0, 0.5, 0.0)] == pytest.approx([2.0, 1.0, 0.0])


def test_linear_from_ratios():
    lin = Linear.from_ratios(0.5, 0.2)
    assert lin.value(1.0) == pytest.approx(1.0)
    assert lin.value(0.0) == pytest.approx(0.25)
    assert lin.value(0.5) == pytest.approx(0.625)


def test_linear_stores_checked_floats():
    # Found by mutation testing: __post_init__ writes the checked values back, so whatever number type
    # comes in, floats are stored.
    lin = Linear(1, torch.tensor(3.0), until=torch.tensor(0.5))
    assert type(lin.start) is float and type(lin.end) is float and type(lin.until) is float
    assert (lin.start, lin.end, lin.until) == (1.0, 3.0, 0.5)
    assert vars(lin) == {"start": 1.0, "end": 3.0, "until": 0.5}


def test_linear_clamps_progress_remaining_to_the_unit_interval():
    # Found by mutation testing: outside [0, 1] the schedule holds its end values; it never extrapolates.
    lin = Linear(0.2, 1.0)
    assert lin.value(1.5) == pytest.approx(0.2, abs=1e-15)
    assert lin.value(2.5) == pytest.approx(0.2, abs=1e-15)
    assert lin.value(-0.5) == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("coef", [Constant(0.3), Linear(0.2, 1.0), Linear.from_ratios(0.5, 0.1)])
def test_pickle_round_trip_keeps_value(coef):
    back = pickle.loads(pickle.dumps(coef))
    assert type(back) is type(coef)
    assert back == coef
    for p in (0.0, 0.3, 0.5, 1.0):
        assert back.value(p) == coef.value(p)


def test_as_coefficient():
    c = Linear(0.0, 1.0)
    assert as_coefficient(c) is c
    assert as_coefficient(2) == Constant(2.0)
    assert as_coefficient(0.5).value(0.9) == 0.5
    with pytest.raises(RlimmError, match="True"):
        as_coefficient(True)
    with pytest.raises(RlimmError, match="'0.5'"):
        as_coefficient("0.5")
    with pytest.raises(RlimmError):
        as_coefficient(-1.0)


def test_any_callable_of_progress_remaining_is_a_coefficient():
    def schedule(progress_remaining):  # an SB3-style schedule, as for learning_rate
        return 3.0 * progress_remaining

    assert as_coefficient(schedule) is schedule
    assert lambda_at(schedule, 0.5) == 1.5
    with pytest.raises(RlimmError, match="-3.0"):
        lambda_at(lambda p: -3.0, 0.5)
    with pytest.raises(RlimmError, match="nan"):
        lambda_at(lambda p: math.nan, 0.5)
