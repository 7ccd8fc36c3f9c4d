"""Continuous actions: the Gaussian KL, the mixture-KL estimators of IMM, their gradients and errors.

References are computed here independently: densities from ``torch.distributions`` and the KL by the
trapezoid rule on a fine grid (1D and 2D), in float64.
"""

import math

import pytest
import torch

from rlimm.errors import RlimmError
from rlimm.gaussian_kl import (
    DEFAULT_POINTS,
    ESTIMATORS,
    check_estimator,
    gaussian_kl,
    imm_gaussian_loss,
    mixture_kl,
    mixture_log_prob,
    naive_gaussian_loss,
)

F64 = torch.float64


def _t(x):
    return torch.tensor(x, dtype=F64)


def _log_mixture_density(a, mus, sds, w):
    """log Σ_j w_j N(a; μ_j, σ_j²) for a 1D grid ``a`` and per-component lists."""
    comps = torch.distributions.Normal(_t(mus)[:, None], _t(sds)[:, None]).log_prob(a)
    return torch.logsumexp(comps + _t(w).log()[:, None], dim=0)


def _integrated_kl(p_mean, p_std, mus, sds, w, n=40001):
    """KL(N(p_mean, p_std²) ‖ mixture) and Var_{a~P̄}[log P̄(a) − log Q̄(a)] in 1D (trapezoid rule)."""
    a = torch.linspace(p_mean - 14 * p_std, p_mean + 14 * p_std, n, dtype=F64)
    # float64 parameters: Normal(0.8, ...) with Python floats would round them to float32.
    log_p = torch.distributions.Normal(_t(p_mean), _t(p_std)).log_prob(a)
    ratio = log_p - _log_mixture_density(a, mus, sds, w)
    kl = torch.trapezoid(log_p.exp() * ratio, a).item()
    second = torch.trapezoid(log_p.exp() * ratio**2, a).item()
    return kl, second - kl**2


def _one_state(p_mean, p_std, mus, sds, w=None):
    """1D arguments of ``mixture_kl`` for one state: ``(p_mean, p_log_std, means, log_stds, weights)``."""
    weights = None if w is None else _t([w])
    return (
        _t([[p_mean]]),
        _t([[math.log(p_std)]]),
        _t(mus).view(1, -1, 1),
        _t(sds).log().view(1, -1, 1),
        weights,
    )


# A 3-component mixture with unequal weights, components about as wide as the teacher.
TEACHER = (0.2, 1.0)
MIXTURE = ([-1.0, 0.4, 1.6], [0.9, 1.2, 0.8], [0.2, 0.5, 0.3])


