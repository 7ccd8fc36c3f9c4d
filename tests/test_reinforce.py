"""REINFORCE itself: the paper's reward-to-go weights without a critic, and learning the grid.
What every algorithm shares (the teacher term, λ = 0, save/load, TensorBoard) is in test_agents.py."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlimm.envs as E
from rlimm.agents.reinforce import REINFORCE
from rlimm.agents.teachers import pomdp_teacher


@pytest.fixture(scope="module")
def setting():
    env = gym.make(E.GRID_ID, max_episode_steps=50)
    restriction = E.FactoredRestriction.for_env(env, ["x"])
    teacher = pomdp_teacher(env, restriction, "fib")
    return env, restriction, teacher


def make(setting, regularizer="imm", coef=0.25, seed=0, **kw):
    _, restriction, teacher = setting
    return REINFORCE(
        "MlpPolicy",
        gym.make(E.GRID_ID, max_episode_steps=50),  # a fresh env: seeding is per model
        regularizer=regularizer,
        teacher=None if regularizer == "none" else teacher,
        restriction=restriction,
        teacher_coef=coef,
        seed=seed,
        **kw,
    )


def params(model):
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()])


def test_weights_are_discounted_reward_to_go_without_critic(setting):
    model = make(setting, "none")
    model.learn(50)
    buf = model.rollout_buffer
    rewards = buf.rewards[:, 0]
    expected = np.zeros(50)
    running = 0.0
    for t in reversed(range(50)):  # one 50-step episode: no bootstrap at the cut
        running = rewards[t] + 0.9 * running
        expected[t] = running
    np.testing.assert_allclose(buf.advantages[:, 0], expected, rtol=1e-5)
    assert np.all(buf.values == 0)
    assert buf.episode_starts[0, 0] == 1  # every update starts a fresh trajectory
