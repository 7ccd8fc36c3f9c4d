"""Several training envs (``algo.n_envs``): the teacher's view is per env row.

Each env logs the observations it returns; the rows of the rollout (PPO) and replay (SAC) buffers'
teacher view must equal the teacher applied to each env's own raw observations — under
``VecNormalize`` too, where the stored observations are normalised — and the contexts of a table
restriction likewise; SAC's samples carry the view of the env they were drawn from. With one env in a
``DummyVecEnv``, :func:`rlimm.rl.runs.make_training_env` trains number for number as a single env.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

import rlimm.envs as E
from rlimm.agents import PPO, SAC
from rlimm.agents.teachers import gaussian_policy_teacher, policy_teacher, pomdp_teacher
from rlimm.envs import VisibleObservation
from rlimm.envs.restrictions import PartitionRestriction, restriction_for
from rlimm.rl.config import CompareConfig
from rlimm.rl.environments import make_env, make_restriction, make_training_env
from rlimm.rl.runs import build_agent


class Logged(gym.Wrapper):
    """Keeps each observation the env returns, with whether its episode ended there (the agent never
    acts on an end observation: the vectorised env resets)."""

    def __init__(self, env: gym.Env, log: list) -> None:
        super().__init__(env)
        self.log = log

    def reset(self, **kwargs):  # noqa: ANN003, ANN201
        obs, info = self.env.reset(**kwargs)
        self.log.append((obs, False))
        return obs, info

    def step(self, action):  # noqa: ANN001, ANN201
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.log.append((obs, terminated or truncated))
        return obs, reward, terminated, truncated, info


def logged_vec_env(make, n_envs):
    logs = [[] for _ in range(n_envs)]
    made = iter(range(n_envs))

    def factory():
        return Logged(make(), logs[next(made)])

    return make_vec_env(factory, n_envs=n_envs, seed=0), logs


def acted_on(log, n):
    """The first ``n`` observations an env's agent acted on."""
    return [obs for obs, ended in log if not ended][:n]


def expected_view(teacher, restriction, raw):
    visible = restriction.visible(np.asarray(raw))
    return teacher.params(visible).reshape(len(raw), -1), visible


def imm_ppo(env, teacher, restriction, n_steps, **kwargs):
    """PPO with the IMM term (λ = 0.3), one epoch of 16-row minibatches per rollout."""
    return PPO(
        "MlpPolicy",
        env,
        n_steps=n_steps,
        batch_size=16,
        n_epochs=1,
        regularizer="imm",
        teacher=teacher,
        restriction=restriction,
        teacher_coef=0.3,
        seed=0,
        device="cpu",
        **kwargs,
    )


PPO_CASES = {
    "cartpole-vecnormalize": (lambda: gym.make("CartPole-v1"), [2, 3], True),
    "grid-contexts": (lambda: gym.make(E.GRID_ID, max_episode_steps=50), ["x"], False),
}


@pytest.mark.parametrize("case", PPO_CASES)
def test_ppo_teacher_view_rows_are_the_teacher_on_each_envs_raw_observations(case):
    make, visible, normalize = PPO_CASES[case]
    n_envs, n_steps = 2, 16
    venv, logs = logged_vec_env(make, n_envs)
    env = VecNormalize(venv) if normalize else venv
    restriction = restriction_for(make(), visible)
    if isinstance(restriction, PartitionRestriction):
        teacher = pomdp_teacher(make(), restriction, "fib")
    else:
        teacher = policy_teacher(
            sb3.PPO("MlpPolicy", VisibleObservation(make(), restriction), seed=3), restriction
        )
    model = imm_ppo(env, teacher, restriction, n_steps)
    model.learn(n_steps * n_envs)
    buffer = model.rollout_buffer  # flattened by get(): row env · n_steps + step
    for i, log in enumerate(logs):
        params, context = expected_view(teacher, restriction, acted_on(log, n_steps))
        rows = slice(i * n_steps, (i + 1) * n_steps)
        np.testing.assert_allclose(
            buffer.view_data["teacher_params"][rows], params, rtol=1e-5, atol=1e-6
        )  # teacher batches differ in size
        if "contexts" in buffer.view_data:
            np.testing.assert_array_equal(buffer.view_data["contexts"][rows].reshape(-1), np.ravel(context))
    if normalize:  # the stored observations are normalised: the view was not taken from them
        assert not np.allclose(buffer.observations[:n_steps], np.asarray(acted_on(logs[0], n_steps)))