def _random_case(batch=3, k=4, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    p_mean = torch.randn(batch, d, generator=g, dtype=F64)
    p_log_std = 0.3 * torch.randn(batch, d, generator=g, dtype=F64)
    means = p_mean.unsqueeze(1) + torch.randn(batch, k, d, generator=g, dtype=F64)
    log_stds = 0.3 * torch.randn(batch, k, d, generator=g, dtype=F64)
    weights = torch.softmax(torch.randn(batch, k, generator=g, dtype=F64), dim=-1)
    return p_mean, p_log_std, means, log_stds, weights


# --------------------------------------------------------------------------- gaussian_kl


def test_gaussian_kl_matches_the_hand_formula():
    # KL(N(0.5, 0.8²) ‖ N(−0.3, 1.5²)) = log(1.5/0.8) + (0.8² + 0.8²) / (2·1.5²) − 1/2
    expected = math.log(1.5 / 0.8) + (0.64 + 0.64) / (2 * 2.25) - 0.5
    out = gaussian_kl(_t([[0.5]]), _t([[math.log(0.8)]]), _t([[-0.3]]), _t([[math.log(1.5)]]))
    assert out.shape == (1,)
    torch.testing.assert_close(out, _t([expected]))


def test_gaussian_kl_matches_numerical_integration_in_1d():
    out = gaussian_kl(_t([[0.5]]), _t([[math.log(0.8)]]), _t([[-0.3]]), _t([[math.log(1.5)]]))
    kl, _ = _integrated_kl(0.5, 0.8, [-0.3], [1.5], [1.0])
    assert abs(out.item() - kl) < 1e-12


def test_gaussian_kl_sums_over_action_dimensions_and_is_zero_at_a_match():
    p_mean, p_log_std = _t([[0.5, -1.0], [0.0, 2.0]]), _t([[0.1, -0.4], [0.3, 0.0]])
    q_mean, q_log_std = _t([[0.0, 1.0], [1.0, 2.5]]), _t([[0.2, 0.5], [-0.2, 0.1]])
    out = gaussian_kl(p_mean, p_log_std, q_mean, q_log_std)
    per_dim = [
        gaussian_kl(
            p_mean[:, i : i + 1], p_log_std[:, i : i + 1], q_mean[:, i : i + 1], q_log_std[:, i : i + 1]
        )
        for i in range(2)
    ]
    torch.testing.assert_close(out, per_dim[0] + per_dim[1])
    assert torch.all(per_dim[0] > 0) and torch.all(per_dim[1] > 0)
    assert torch.all(gaussian_kl(p_mean, p_log_std, p_mean, p_log_std).abs() < 1e-15)


# --------------------------------------------------------------------------- mixture_log_prob


def test_mixture_log_prob_matches_torch_distributions_with_broadcast_log_stds():
    g = torch.Generator().manual_seed(1)
    batch, m, k, d = 2, 5, 3, 2
    actions = torch.randn(batch, m, d, generator=g, dtype=F64)
    means = torch.randn(batch, k, d, generator=g, dtype=F64)
    log_std = _t([0.2, -0.5])  # state-independent, as in SB3's PPO
    weights = _t([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]])
    ref = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=weights),
        torch.distributions.Independent(
            torch.distributions.Normal(means, log_std.exp().expand(batch, k, d)), 1
        ),
    )
    expected = ref.log_prob(actions.transpose(0, 1)).transpose(0, 1)
    torch.testing.assert_close(mixture_log_prob(actions, means, log_std, weights), expected)
    uniform = mixture_log_prob(actions, means, log_std, None)
    torch.testing.assert_close(
        uniform, mixture_log_prob(actions, means, log_std, torch.full((batch, k), 1 / 3, dtype=F64))
    )


# --------------------------------------------------------------------------- estimators in 1D


def test_quadrature_matches_the_integrated_kl_in_1d_at_the_default_points():
    true, _ = _integrated_kl(*TEACHER, *MIXTURE)
    out = mixture_kl(*_one_state(*TEACHER, *MIXTURE), estimator="quadrature")
    # 20 points (the default) reach 5e-6 relative here, 16 points only 3e-5.
    assert abs(out.item() - true) / true < 1e-5
    fewer = mixture_kl(*_one_state(*TEACHER, *MIXTURE), estimator="quadrature", points=16)
    assert abs(fewer.item() - true) / true > 1e-5


def test_mc_is_within_five_standard_errors_of_the_integrated_kl():
    true, var = _integrated_kl(*TEACHER, *MIXTURE)
    m = 200_000
    se = math.sqrt(var / m)
    assert se < 0.01 * true  # the check below is informative
    g = torch.Generator().manual_seed(0)
    out = mixture_kl(*_one_state(*TEACHER, *MIXTURE), estimator="mc", samples=m, generator=g)
    assert abs(out.item() - true) < 5 * se


def test_moment_is_the_closed_form_kl_to_the_moment_matched_gaussian():
    mus, sds, w = MIXTURE
    m = sum(wj * mj for wj, mj in zip(w, mus, strict=True))
    s2 = sum(wj * (sj**2 + mj**2) for wj, mj, sj in zip(w, mus, sds, strict=True)) - m**2
    expected = gaussian_kl(
        _t([[TEACHER[0]]]), _t([[math.log(TEACHER[1])]]), _t([[m]]), _t([[0.5 * math.log(s2)]])
    )
    out = mixture_kl(*_one_state(*TEACHER, *MIXTURE), estimator="moment")
    torch.testing.assert_close(out, expected)


def test_moment_is_biased_low_on_a_bimodal_mixture():
    # The teacher sits between two narrow modes; the moment-matched Gaussian covers the gap.
    case = (0.0, 1.0, [-2.0, 2.0], [0.5, 0.5], [0.5, 0.5])
    true, _ = _integrated_kl(*case)
    moment = mixture_kl(*_one_state(*case), estimator="moment").item()
    closed = math.log(math.sqrt(4.25)) + 1 / (2 * 4.25) - 0.5  # s² = 0.25 + 4
    assert abs(moment - closed) < 1e-12
    assert true > 3.0 and moment < 0.4


