"""A model saved by rlimm's PPO, A2C and SAC loads with stable-baselines3's own class and plays with its
``evaluate_policy``, in a process that never imports rlimm; and ``rlimm.agents.X.load(path,
teacher=…)`` still restores rlimm's classes and the regulariser's settings, and trains on.

One model per algorithm and action family: Discrete (CartPole-v1), MultiDiscrete (a small env defined
here, its source handed to the stock process) and Box (Pendulum-v1)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch

from rlimm.agents import A2C, PPO, SAC
from rlimm.agents.common.policies import DistributionReturningPolicy
from rlimm.agents.common.rollout_buffers import TeacherRolloutBuffer
from rlimm.agents.teachers import gaussian_policy_teacher, policy_teacher
from rlimm.coefficients import Linear
from rlimm.envs import VisibleObservation
from rlimm.envs.restrictions import restriction_for


class TwoDials(gym.Env):
    """Three coordinates in [-1, 1], two action dimensions (3 and 2 choices); episodes of 10 steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.MultiDiscrete([3, 2])

    def reset(self, *, seed=None, options=None):  # noqa: ANN001, ANN201
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {}

    def step(self, action):  # noqa: ANN001, ANN201
        self.t += 1
        obs = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        return obs, float(np.asarray(action)[0] == 1), False, self.t >= 10, {}


ENVS = {
    "discrete": lambda: gym.make("CartPole-v1"),
    "multidiscrete": TwoDials,
    "box": lambda: gym.make("Pendulum-v1"),
}
VISIBLE = {"discrete": [2, 3], "multidiscrete": [0, 1], "box": [0, 1]}
FAST = {
    PPO: {"n_steps": 32, "batch_size": 16, "n_epochs": 1},
    A2C: {"n_steps": 8},
    SAC: {"buffer_size": 200, "learning_starts": 16, "batch_size": 16},
}
CASES = [
    (PPO, "discrete"),
    (A2C, "discrete"),
    (PPO, "multidiscrete"),
    (A2C, "multidiscrete"),
    (PPO, "box"),
    (A2C, "box"),
    (SAC, "box"),
]


def _teacher(algo, family, restriction):
    visible = VisibleObservation(ENVS[family](), restriction)
    if family != "box":
        return policy_teacher(sb3.PPO("MlpPolicy", visible, seed=3), restriction, name="visible-ppo")
    expert = (
        sb3.SAC("MlpPolicy", visible, seed=1, buffer_size=10)
        if algo is SAC
        else sb3.PPO("MlpPolicy", visible, seed=1)
    )
    return gaussian_policy_teacher(expert, restriction, ENVS[family]().action_space, "visible")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Each case trained a little with an IMM teacher (one with a λ schedule) and saved."""
    folder = tmp_path_factory.mktemp("stock")
    out = {}
    for i, (algo, family) in enumerate(CASES):
        restriction = restriction_for(ENVS[family](), VISIBLE[family])
        teacher = _teacher(algo, family, restriction)
        coef = Linear(0.5, 0.0) if i == 0 else 0.3
        model = algo(
            "MlpPolicy",
            ENVS[family](),
            regularizer="imm",
            teacher=teacher,
            restriction=restriction,
            teacher_coef=coef,
            induction={"method": "knn", "k": 4},
            seed=0,
            device="cpu",
            **FAST[algo],
        )
        model.learn(32)
        path = folder / f"{algo.__name__}_{family}.zip"
        model.save(path)
        out[algo, family] = (path, model, teacher, coef)
    return out


STOCK_PLAYER = """
import json, sys
import gymnasium as gym
import numpy as np
import stable_baselines3 as sb3
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

{env_source}

ENVS = {{
    "discrete": lambda: gym.make("CartPole-v1"),
    "multidiscrete": TwoDials,
    "box": lambda: gym.make("Pendulum-v1"),
}}
out = []
for algo, family, path in json.loads(sys.argv[1]):
    model = getattr(sb3, algo).load(path, device="cpu")
    rlimm = sorted(m for m in sys.modules if m == "rlimm" or m.startswith("rlimm."))
    mean, _ = evaluate_policy(model, Monitor(ENVS[family]()), n_eval_episodes=2)
    out.append([algo, family, type(model).__module__, type(model.policy).__module__, rlimm, float(mean)])
print(json.dumps(out))
"""


def test_stock_sb3_loads_and_plays_every_algorithm_and_action_family_without_rlimm(saved):
    cases = [[algo.__name__, family, str(path)] for (algo, family), (path, *_) in saved.items()]
    script = STOCK_PLAYER.format(env_source=textwrap.dedent(inspect.getsource(TwoDials)))
    res = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(rows) == len(CASES)
    for algo, family, algo_module, policy_module, rlimm_modules, mean in rows:
        assert algo_module.startswith("stable_baselines3."), (algo, family)
        assert policy_module.startswith("stable_baselines3."), (algo, family)
        assert rlimm_modules == [], (algo, family, rlimm_modules)
        assert np.isfinite(mean)


@pytest.mark.parametrize(("algo", "family"), CASES, ids=[f"{a.__name__}-{f}" for a, f in CASES])
def test_rlimm_load_restores_its_classes_and_the_regularizer_settings_and_trains(saved, algo, family):
    path, model, teacher, coef = saved[algo, family]
    loaded = algo.load(path, env=ENVS[family](), teacher=teacher, device="cpu")
    assert type(loaded.policy) is type(model.policy)
    if algo is not SAC:
        assert isinstance(loaded.policy, DistributionReturningPolicy)
        assert loaded.rollout_buffer_class is TeacherRolloutBuffer
        assert isinstance(loaded.rollout_buffer, TeacherRolloutBuffer)
    else:
        assert loaded.imm_batch_size == model.imm_batch_size
    assert loaded.regularizer == "imm" and loaded.teacher is teacher
    assert loaded.teacher_coef == coef
    assert loaded.induction == model.induction
    assert loaded.restriction.describe() == model.restriction.describe()
    assert loaded.teacher_regularizer.kind == "imm"
    before = [p.detach().clone() for p in loaded.policy.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    loaded.learn(32, reset_num_timesteps=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, loaded.policy.parameters(), strict=True))


def test_the_live_model_keeps_its_own_classes_after_saving(saved):
    _, model, _, _ = saved[PPO, "discrete"]
    assert model.policy_class is DistributionReturningPolicy
    assert model.rollout_buffer_class is TeacherRolloutBuffer
    assert "rlimm" not in model.__dict__
