"""The trust λ in the algorithms: on a two-armed bandit whose hidden bit does not matter, λ falls to the
floor within the stated part of training when the teacher prefers the worse arm and stays at the
configured λ when it prefers the better one (REINFORCE, PPO, A2C; naive and IMM); the evidence an
update gathers is the signal computed by hand from its rollout; SAC's signal comes from its critic as
computed by hand; a constant λ leaves training bit-identical; save/load keeps the trust state."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlimm.agents import A2C, PPO, REINFORCE, SAC
from rlimm.agents.imm.regularizer import TRUST_STREAM
from rlimm.agents.teachers import TabularTeacher, gaussian_policy_teacher
from rlimm.envs import FactoredRestriction, VisibleObservation
from rlimm.envs.restrictions import restriction_for
from rlimm.trust import Trust, critic_evidence, on_policy_evidence

ALGOS = {
    REINFORCE: {"n_steps": 16, "learning_rate": 0.02},
    PPO: {"n_steps": 16, "batch_size": 16, "n_epochs": 4, "learning_rate": 3e-3},
    A2C: {"n_steps": 16, "learning_rate": 3e-3},
}
UPDATES = 60


class TwoArms(gym.Env):
    """One step per episode: arm 0 pays 1, arm 1 pays 0. The observation is a hidden bit drawn at each
    reset (factors: a visible context of one value, the bit), which changes nothing."""

    observation_space = spaces.Discrete(2)
    action_space = spaces.Discrete(2)
    observation_factors = {"context": 1, "bit": 2}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return int(self.np_random.integers(2)), {}

    def step(self, action):
        return int(self.np_random.integers(2)), float(action == 0), True, False, {}


class Recording(Trust):
    """A trust coefficient that keeps λ after each update and the evidence it was given."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lams, self.evidence = [], []

    def observe(self, evidence, learner_return, progress_remaining, kind):
        lam = super().observe(evidence, learner_return, progress_remaining, kind)
        self.lams.append(lam)
        self.evidence.append(evidence)
        return lam


def bandit(algo, regularizer, teacher_probs, coef, seed=0):
    env = TwoArms()
    restriction = FactoredRestriction.for_env(env, visible=["context"])
    teacher = TabularTeacher(np.array([teacher_probs]), name="arms")
    return algo(
        "MlpPolicy",
        env,
        regularizer=regularizer,
        teacher=teacher,
        restriction=restriction,
        teacher_coef=coef,
        seed=seed,
        **ALGOS[algo],
    )


@pytest.mark.parametrize("regularizer", ["naive", "imm"])
@pytest.mark.parametrize("algo", list(ALGOS))
def test_lambda_falls_for_the_worse_arm_and_stays_for_the_better(algo, regularizer):
    # fall = 0.1 of 60 updates: 6 updates of persistent evidence take λ from 1 to the floor; the
    # evidence needs a few updates to pass |z| > 2, so λ is at the floor by update 20. The better
    # teacher always picks arm 0 (a softer one, say 0.9, would rightly lose λ once the learner is surer
    # of arm 0 than it is).
    worse = Recording(1.0, fall=0.1, floor=0.01)
    bandit(algo, regularizer, (0.1, 0.9), worse).learn(16 * UPDATES)
    assert len(worse.lams) == UPDATES
    assert max(worse.lams[20:]) == pytest.approx(0.01)
    better = Recording(1.0, fall=0.1, floor=0.01)
    bandit(algo, regularizer, (1.0, 0.0), better).learn(16 * UPDATES)
    assert min(better.lams) == 1.0


@pytest.mark.parametrize("regularizer", ["naive", "imm"])
@pytest.mark.parametrize("algo", [PPO, A2C, REINFORCE])
def test_an_update_gathers_its_rollout_as_the_signal_by_hand(algo, regularizer):
    trust = Recording(1.0)
    model = bandit(algo, regularizer, (0.3, 0.7), trust)
    model.learn(16)
    buffer = model.rollout_buffer
    actions = torch.as_tensor(buffer.actions.reshape(-1)).long()
    log_pi = torch.as_tensor(buffer.log_probs.reshape(-1))
    advantages = torch.as_tensor(buffer.advantages.reshape(-1))
    log_teacher = torch.log(torch.tensor([0.3, 0.7]))[actions]
    log_induced = None
    if regularizer == "imm":
        # The policy when the update began (PPO's first pass starts from it; REINFORCE and A2C take
        # one step on the whole rollout): the induced policy is the average over the two bits.
        fresh = bandit(algo, regularizer, (0.3, 0.7), Trust(1.0))
        probs = fresh.policy.get_distribution(torch.tensor([0, 1])).distribution.probs
        log_induced = probs.mean(dim=0).log()[actions].detach()
    expected = on_policy_evidence(advantages, log_pi, log_teacher, log_induced)
    (got,) = trust.evidence
    assert got.n == expected.n == 16
    assert got.mean == pytest.approx(expected.mean, rel=1e-5, abs=1e-7)
    assert got.se == pytest.approx(expected.se, rel=1e-5, abs=1e-7)