def test_quadrature_matches_2d_numerical_integration():
    p_mean, p_std = _t([0.3, -0.2]), _t([1.0, 0.7])
    means = _t([[[-0.8, 0.1], [0.6, -0.6], [0.2, 0.5]]])
    stds = _t([[[0.9, 0.8], [1.1, 0.6], [0.8, 0.9]]])
    weights = _t([[0.25, 0.45, 0.3]])
    x = torch.linspace(-10, 10, 801, dtype=F64) * p_std[0] + p_mean[0]
    y = torch.linspace(-10, 10, 801, dtype=F64) * p_std[1] + p_mean[1]
    grid = torch.stack(torch.meshgrid(x, y, indexing="ij"), dim=-1)  # (nx, ny, 2)
    log_p = torch.distributions.Normal(p_mean, p_std).log_prob(grid).sum(-1)
    comps = torch.distributions.Normal(means[0], stds[0]).log_prob(grid.unsqueeze(-2)).sum(-1)  # (nx, ny, k)
    log_q = torch.logsumexp(comps + weights[0].log(), dim=-1)
    true = torch.trapezoid(torch.trapezoid(log_p.exp() * (log_p - log_q), y, dim=1), x).item()
    out = mixture_kl(p_mean[None], p_std.log()[None], means, stds.log(), weights, estimator="quadrature")
    assert abs(out.item() - true) / true < 1e-5


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_gradients_match_finite_differences(estimator):
    p_mean, p_log_std, means, log_stds, weights = _random_case(batch=2, k=3, d=2)
    means.requires_grad_(True)
    log_stds.requires_grad_(True)

    def f(mu, log_sigma):
        # A fresh generator with the same seed: mc sees the same draws at every evaluation.
        g = torch.Generator().manual_seed(3)
        return mixture_kl(
            p_mean, p_log_std, mu, log_sigma, weights, estimator, samples=8, points=6, generator=g
        )

    assert torch.autograd.gradcheck(f, (means, log_stds))


@pytest.mark.parametrize("estimator", ["quadrature", "moment"])
def test_one_component_is_exactly_the_naive_loss(estimator):
    p_mean, p_log_std, means, log_stds, _ = _random_case(batch=4, k=1, d=2)
    imm = imm_gaussian_loss(p_mean, p_log_std, means, log_stds, estimator=estimator)
    naive = naive_gaussian_loss(p_mean, p_log_std, means[:, 0], log_stds[:, 0])
    torch.testing.assert_close(imm, naive, rtol=1e-12, atol=1e-12)


def test_one_component_mc_is_the_naive_kl_within_sampling_error():
    case = (0.2, 1.0, [1.0], [0.7], [1.0])
    true, var = _integrated_kl(*case)
    naive = naive_gaussian_loss(*_one_state(*case)[:2], _t([[1.0]]), _t([[math.log(0.7)]])).item()
    assert abs(naive - true) < 1e-9
    m = 100_000
    g = torch.Generator().manual_seed(5)
    out = imm_gaussian_loss(*_one_state(*case), estimator="mc", samples=m, generator=g).item()
    assert abs(out - naive) < 5 * math.sqrt(var / m)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_mixture_kl_is_zero_when_every_component_is_the_teacher(estimator):
    p_mean, p_log_std, _, _, weights = _random_case(batch=3, k=4, d=2)
    means = p_mean.unsqueeze(1).expand(3, 4, 2)
    log_stds = p_log_std.unsqueeze(1).expand(3, 4, 2)
    out = mixture_kl(p_mean, p_log_std, means, log_stds, weights, estimator, generator=torch.Generator())
    assert out.shape == (3,)
    assert torch.all(out.abs() < 1e-12)


