"""``train/hidden_left`` of on-policy runs (:mod:`rlimm.agents.common.hidden`): the share of the hidden
part the visible part leaves open on each rollout, logged without touching SB3's random streams."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO as SB3PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.logger import Logger

from rlimm.agents.common.hidden import rollout_hidden_left
from rlimm.agents.imm.draws import hidden_spread
from rlimm.agents.imm.settings import InductionSettings
from rlimm.agents.ppo import PPO
from rlimm.envs.restrictions import restriction_for


def _buffer(obs):
    size, n_envs = obs.shape[:2]
    space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    buffer = RolloutBuffer(size, space, gym.spaces.Discrete(2), n_envs=n_envs)
    buffer.observations[:] = obs
    buffer.episode_starts[:] = 0
    buffer.episode_starts[0] = 1
    return buffer


def test_the_rollouts_hidden_part_left_by_hand():
    restriction = restriction_for(gym.make("CartPole-v1"), ["x", "theta"])
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(6, 2, 4)).astype(np.float32)
    settings = InductionSettings(k=3, exclude=None)
    left = rollout_hidden_left(_buffer(obs), restriction, settings, th.Generator().manual_seed(0))
    # By hand: rows in (step, env) order; each row's 3 nearest in standardised (x, θ), itself first.
    flat = obs.reshape(12, 4)
    visible = flat[:, [0, 2]] / flat[:, [0, 2]].std(axis=0, ddof=1)
    distance = ((visible[:, None] - visible[None]) ** 2).sum(-1)
    index = np.argsort(distance, axis=1, kind="stable")[:, :3]
    expected = hidden_spread(th.as_tensor(flat[:, [1, 3]], dtype=th.float64), th.as_tensor(index))
    assert left == pytest.approx(expected, rel=1e-9)


def test_told_and_free_hidden_parts():
    restriction = restriction_for(gym.make("CartPole-v1"), ["x", "theta"])
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(256, 4, 4)).astype(np.float32)
    free = rollout_hidden_left(_buffer(obs), restriction, InductionSettings(exclude=None), th.Generator())
    obs[..., 1], obs[..., 3] = 3 * obs[..., 0], -obs[..., 2]  # the velocities told by the positions
    told = rollout_hidden_left(_buffer(obs), restriction, InductionSettings(exclude=None), th.Generator())
    assert 0.85 < free < 1.15 and told < 0.05


def test_a_run_without_teacher_logs_it_and_trains_as_plain_sb3():
    env_id, kwargs = "CartPole-v1", {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "seed": 0}
    restriction = restriction_for(gym.make(env_id), ["x", "theta"])
    ours = PPO("MlpPolicy", gym.make(env_id), regularizer="none", restriction=restriction, **kwargs)
    logged = []

    class Recording(Logger):
        def record(self, key, value, exclude=None):  # noqa: ANN001, ANN202
            if key == "train/hidden_left":
                logged.append(value)
            super().record(key, value, exclude)

    ours.set_logger(Recording(None, []))
    ours.learn(128)
    assert len(logged) == 2 and all(0.0 < v < 2.0 for v in logged)  # one per rollout
    plain = SB3PPO("MlpPolicy", gym.make(env_id), **kwargs)
    plain.learn(128)
    for a, b in zip(ours.policy.parameters(), plain.policy.parameters(), strict=True):
        assert th.equal(a, b)