def test_sac_teacher_view_rows_and_samples_follow_their_env():
    n_envs, steps = 2, 24
    make = lambda: gym.make("Pendulum-v1")  # noqa: E731
    env, logs = logged_vec_env(make, n_envs)
    restriction = restriction_for(make(), [0, 1])
    visible_env = VisibleObservation(make(), restriction)
    teacher = gaussian_policy_teacher(
        sb3.SAC("MlpPolicy", visible_env, seed=1, buffer_size=10), restriction, make().action_space
    )
    model = SAC(
        "MlpPolicy",
        env,
        buffer_size=100,
        learning_starts=8,
        batch_size=16,
        regularizer="imm",
        teacher=teacher,
        restriction=restriction,
        teacher_coef=0.3,
        seed=0,
        device="cpu",
    )
    model.learn(steps * n_envs)
    buffer = model.replay_buffer
    model.update_teacher_view()  # the last step's transitions are stored before the next update
    for i, log in enumerate(logs):
        params, _ = expected_view(teacher, restriction, acted_on(log, buffer.pos))
        np.testing.assert_allclose(
            buffer.view_data["teacher_params"][: buffer.pos, i], params, rtol=1e-5, atol=1e-6
        )  # teacher batches differ in size
    samples = buffer.sample(32)
    params, _ = expected_view(teacher, restriction, samples.observations.numpy())
    torch.testing.assert_close(samples.teacher_params, torch.as_tensor(params), rtol=1e-5, atol=1e-6)
    assert set(samples.env_indices.tolist()) == {0, 1}


def test_one_dummy_env_trains_as_the_single_env_it_wraps():
    config = CompareConfig.model_validate(
        {
            "name": "one",
            "env": {"episode_steps": 50},
            "restriction": {"visible": ["x"]},
            "algo": {"name": "ppo", "kwargs": {"n_steps": 32, "batch_size": 16, "n_epochs": 1}},
            "methods": ["imm"],
            "budgets": [2],
        }
    )
    single = make_env(config.env, config.env.episode_steps)
    restriction = make_restriction(config, single)
    teacher = pomdp_teacher(single, restriction, "fib")
    models = []
    for env in (single, make_training_env(config, 5)):
        model = build_agent(config.algo, env, "imm", teacher, restriction, 0.3, 5, device="cpu")
        model.learn(64)
        models.append(torch.cat([p.detach().flatten() for p in model.policy.parameters()]))
    assert torch.equal(models[0], models[1])


def test_n_envs_multiplies_the_steps_of_an_update():
    base = {"name": "n", "methods": ["none"], "budgets": [3]}
    one = CompareConfig.model_validate({**base, "algo": {"name": "ppo", "kwargs": {"n_steps": 32}}})
    four = CompareConfig.model_validate(
        {**base, "algo": {"name": "ppo", "kwargs": {"n_steps": 32}, "n_envs": 4}}
    )
    assert one.updates_and_timesteps(3) == (3, 96)
    assert four.updates_and_timesteps(3) == (3, 384)


def test_pooled_earlier_rollouts_are_normalised_with_the_current_statistics():
    # induction.pool = 2 under VecNormalize: the rollout before is kept raw and normalised with the
    # statistics of the current update, not with those of its own time.
    make = lambda: gym.make("CartPole-v1")  # noqa: E731
    n_envs, n_steps = 2, 16
    venv, logs = logged_vec_env(make, n_envs)
    env = VecNormalize(venv)
    restriction = restriction_for(make(), [2, 3])
    teacher = policy_teacher(
        sb3.PPO("MlpPolicy", VisibleObservation(make(), restriction), seed=3), restriction
    )
    model = imm_ppo(env, teacher, restriction, n_steps, induction={"method": "knn", "k": 4, "pool": 2})
    pools = []
    build = model.induction_pool

    def spy(batch=None):
        pool = build(batch)
        pools.append((pool, env.obs_rms.mean.copy(), env.obs_rms.var.copy()))
        return pool

    model.induction_pool = spy
    model.learn(2 * n_steps * n_envs)
    pool, mean, var = pools[-1]
    n = n_steps * n_envs
    assert pool.rows == n and pool.observations.shape[0] == 2 * n
    # The first rollout's raw observations, env by env as the buffer flattens its rows.
    first = np.concatenate([np.asarray(acted_on(log, n_steps)) for log in logs])
    expected = np.clip((first - mean) / np.sqrt(var + env.epsilon), -env.clip_obs, env.clip_obs)
    np.testing.assert_allclose(
        pool.observations[n:].numpy(), expected.astype(np.float32), rtol=1e-5, atol=1e-6
    )
    # What the buffer stored for it then, normalised with older statistics, differs.
    older = pools[0][0].observations[:n].numpy()
    assert not np.allclose(older, pool.observations[n:].numpy(), atol=1e-4)
