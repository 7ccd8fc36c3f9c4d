"""The teacher regulariser on MultiDiscrete actions: SB3's independent categorical per dimension.

Each term is the categorical one summed over dimensions: naive is Σ_d KL(P̄_d ‖ Q_d) at the full
state, IMM Σ_d KL(P̄_d ‖ Σ_j w_j Q_d(·|x̄, h_j)), the teacher matched to each dimension's induced
marginal. Checked by hand on tensors, then through PPO and A2C's update and against plain SB3 at λ = 0,
on a small env with two action dimensions whose teacher sees two of the three coordinates.
"""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch

from rlimm.agents.a2c import A2C
from rlimm.agents.imm.families import CategoricalFamily, MultiCategoricalFamily, family_for
from rlimm.agents.ppo import PPO
from rlimm.agents.teachers import PolicyTeacher, policy_teacher
from rlimm.envs import VisibleObservation
from rlimm.envs.restrictions import restriction_for
from rlimm.errors import RlimmError
from rlimm.rl.teacher_builder import TeacherActor

NVEC = [3, 2]
MODEL_LIST = [PPO, A2C]
PLAIN = {PPO: sb3.PPO, A2C: sb3.A2C}
ONE_SGD_STEP = {
    PPO: {"n_steps": 32, "batch_size": 32, "n_epochs": 1, "max_grad_norm": 1e9},
    A2C: {"n_steps": 32, "max_grad_norm": 1e9},
}


