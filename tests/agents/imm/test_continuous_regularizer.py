"""The teacher regulariser on Box actions (PPO and A2C's diagonal Gaussian), on Pendulum-v1 with the
angular velocity hidden: the teacher sees (cos θ, sin θ).

The divergences themselves are tested against numerical integration in tests/core/test_gaussian_kl.py;
here: that the regulariser feeds them the right Gaussians (the teacher's, recorded at collection time,
and the policy's, with its state-independent log-std), with λ and the right sign, that k = 1 is naive,
and that λ = 0 is plain SB3.
"""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch

from rlimm.agents.a2c import A2C
from rlimm.agents.imm.draws import Pool
from rlimm.agents.imm.regularizer import TeacherRegularizer
from rlimm.agents.ppo import PPO
from rlimm.agents.teachers import gaussian_policy_teacher
from rlimm.envs import VisibleObservation
from rlimm.envs.restrictions import restriction_for
from rlimm.errors import RlimmError

ENV = "Pendulum-v1"
MODEL_LIST = [PPO, A2C]
PLAIN = {PPO: sb3.PPO, A2C: sb3.A2C}
ONE_SGD_STEP = {
    PPO: {"n_steps": 32, "batch_size": 32, "n_epochs": 1, "max_grad_norm": 1e9},
    A2C: {"n_steps": 32, "max_grad_norm": 1e9},
}


@pytest.fixture(scope="module")
def restriction():
    return restriction_for(gym.make(ENV), [0, 1])


@pytest.fixture(scope="module")
def teacher(restriction):
    # An untrained PPO on the visible part, moved off the learner's initial Gaussian so the KL is not tiny.
    model = sb3.PPO("MlpPolicy", VisibleObservation(gym.make(ENV), restriction), seed=3)
    with torch.no_grad():
        model.policy.action_net.bias.fill_(0.8)
        model.policy.log_std.fill_(-0.5)
    return gaussian_policy_teacher(model, restriction, gym.make(ENV).action_space, "visible-ppo")


def build(algo, teacher, restriction, regularizer, coef, seed=0, **kw):
    return algo(
        "MlpPolicy",
        ENV,
        regularizer=regularizer,
        teacher=teacher,
        restriction=restriction,
        teacher_coef=coef,
        seed=seed,
        **kw,
    )


def params(model):
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()])


def hand_kl(tm, tls, m, ls):
    """KL(N(tm, e^{2 tls}) ‖ N(m, e^{2 ls})) summed over dimensions, written out."""
    return (ls - tls + (torch.exp(2 * tls) + (tm - m) ** 2) / (2 * torch.exp(2 * ls)) - 0.5).sum(-1)


@pytest.mark.parametrize("algo", MODEL_LIST)
@pytest.mark.parametrize("kind", ["naive", "imm"])
def test_gaussian_teacher_term_is_lambda_times_the_kl_with_the_right_sign(algo, kind, teacher, restriction):
    """One SGD step at λ = 0.37 minus the same step at λ = 0 is −lr · ∇(λ · KL), the KL by hand from
    the teacher's recorded Gaussian; imm with k = 1 (the state's own hidden part) is that same naive
    KL, exactly, with the ``moment`` estimator."""
    lam, lr = 0.37, 0.05
    kw = {
        **ONE_SGD_STEP[algo],
        "learning_rate": lr,
        "policy_kwargs": {"optimizer_class": torch.optim.SGD},
        "induction": {"method": "knn", "k": 1, "estimator": "moment"},
    }
    before = build(algo, teacher, restriction, kind, lam, seed=4, **kw)
    initial = copy.deepcopy(before.policy)
    before.learn(kw["n_steps"])
    zero = build(algo, teacher, restriction, kind, 0.0, seed=4, **kw)
    zero.learn(kw["n_steps"])
    buf = before.rollout_buffer
    np.testing.assert_array_equal(buf.observations, zero.rollout_buffer.observations)
    obs = torch.as_tensor(buf.observations.reshape(-1, 3))
    t_mean, t_log_std = teacher.gaussian(obs.numpy()[:, :2])  # the teacher sees cos θ, sin θ
    mean = initial.get_distribution(obs).distribution.loc
    expected = (
        lam * hand_kl(torch.as_tensor(t_mean), torch.as_tensor(t_log_std), mean, initial.log_std).mean()
    )
    grads = torch.autograd.grad(expected, list(initial.parameters()), allow_unused=True)
    step = torch.cat(
        [
            (-lr * g if g is not None else torch.zeros_like(p)).flatten()
            for g, p in zip(grads, initial.parameters(), strict=True)
        ]
    )
    torch.testing.assert_close(params(before) - params(zero), step, atol=2e-6, rtol=1e-4)
    assert step.abs().max() > 1e-3
    assert before.logger.name_to_value["train/regularizer_loss"] == pytest.approx(expected.item(), rel=1e-5)
    # The teacher's Gaussian is the one recorded with each observation at collection time.
    stored = buf.view_data["teacher_params"].reshape(-1, 2)
    np.testing.assert_allclose(stored, np.concatenate([t_mean, t_log_std], axis=1), rtol=1e-6)


def _batch(model, rows):
    from types import SimpleNamespace

    buf = model.rollout_buffer
    return SimpleNamespace(
        observations=buf.to_torch(buf.observations[rows]),
        indices=torch.as_tensor(rows),
        teacher_params=buf.to_torch(buf.view_data["teacher_params"][rows]),
        contexts=None,
    )