def test_jensen_bound_is_above_the_mixture_kl_and_is_the_naive_average():
    mus, sds, w = MIXTURE
    true, _ = _integrated_kl(*TEACHER, *MIXTURE)
    p_mean, p_log_std, means, log_stds, weights = _one_state(*TEACHER, *MIXTURE)
    per_component = gaussian_kl(p_mean.unsqueeze(1), p_log_std.unsqueeze(1), means, log_stds)  # (1, k)
    jensen = (weights * per_component).sum().item()
    assert jensen > true + 0.05
    # With uniform weights the bound is exactly the naive loss over the k synthetic states.
    p_mean, p_log_std, means, log_stds, _ = _random_case(batch=3, k=4, d=2)
    uniform_jensen = gaussian_kl(p_mean.unsqueeze(1), p_log_std.unsqueeze(1), means, log_stds).mean()
    naive = naive_gaussian_loss(
        p_mean.repeat_interleave(4, 0),
        p_log_std.repeat_interleave(4, 0),
        means.reshape(12, 2),
        log_stds.reshape(12, 2),
    )
    torch.testing.assert_close(uniform_jensen, naive)
    assert imm_gaussian_loss(p_mean, p_log_std, means, log_stds, estimator="quadrature") < naive


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_state_independent_log_std_broadcasts_like_the_expanded_one(estimator):
    p_mean, _, means, _, weights = _random_case(batch=3, k=4, d=2)
    log_std = _t([0.1, -0.3])
    shared = mixture_kl(
        p_mean, log_std, means, log_std, weights, estimator, generator=torch.Generator().manual_seed(0)
    )
    expanded = mixture_kl(
        p_mean, log_std.expand(3, 2), means, log_std.expand(3, 4, 2), weights, estimator,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    torch.testing.assert_close(shared, expanded)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_a_zero_weight_component_is_ignored(estimator):
    p_mean, p_log_std, means, log_stds, weights = _random_case(batch=2, k=3, d=2)
    weights = torch.cat(
        [weights[:, :2] / weights[:, :2].sum(1, keepdim=True), torch.zeros(2, 1, dtype=F64)], 1
    )
    means.requires_grad_(True)
    kw = {"estimator": estimator}
    with_zero = mixture_kl(
        p_mean, p_log_std, means, log_stds, weights, **kw, generator=torch.Generator().manual_seed(0)
    )
    dropped = mixture_kl(
        p_mean,
        p_log_std,
        means[:, :2],
        log_stds[:, :2],
        weights[:, :2],
        **kw,
        generator=torch.Generator().manual_seed(0),
    )
    torch.testing.assert_close(with_zero, dropped)
    with_zero.sum().backward()
    assert torch.isfinite(means.grad).all() and torch.all(means.grad[:, 2] == 0)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_the_teacher_gets_no_gradient(estimator):
    p_mean, p_log_std, means, log_stds, weights = _random_case()
    p_mean.requires_grad_(True)
    means.requires_grad_(True)
    imm_gaussian_loss(p_mean, p_log_std, means, log_stds, weights, estimator).backward()
    naive_gaussian_loss(p_mean, p_log_std, means[:, 0], log_stds[:, 0]).backward()
    assert p_mean.grad is None and means.grad is not None


def test_mc_is_deterministic_given_a_generator_seed():
    case = _random_case()
    a = mixture_kl(*case, estimator="mc", generator=torch.Generator().manual_seed(7))
    b = mixture_kl(*case, estimator="mc", generator=torch.Generator().manual_seed(7))
    c = mixture_kl(*case, estimator="mc", generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("estimator", "samples", "action_dim", "match"),
    [
        ("quadrature", 16, 3, "quadrature needs at most 2 action dimensions, got 3: use mc or moment"),
        ("mc", 0, 1, "samples must be an integer ≥ 1 .*got 0"),
        ("mc", 2.5, 1, "samples must be an integer ≥ 1 .*got 2.5"),
        ("mc", True, 1, "got True"),
        ("jensen", 16, 1, "unknown estimator 'jensen': expected one of mc, quadrature, moment"),
    ],
)
def test_bad_estimator_settings_raise_rlimm_error(estimator, samples, action_dim, match):
    with pytest.raises(RlimmError, match=match):
        check_estimator(estimator, samples, action_dim)
    p_mean, p_log_std, means, log_stds, _ = _random_case(batch=2, k=2, d=action_dim)
    with pytest.raises(RlimmError, match=match):
        mixture_kl(p_mean, p_log_std, means, log_stds, estimator=estimator, samples=samples)


def test_accepted_settings_pass_the_check():
    check_estimator("quadrature", 1, 2)
    check_estimator("mc", 16, 6)
    check_estimator("moment", 16, 6)
    with pytest.raises(RlimmError, match="points must be an integer ≥ 1 .*got 0"):
        check_estimator("quadrature", 16, 1, points=0)
    assert DEFAULT_POINTS >= 8


def test_shape_mismatch_is_a_value_error():
    p_mean, p_log_std, means, log_stds, weights = _random_case(batch=3, k=4, d=2)
    with pytest.raises(ValueError, match="means must be"):
        mixture_kl(p_mean[:2], p_log_std[:2], means, log_stds)
    with pytest.raises(ValueError, match="weights must have shape"):
        mixture_kl(p_mean, p_log_std, means, log_stds, weights[:, :3])