class TwoKnobs(gym.Env):
    """Three coordinates in [-1, 1]; two action dimensions (3 and 2 choices) rewarded for matching
    the signs of the first and third coordinates. Episodes of 20 steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.MultiDiscrete(NVEC)

    def reset(self, *, seed=None, options=None):  # noqa: ANN001, ANN201
        super().reset(seed=seed)
        self.t = 0
        self.obs = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        return self.obs, {}

    def step(self, action):  # noqa: ANN001, ANN201
        a = np.asarray(action)
        reward = float(a[0] == (self.obs[0] > 0) + 1) + float(a[1] == (self.obs[2] > 0))
        self.t += 1
        self.obs = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        return self.obs, reward, False, self.t >= 20, {}


@pytest.fixture(scope="module")
def restriction():
    return restriction_for(TwoKnobs(), [0, 1])


@pytest.fixture(scope="module")
def teacher(restriction):
    # An untrained PPO on the visible part, its logits moved off the learner's uniform start.
    model = sb3.PPO("MlpPolicy", VisibleObservation(TwoKnobs(), restriction), seed=3)
    with torch.no_grad():
        model.policy.action_net.bias.copy_(torch.tensor([1.0, -0.5, 0.0, 0.7, -0.7]))
    return policy_teacher(model, restriction, name="visible-ppo")


def kl(p, log_q):
    return (p * (torch.log(p) - log_q)).sum(-1)


def test_the_family_is_the_sum_over_dimensions_of_the_categorical_terms():
    gen = torch.Generator().manual_seed(0)
    b, k, family = 5, 4, family_for(gym.spaces.MultiDiscrete(NVEC))
    assert isinstance(family, MultiCategoricalFamily)
    teacher = torch.cat([torch.softmax(torch.randn(b, n, generator=gen), -1) for n in NVEC], -1)
    logits = torch.randn(b, k, sum(NVEC), generator=gen)
    w = torch.softmax(torch.randn(b, k, generator=gen), -1)
    naive, imm = torch.zeros(()), torch.zeros(())
    for s in (slice(0, 3), slice(3, 5)):
        q = torch.softmax(logits[..., s], -1)  # (b, k, n_d)
        naive = naive + kl(teacher[:, s], torch.log(q[:, 0])).mean()
        imm = imm + kl(teacher[:, s], torch.log((w.unsqueeze(-1) * q).sum(1))).mean()
    torch.testing.assert_close(family.naive(teacher, logits[:, 0]), naive)
    torch.testing.assert_close(family.imm(teacher, logits, w), imm)
    # A constant per dimension changes nothing: each dimension is normalised on its own.
    torch.testing.assert_close(
        family.imm(teacher, logits + torch.tensor([2.0, 2.0, 2.0, -1.0, -1.0]), w), imm
    )
    # One dimension is the categorical family.
    one = family_for(gym.spaces.MultiDiscrete([5]))
    cat = CategoricalFamily()
    torch.testing.assert_close(
        one.imm(teacher[:, :3], logits[..., :3], w), cat.imm(teacher[:, :3], logits[..., :3], w)
    )


def test_imm_is_zero_when_every_component_is_the_teacher():
    family = family_for(gym.spaces.MultiDiscrete(NVEC))
    teacher = torch.tensor([[0.2, 0.5, 0.3, 0.9, 0.1]])
    logits = torch.log(teacher).unsqueeze(1).expand(1, 6, 5)
    assert family.imm(teacher, logits, None).item() == pytest.approx(0.0, abs=1e-6)


def test_a_policy_teacher_gives_one_distribution_per_dimension(teacher, restriction):
    visible = np.random.default_rng(0).uniform(-1, 1, (7, 2)).astype(np.float32)
    probs = teacher.probs(visible)
    assert probs.shape == (7, 5) and teacher.nvec == NVEC
    np.testing.assert_allclose(probs[:, :3].sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(probs[:, 3:].sum(1), 1.0, rtol=1e-6)
    argmax = PolicyTeacher(teacher.policy, teacher.visible_space, 5, "argmax", nvec=NVEC)
    assert (argmax.probs(visible).sum(1) == 2).all() and set(np.unique(argmax.probs(visible))) == {0.0, 1.0}
    actor = TeacherActor(teacher, restriction, seed=0)
    action, _ = actor.predict(np.zeros(3, np.float32))
    assert action.shape == (2,) and TwoKnobs.action_space.contains(action.astype(np.int64))
    teacher.check_compatible(restriction, TwoKnobs.action_space)
    with pytest.raises(
        RlimmError, match=r"^teacher 'visible-ppo' has MultiDiscrete\(\[3, 2\]\) actions but the"
    ):
        teacher.check_compatible(restriction, gym.spaces.MultiDiscrete([2, 3]))
    with pytest.raises(RlimmError, match="has MultiDiscrete"):
        teacher.check_compatible(restriction, gym.spaces.Discrete(5))


def build(algo, teacher, restriction, regularizer, coef, seed=0, **kw):
    return algo(
        "MlpPolicy",
        TwoKnobs(),
        regularizer=regularizer,
        teacher=teacher,
        restriction=restriction,
        teacher_coef=coef,
        seed=seed,
        **kw,
    )


def params(model):
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()])


@pytest.mark.parametrize("algo", MODEL_LIST)
@pytest.mark.parametrize("kind", ["naive", "imm"])
def test_the_teacher_term_is_lambda_times_the_summed_kl(algo, kind, teacher, restriction):
    """One SGD step at λ minus the same step at λ = 0 is −lr · ∇(λ · Σ_d KL), by hand from the
    teacher's recorded probabilities; imm with k = 1 is that same naive KL."""
    lam, lr = 0.37, 0.05
    kw = {
        **ONE_SGD_STEP[algo],
        "learning_rate": lr,
        "policy_kwargs": {"optimizer_class": torch.optim.SGD},
        "induction": {"method": "knn", "k": 1},
    }
    before = build(algo, teacher, restriction, kind, lam, seed=4, **kw)
    initial = copy.deepcopy(before.policy)
    before.learn(kw["n_steps"])
    zero = build(algo, teacher, restriction, kind, 0.0, seed=4, **kw)
    zero.learn(kw["n_steps"])
    buf = before.rollout_buffer
    obs = torch.as_tensor(buf.observations.reshape(-1, 3))
    t = torch.as_tensor(teacher.probs(obs.numpy()[:, :2]), dtype=torch.float32)
    dists = initial.get_distribution(obs).distribution
    expected = lam * sum(
        kl(t[:, s], d.logits).mean() for s, d in zip((slice(0, 3), slice(3, 5)), dists, strict=True)
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
    np.testing.assert_allclose(buf.view_data["teacher_params"].reshape(-1, 5), t.numpy(), rtol=1e-6)


@pytest.mark.parametrize("algo", MODEL_LIST)
@pytest.mark.parametrize("variant", ["none_with_teacher", "imm_lambda0"])
def test_lambda_zero_on_multidiscrete_actions_is_bit_identical_to_plain_sb3(
    algo, variant, teacher, restriction
):
    kw = {"n_steps": 64, "seed": 11}
    plain = PLAIN[algo]("MlpPolicy", TwoKnobs(), **kw)
    plain.learn(128)
    kind = variant.split("_")[0]
    ours = build(algo, teacher, restriction, kind, 0.5 if kind == "none" else 0.0, **kw)
    ours.learn(128)
    torch.testing.assert_close(params(ours), params(plain), rtol=0, atol=0)


def test_imm_pulls_the_induced_policy_to_a_trained_teacher(restriction):
    """End to end with a trained teacher: PPO with imm ends with its induced policy far closer to the
    teacher (the logged KL) than the same run without the term, whose KL is logged as a diagnostic."""
    model = sb3.PPO("MlpPolicy", VisibleObservation(TwoKnobs(), restriction), seed=0, n_steps=256)
    model.learn(2048)
    trained = policy_teacher(model, restriction, name="trained")
    kl = {}
    for kind, coef in [("none", 0.0), ("imm", 4.0)]:
        learner = build(
            PPO, trained, restriction, kind, coef, n_steps=256, batch_size=64, induction={"method": "knn"}
        )
        learner.learn(1024)
        kl[kind] = learner.logger.name_to_value["train/imm_kl"]
    assert kl["imm"] < 0.25 * kl["none"], kl


def test_an_induced_expert_is_refused_on_multidiscrete_actions_before_the_expert_trains(monkeypatch):
    import rlimm.rl.teacher_builder as builder
    from rlimm.errors import RlimmError
    from rlimm.rl.config import CompareConfig

    gym.register("rlimm-test/TwoKnobs-v0", entry_point=TwoKnobs)

    def never(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the expert trained before the action space was checked")

    monkeypatch.setattr(builder, "train_full_expert", never)
    config = CompareConfig.model_validate(
        {
            "name": "knobs",
            "env": {"id": "rlimm-test/TwoKnobs-v0"},
            "restriction": {"visible": [0, 1]},
            "teacher": {"solver": "induced_expert", "algo": "ppo", "timesteps": 64},
            "algo": {"name": "ppo"},
            "methods": ["imm"],
            "budgets": [64],
            "budget_unit": "timesteps",
        }
    )
    with pytest.raises(RlimmError, match="induced_expert needs a Discrete or Box action space"):
        builder.build_teacher(config)