@pytest.mark.parametrize("estimator", ["moment", "quadrature", "mc"])
def test_imm_is_the_kl_to_the_mixture_of_the_k_synthetic_gaussians(estimator, teacher, restriction):
    """The induced policy is the weighted mixture of the policy's Gaussians at (x̄, h_j); with the
    ``moment`` estimator its KL is the closed-form KL to the mixture's moments (computed by hand from
    the draws); ``quadrature`` and ``mc`` agree with it where the components are alike; the mixture's
    KL lies below the Jensen bound (the components' average KL, which is what naive would optimise)."""
    model = build(
        PPO,
        teacher,
        restriction,
        "imm",
        1.0,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        induction={"estimator": estimator},
    )
    model.learn(64)
    with torch.no_grad():
        model.policy.log_std.fill_(-0.3)  # not SB3's initial 0, so that a dropped log-std shows
    pool = Pool(model.rollout_buffer.rollout_observations())
    rows = np.arange(0, 64, 4)
    batch = _batch(model, rows)
    dist = model.policy.get_distribution(batch.observations)
    out = model.regularizer_output(batch, dist, pool)
    draw = model.teacher_regularizer.pool_draws(pool).draws.rows(batch.indices)  # the ones used above
    pool = pool.observations
    with torch.no_grad():
        means = model.policy.get_distribution(pool[draw.index.reshape(-1)]).distribution.loc
        # The synthetic state is the batch state's visible part with the neighbour's hidden θ̇.
        synthetic = pool[draw.index.reshape(-1)].clone()
        synthetic[:, :2] = batch.observations.repeat_interleave(draw.index.shape[1], 0)[:, :2]
        means = model.policy.get_distribution(synthetic).distribution.loc.reshape(len(rows), -1, 1)
        w = draw.weights.unsqueeze(-1)
        m = (w * means).sum(1)
        var = math.exp(2 * model.policy.log_std.item()) + (w * (means - m.unsqueeze(1)) ** 2).sum(1)
        t = batch.teacher_params
        moment = hand_kl(t[:, :1], t[:, 1:], m, 0.5 * torch.log(var)).mean().item()
        # Jensen: the weighted average of the components' KLs bounds the mixture's from above.
        per_component = hand_kl(t[:, None, :1], t[:, None, 1:], means, model.policy.log_std.expand_as(means))
        jensen = (draw.weights * per_component).sum(1).mean().item()
    tolerance = {"moment": 1e-5, "quadrature": 0.02, "mc": 0.1}[estimator]
    assert out.imm_kl == pytest.approx(moment, rel=tolerance)
    if estimator == "quadrature":  # accurate for the true mixture KL, which convexity puts below
        assert out.imm_kl < jensen


def test_k_one_is_naive_for_the_exact_estimators_and_within_sampling_error_for_mc(teacher, restriction):
    values = {}
    for estimator in ["moment", "quadrature", "mc"]:
        model = build(
            PPO,
            teacher,
            restriction,
            "imm",
            1.0,
            n_steps=64,
            batch_size=64,
            n_epochs=1,
            induction={"k": 1, "estimator": estimator, "samples": 256},
        )
        model.learn(64)
        batch = _batch(model, np.arange(64))
        dist = model.policy.get_distribution(batch.observations)
        out = model.regularizer_output(batch, dist, model.rollout_buffer.rollout_observations())
        values[estimator] = (out.imm_kl, out.naive_kl)
    assert values["moment"][0] == pytest.approx(values["moment"][1], rel=1e-6)
    assert values["quadrature"][0] == pytest.approx(values["quadrature"][1], rel=1e-5)
    assert values["mc"][0] == pytest.approx(values["mc"][1], rel=0.05)
    assert values["mc"][0] != values["mc"][1]


@pytest.mark.parametrize("algo", MODEL_LIST)
@pytest.mark.parametrize("variant", ["none_with_teacher", "imm_lambda0", "naive_lambda0"])
def test_lambda_zero_on_box_actions_is_bit_identical_to_plain_sb3(algo, variant, teacher, restriction):
    kw = {"n_steps": 64, "seed": 11}
    plain = PLAIN[algo]("MlpPolicy", ENV, **kw)
    plain.learn(128)
    kind = variant.split("_")[0]
    ours = build(algo, teacher, restriction, kind, 0.5 if kind == "none" else 0.0, **kw)
    ours.learn(128)
    torch.testing.assert_close(params(ours), params(plain), rtol=0, atol=0)


def test_box_estimator_settings_are_checked_by_name(teacher, restriction):
    box3 = gym.spaces.Box(-1.0, 1.0, (3,))
    with pytest.raises(
        RlimmError, match=r"^quadrature needs at most 2 action dimensions, got 3: use mc or moment$"
    ):
        TeacherRegularizer("imm", restriction, box3, {"estimator": "quadrature"})
    with pytest.raises(RlimmError, match=r"^induction samples must be a whole number >= 1, got 0$"):
        TeacherRegularizer("imm", restriction, gym.spaces.Box(-2, 2, (1,)), {"samples": 0})
    wide = gym.make("MountainCarContinuous-v0")  # 1-D actions in [-1, 1]: Pendulum's teacher is for [-2, 2]
    with pytest.raises(RlimmError, match="was built for action bounds"):
        teacher.check_compatible(restriction_for(wide, [0]), wide.action_space)


def test_a_squashed_sac_teacher_is_refused_by_ppo(restriction):
    sac = sb3.SAC("MlpPolicy", VisibleObservation(gym.make(ENV), restriction), seed=0)
    squashed = gaussian_policy_teacher(sac, restriction, gym.make(ENV).action_space, "visible-sac")
    with pytest.raises(RlimmError, match=r"^teacher 'visible-sac' is a squashed \(SAC\) Gaussian but PPO's"):
        build(PPO, squashed, restriction, "imm", 1.0)
