"""Teachers from SB3 policies trained on the visible part, or loaded from a saved model."""

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch
from gymnasium import spaces

import rlimm.envs as E
from rlimm.agents.ppo import PPO
from rlimm.agents.teachers import load_model, policy_teacher, train_restricted_teacher
from rlimm.errors import RlimmError


def test_trained_teacher_sees_the_visible_part_and_fits_the_full_env(grid_env, grid_restriction):
    env, restriction = grid_env, grid_restriction
    teacher, model = train_restricted_teacher(
        env, restriction, "ppo", 512, seed=0, algo_kwargs={"n_steps": 128, "batch_size": 32, "n_epochs": 1}
    )
    assert model.observation_space == spaces.Discrete(11)  # trained on the column only
    assert model.action_space == env.action_space
    assert teacher.table.shape == (11, 4)
    # softmax at temperature 1 is the trained policy itself, context by context
    with torch.no_grad():
        probs = model.policy.get_distribution(torch.arange(11.0)).distribution.probs.numpy()
    np.testing.assert_allclose(teacher.table, probs, atol=1e-6)
    teacher.check_compatible(restriction, env.action_space)
    # and it drives an IMM agent on the full environment
    agent = PPO(
        "MlpPolicy",
        env,
        regularizer="imm",
        teacher=teacher,
        restriction=restriction,
        teacher_coef=0.5,
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        seed=0,
    )
    agent.learn(64)


def test_saved_model_becomes_a_teacher_and_a_mismatch_is_refused(grid_env, grid_restriction, tmp_path):
    env, restriction = grid_env, grid_restriction
    partial = E.VisibleObservation(env, restriction)
    model = sb3.A2C("MlpPolicy", partial, n_steps=8, seed=1)
    model.learn(16)
    model.save(tmp_path / "a2c.zip")
    teacher = policy_teacher(load_model(tmp_path / "a2c.zip"), restriction, mode="argmax")
    assert set(np.unique(teacher.table)) <= {0.0, 0.5, 1.0, 1 / 3, 0.25}
    assert teacher.n_contexts == 11

    full_obs = sb3.A2C("MlpPolicy", env, n_steps=8, seed=1)  # observes the full state: 121 values
    with pytest.raises(RlimmError, match=r"observes Discrete\(121\) but the restriction has 11"):
        policy_teacher(full_obs, restriction)
    with pytest.raises(RlimmError, match="not found"):
        load_model(tmp_path / "missing.zip")
    (tmp_path / "junk.zip").write_text("not a model")
    with pytest.raises(RlimmError, match="cannot load"):
        load_model(tmp_path / "junk.zip")


def test_dqn_teacher_is_greedy_in_q(grid_env, grid_restriction, tmp_path):
    env, restriction = grid_env, grid_restriction
    dqn = sb3.DQN("MlpPolicy", E.VisibleObservation(env, restriction), learning_starts=0, seed=0)
    teacher = policy_teacher(dqn, restriction, mode="argmax")
    with torch.no_grad():
        q = dqn.policy.q_net(torch.arange(11.0)).numpy()
    np.testing.assert_array_equal(teacher.table.argmax(1), q.argmax(1))


def test_a_policy_teacher_made_right_after_training_pickles_to_workers():
    """SB3 keeps the last training minibatch's distribution, with its graph, on the policy: the
    teacher's copy must leave it out (compare hands the teacher to worker processes before it ever
    computed a probability, e.g. when resuming), and the source model must keep its own."""
    import io
    from multiprocessing.reduction import ForkingPickler

    from rlimm.agents.teachers import train_restricted_teacher
    from rlimm.envs.restrictions import restriction_for

    env = gym.make("CartPole-v1")
    restriction = restriction_for(env, ["theta", "theta_dot"])
    kwargs = {"n_steps": 128, "batch_size": 64, "n_epochs": 1}
    teacher, model = train_restricted_teacher(env, restriction, "ppo", 128, 0, "softmax", 1.0, kwargs)
    cached = model.policy.action_dist.distribution
    assert cached is not None and cached.logits.requires_grad
    ForkingPickler(io.BytesIO()).dump(teacher)  # raised "Cowardly refusing to serialize non-leaf tensor"
    assert model.policy.action_dist.distribution is cached
    assert teacher.policy.action_dist.distribution is None