def test_a_constant_lambda_trains_bit_identically_with_and_without_the_trust_code_path():
    # Trust with a floor of 1 never moves: λ stays 1, as the constant λ = 1 it must equal bit for bit
    # (the signal only reads what the loss computed, and draws nothing on-policy).
    constant = bandit(PPO, "imm", (0.3, 0.7), 1.0)
    constant.learn(64)
    pinned = bandit(PPO, "imm", (0.3, 0.7), Trust(1.0, floor=1.0))
    pinned.learn(64)
    for a, b in zip(constant.policy.parameters(), pinned.policy.parameters(), strict=True):
        assert torch.equal(a, b)


def test_save_load_keeps_the_trust_state(tmp_path):
    trust = Trust(1.0, fall=0.1)
    model = bandit(PPO, "naive", (0.1, 0.9), trust)
    model.learn(16 * 20)
    assert trust.weight < 1.0
    model.save(tmp_path / "agent.zip")
    loaded = PPO.load(tmp_path / "agent.zip", env=TwoArms(), teacher=model.teacher)
    assert isinstance(loaded.teacher_coef, Trust)
    assert loaded.teacher_coef.weight == trust.weight
    assert loaded.current_teacher_coef() == pytest.approx(trust.weight)  # λ = 1 · the trust kept


ENV = "Pendulum-v1"


@pytest.mark.parametrize("regularizer", ["naive", "imm"])
def test_sac_signal_comes_from_its_critic_by_hand(regularizer):
    restriction = restriction_for(gym.make(ENV), [0, 1])
    visible = VisibleObservation(gym.make(ENV), restriction)
    expert = __import__("stable_baselines3").SAC("MlpPolicy", visible, seed=1, buffer_size=10)
    teacher = gaussian_policy_teacher(expert, restriction, gym.make(ENV).action_space, "sac-visible")
    trust = Recording(1.0)
    model = SAC(
        "MlpPolicy",
        gym.make(ENV),
        seed=0,
        learning_starts=20,
        batch_size=16,
        buffer_size=200,
        regularizer=regularizer,
        teacher=teacher,
        restriction=restriction,
        teacher_coef=trust,
        imm_batch_size=8,
    )
    captured = {}
    critic_values = model._critic_values

    def spy(rows, out, min_qf_pi):
        values = critic_values(rows, out, min_qf_pi)
        captured.update(rows=rows, out=out, min_qf_pi=min_qf_pi.detach(), values=values)
        return values

    model._critic_values = spy
    model.learn(21)  # learning starts after 20 steps: one gradient step
    (got,) = trust.evidence
    m = 8  # imm_batch_size rows of the minibatch of 16, for naive as for imm
    assert got.n == m
    # By hand, from the same minibatch: actions drawn before the squash with the trust stream's seed
    # (the teacher's, then for imm the induced mixture's: a component by its weight, then its Gaussian),
    # squashed, valued by the critic (the min over its heads; the critic is unchanged since then).
    rows, out = captured["rows"], captured["out"]
    generator = torch.Generator().manual_seed(0 + TRUST_STREAM)

    def value(pre_squash):
        with torch.no_grad():
            return torch.cat(model.critic(rows.observations[:m], torch.tanh(pre_squash)), 1).min(1).values

    mean, log_std = (p[:m] for p in out.teacher)
    q_teacher = value(mean + log_std.exp() * torch.randn(mean.shape, generator=generator))
    if regularizer == "imm":
        (means, log_stds), weights, _ = out.induced
        j = torch.multinomial(weights, 1, generator=generator).squeeze(1)
        pick = torch.arange(m)
        noise = torch.randn(means[pick, j].shape, generator=generator)
        q_compared = value(means[pick, j] + log_stds.expand_as(means)[pick, j].exp() * noise)
    else:
        q_compared = captured["min_qf_pi"][:m].reshape(-1)
    own = captured["min_qf_pi"][:m].reshape(-1)
    expected = critic_evidence(q_teacher, q_compared, own)
    assert got.mean == pytest.approx(expected.mean, rel=1e-5)
    assert got.se == pytest.approx(expected.se, rel=1e-5)
    assert got.scale == pytest.approx(expected.scale, rel=1e-5)
