"""Evaluation during training (``evaluation.every``) and one run for several budgets: evaluations
leave training bit-identical, a shorter budget read off a longer run equals training it alone, the
curve's side-by-side episodes equal the same episodes played alone, the step cap of envs without a
time limit, and the matrix's ``curves.csv`` with resuming."""

import csv
import random
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, PPO, SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

import rlimm.envs as E
import rlimm.rl.evaluation as evaluation
from rlimm.agents.reinforce import REINFORCE
from rlimm.common.config import parse_mapping
from rlimm.errors import ConfigError
from rlimm.rl import matrix
from rlimm.rl.comparison import run_matrix
from rlimm.rl.config import CompareConfig, RunSpec, load_compare_config
from rlimm.rl.environments import DEFAULT_EVAL_STEPS, acting, evaluation_steps
from rlimm.rl.evaluation import CURVE_COLUMNS, evaluate_side_by_side, preserved_random_state
from rlimm.rl.runs import run_budgets

ROOT = Path(__file__).resolve().parents[2]

CARTPOLE = {
    "name": "cp",
    "env": {"id": "CartPole-v1"},
    "methods": ["none"],
    "budgets": [100, 192, 256],
    "budget_unit": "timesteps",
    "seeds": 1,
    "lambda_ratio": 0.5,
    "algo": {"name": "ppo", "kwargs": {"n_steps": 64, "batch_size": 32, "n_epochs": 2}},
    "evaluation": {"episodes": 3},
}
GRID = {
    "name": "g",
    "env": {"id": E.GRID_ID, "episode_steps": 50},
    "restriction": {"visible": ["x"]},
    "methods": ["none", "imm"],
    "budgets": [2, 4],
    "seeds": 1,
    "lambda_ratio": 0.2,
    "algo": {"name": "reinforce", "kwargs": {"n_steps": 50, "learning_rate": 0.01, "gamma": 0.9}},
    "evaluation": {"episodes": 4, "steps": 22},
}


def config(base, **changes):
    return parse_mapping(CompareConfig, {**base, **changes})


def _with_every(c, every):
    return c.model_copy(update={"evaluation": c.evaluation.model_copy(update={"every": every})})


def _train(c, specs):
    """Rows of ``run_budgets`` and the policy parameters at each budget's checkpoint."""
    params = {}

    def snapshot(timesteps, model):
        params[timesteps] = {k: v.detach().clone() for k, v in model.policy.state_dict().items()}

    rows = run_budgets(c, specs, on_checkpoint=snapshot)
    return rows, params


def _same_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize(("base", "method"), [(CARTPOLE, "none"), (GRID, "imm")])
def test_evaluations_during_training_leave_training_bit_identical(base, method):
    c = config(base)
    spec = RunSpec(method, c.budgets[-1], 0, 0.0 if method == "none" else 0.2)
    plain, plain_params = _train(c, [spec])
    # Every few steps, so evaluations fall inside rollouts and between updates.
    every = 30 if base is CARTPOLE else 70
    curved, curved_params = _train(_with_every(c, every), [spec])
    assert curved[0]["score"] == plain[0]["score"] and curved[0]["score_std"] == plain[0]["score_std"]
    _same_params(plain_params[plain[0]["timesteps"]], curved_params[curved[0]["timesteps"]])
    steps = [p.step for p in curved[0]["curve"]]
    assert steps == list(range(every, plain[0]["timesteps"] + 1, every))
    assert plain[0]["curve"] == []


@pytest.mark.parametrize("base", [CARTPOLE, GRID])
def test_one_run_for_several_budgets_equals_separate_runs(base):
    c = config(base)
    method, ratio = ("none", 0.0) if base is CARTPOLE else ("imm", 0.2)
    specs = [RunSpec(method, b, 0, ratio) for b in c.budgets]
    assert matrix.budget_independent(c)
    together, together_params = _train(_with_every(c, 64), specs)
    assert [r["budget"] for r in together] == c.budgets
    for spec, row in zip(specs, together, strict=True):
        (alone,), alone_params = _train(c, [spec])
        for key in ("score", "score_std", "timesteps", "updates", "budget"):
            assert row[key] == alone[key], (spec, key)
        _same_params(together_params[row["timesteps"]], alone_params[alone["timesteps"]])
    # The longest budget's row holds the curve; the others an empty one.
    assert [bool(r["curve"]) for r in together] == [False] * (len(specs) - 1) + [True]


@pytest.mark.parametrize(
    ("changes", "independent"),
    [
        ({}, True),
        ({"lambda_ratio": [0.2, 0.5]}, True),
        ({"lambda_ratio": "paper_grid"}, False),
        ({"lambda_ratio": {"rule": "linear", "intercept": 0.2, "slope": 0.0}}, False),
        ({"lambda_schedule": "linear_decay"}, False),
        ({"algo": {"name": "ppo", "kwargs": {"learning_rate": "lin_0.001"}}}, False),
        ({"algo": {"name": "ppo", "kwargs": {"use_sde": True}}}, False),
    ],
)
def test_which_configs_share_one_run_across_budgets(changes, independent):
    c = config(CARTPOLE, **changes)
    assert matrix.budget_independent(c) is independent
    groups = c.run_groups(c.runs())
    assert sorted(s.key() for g in groups for s in g) == sorted(s.key() for s in c.runs())
    assert {len(g) for g in groups} == ({3} if independent else {1})
    assert groups[0][-1].budget == 256  # longest first


def test_the_grid_tables_keep_separate_runs():
    c = load_compare_config(ROOT / "configs" / "grid_quick.yaml")
    assert not matrix.budget_independent(c)
    assert all(len(g) == 1 for g in c.run_groups(c.runs()))


def test_preserved_random_state_puts_every_generator_back():
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    with preserved_random_state():
        torch.rand(10), np.random.rand(10), random.random()
    got = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def _alone(actor, make_env, episodes, steps, seed):
    """Each episode played by itself, by hand: a fresh env reset with ``seed + i``, one
    ``predict`` per step, deterministic actions."""
    returns = []
    for i in range(episodes):
        env = make_env()
        discrete = isinstance(env.action_space, gym.spaces.Discrete)
        obs, _ = env.reset(seed=seed + i)
        total = 0.0
        for _ in range(steps):
            action, _ = actor.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action) if discrete else action)
            total += float(reward)
            if terminated or truncated:
                break
        returns.append(total)
    return np.array(returns)


def test_side_by_side_episodes_equal_each_episode_played_alone():
    # Trained a little, so that the episodes end at different steps and the batch shrinks.
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=128, batch_size=64, n_epochs=4, seed=0)
    model.learn(1024)
    make_env = partial(gym.make, "CartPole-v1")
    together = evaluate_side_by_side(model, make_env, 6, 120, seed=11, deterministic=True)
    alone = _alone(acting(model), make_env, 6, 120, seed=11)
    assert len(set(together)) > 1
    np.testing.assert_array_equal(together, alone)


def test_side_by_side_episodes_normalise_and_clip_as_predict_does():
    venv = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0))
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0)
    model.learn(256)
    make_env = partial(gym.make, "Pendulum-v1")
    together = evaluate_side_by_side(model, make_env, 3, 40, seed=5, deterministic=True)
    alone = _alone(acting(model), make_env, 3, 40, seed=5)
    # Box actions are the network's outputs: a batched matmul rounds them differently in the last
    # bits from a single-row one, so the returns agree to float precision, not bit for bit.
    np.testing.assert_allclose(together, alone, rtol=1e-6)


def _predict_path(monkeypatch, model, make_env, episodes, steps, seed, deterministic):
    """``evaluate_side_by_side`` with every step's actions from ``obs_to_tensor`` and ``_predict``."""
    with monkeypatch.context() as m:
        m.setattr(evaluation, "_direct_actions", lambda policy, deterministic: None)
        return evaluate_side_by_side(model, make_env, episodes, steps, seed, deterministic)


@pytest.mark.parametrize("algo", [PPO, A2C, REINFORCE])
def test_direct_actions_equal_predict_on_cartpole(monkeypatch, algo):
    model = algo("MlpPolicy", "CartPole-v1", n_steps=128, seed=0)
    model.learn(512)
    assert evaluation._direct_actions(model.policy, True) is not None
    make_env = partial(gym.make, "CartPole-v1")
    direct = evaluate_side_by_side(model, make_env, 6, 120, seed=11, deterministic=True)
    predicted = _predict_path(monkeypatch, model, make_env, 6, 120, seed=11, deterministic=True)
    np.testing.assert_array_equal(direct, predicted)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("algo", [PPO, SAC])
def test_direct_actions_equal_predict_on_pendulum(monkeypatch, algo, normalize):
    venv = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    if normalize:
        venv = VecNormalize(venv)
    kwargs = {"n_steps": 64, "batch_size": 64, "n_epochs": 1} if algo is PPO else {"learning_starts": 64}
    model = algo("MlpPolicy", venv, seed=0, **kwargs)
    model.learn(128)
    assert evaluation._direct_actions(model.policy, True) is not None
    make_env = partial(gym.make, "Pendulum-v1")
    direct = evaluate_side_by_side(model, make_env, 3, 40, seed=5, deterministic=True)
    predicted = _predict_path(monkeypatch, model, make_env, 3, 40, seed=5, deterministic=True)
    np.testing.assert_allclose(direct, predicted, rtol=1e-6)
    # Stochastic actions: drawn, clipped or unscaled into the action space, and scored.
    assert np.isfinite(evaluate_side_by_side(model, make_env, 3, 40, seed=5, deterministic=False)).all()


def test_other_policies_keep_the_predict_path():
    sde = PPO("MlpPolicy", "Pendulum-v1", use_sde=True, seed=0)
    multi_discrete = PPO("MlpPolicy", gym.make("CartPole-v1"), seed=0)
    multi_discrete.policy.observation_space = gym.spaces.MultiDiscrete([2, 3])
    for model in (sde, multi_discrete):
        assert evaluation._direct_actions(model.policy, False) is None


def test_categorical_draws_follow_the_softmax():
    logits = np.broadcast_to(np.array([0.0, 1.0, -1.0], dtype=np.float32), (40000, 3))
    np.random.seed(0)
    frequencies = np.bincount(evaluation._categorical(logits, False), minlength=3) / 40000
    softmax = np.exp(logits[0]) / np.exp(logits[0]).sum()
    np.testing.assert_allclose(frequencies, softmax, atol=0.01, rtol=0)
    assert evaluation._categorical(logits[:2], True).tolist() == [1, 1]


@pytest.mark.parametrize(
    ("env_id", "steps", "cap"),
    [("CliffWalking-v1", None, DEFAULT_EVAL_STEPS), ("CliffWalking-v1", 50, 50), ("CartPole-v1", None, 500)],
)
def test_evaluation_step_cap(env_id, steps, cap):
    assert evaluation_steps(gym.make(env_id), steps) == cap
    assert evaluation_steps(gym.make(E.GRID_ID), None) == 22


@pytest.mark.parametrize(("every", "message"), [(0, "greater than 0"), (1000, "1000 is larger than")])
def test_bad_every_names_the_key(tmp_path, every, message):
    with pytest.raises(ConfigError, match=message) as err:
        c = config(CARTPOLE, evaluation={"episodes": 3, "every": every})
        run_matrix(c, tmp_path / "out", jobs=1, progress=False)
    assert "'evaluation.every'" in str(err.value)
    assert not (tmp_path / "out").exists()


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_matrix_reuses_runs_writes_curves_and_resumes(tmp_path, monkeypatch):
    c = _with_every(config(CARTPOLE, budgets=[128, 192], seeds=2), 64)
    reused = run_matrix(c, tmp_path / "reused", jobs=1, progress=False)
    rows = _csv(reused)
    assert len(rows) == 4
    curves = _csv(reused.with_name("curves.csv"))
    assert list(curves[0]) == CURVE_COLUMNS
    # One curve per (method, seed): the run trained for the longest budget, 3 evaluations each.
    assert sorted((int(r["seed"]), int(r["budget"]), int(r["step"])) for r in curves) == [
        (s, 192, step) for s in (0, 1) for step in (64, 128, 192)
    ]
    assert {r["eval_steps"] for r in curves} == {"500"} and {r["lambda_schedule"] for r in curves} == {
        "constant"
    }

    # The same matrix trained budget by budget gives the same results.
    monkeypatch.setattr(matrix, "budget_independent", lambda config: False)
    separate = run_matrix(c, tmp_path / "separate", jobs=1, progress=False)
    key = lambda r: (r["method"], r["budget"], r["seed"], r["score"], r["score_std"])  # noqa: E731
    assert sorted(map(key, _csv(separate))) == sorted(map(key, rows))
    monkeypatch.undo()

    # Resuming a folder that lost the longest budget of seed 1 (and holds its orphan curve): the
    # group is redone, the finished rows are kept, the orphan curve rows are dropped.
    kept = [r for r in rows if not (r["seed"] == "1" and r["budget"] == "192")]
    with reused.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(kept)
    run_matrix(c, tmp_path / "reused", jobs=1, progress=False)
    again = _csv(reused)
    assert again[:3] == kept and sorted(map(key, again)) == sorted(map(key, rows))
    assert sorted(map(tuple, (r.values() for r in _csv(reused.with_name("curves.csv"))))) == sorted(
        map(tuple, (r.values() for r in curves))
    )


@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        ("CliffWalking-v1", {}),  # a Discrete observation: one-hot, as SB3's preprocess_obs
        ("CartPole-v1", {"policy_kwargs": {"activation_fn": torch.nn.ReLU, "net_arch": [32, 16]}}),
    ],
)
def test_direct_actions_equal_predict_on_one_hot_observations_and_relu(monkeypatch, env_id, kwargs):
    model = PPO("MlpPolicy", env_id, n_steps=128, seed=0, **kwargs)
    model.learn(256)
    assert evaluation._direct_actions(model.policy, True) is not None
    make_env = partial(gym.make, env_id)
    direct = evaluate_side_by_side(model, make_env, 4, 40, seed=3, deterministic=True)
    predicted = _predict_path(monkeypatch, model, make_env, 4, 40, seed=3, deterministic=True)
    np.testing.assert_array_equal(direct, predicted)


def test_other_layers_keep_the_predict_path():
    model = PPO("MlpPolicy", "CartPole-v1", policy_kwargs={"activation_fn": torch.nn.ELU}, seed=0)
    assert evaluation._direct_actions(model.policy, True) is None


class _DoubledLinear(torch.nn.Linear):
    """A Linear whose forward is not the plain layer's."""

    def forward(self, x):  # noqa: ANN001, ANN201
        return 2 * super().forward(x)


class _ShiftedExtractor(torch.nn.Module):
    pass


def test_subclasses_with_another_forward_keep_the_predict_path():
    model = PPO("MlpPolicy", "CartPole-v1", seed=0)
    assert evaluation._direct_actions(model.policy, True) is not None
    old = model.policy.action_net
    doubled = _DoubledLinear(old.in_features, old.out_features)
    doubled.load_state_dict(old.state_dict())
    model.policy.action_net = doubled
    assert evaluation._direct_actions(model.policy, True) is None

    class Flatten2(type(model.policy.pi_features_extractor)):
        def forward(self, observations):  # noqa: ANN001, ANN201
            return super().forward(observations) + 1

    other = PPO("MlpPolicy", "CartPole-v1", seed=0, policy_kwargs={"features_extractor_class": Flatten2})
    assert evaluation._direct_actions(other.policy, True) is None

    class Tempered(type(model.policy)):
        def get_distribution(self, obs):  # noqa: ANN001, ANN201
            return super().get_distribution(obs)

    tempered = PPO(Tempered, "CartPole-v1", seed=0)
    assert evaluation._direct_actions(tempered.policy, True) is None


def test_gaussian_draws_follow_the_policys_own_distribution():
    # PPO's Gaussian (unsquashed) and SAC's squashed Gaussian: many draws at one observation against
    # draws of the policy's own torch distribution (mean, std and quartiles).
    n = 20000
    ppo = PPO("MlpPolicy", "Pendulum-v1", seed=0)
    ppo.policy.log_std.data.fill_(-0.5)
    sac = SAC("MlpPolicy", "Pendulum-v1", seed=0, learning_starts=10)
    obs = np.array([[0.6, -0.8, 1.5]], dtype=np.float32)
    batch = np.repeat(obs, n, axis=0)
    for model in (ppo, sac):
        np.random.seed(0)
        direct = evaluation._direct_actions(model.policy, False)(batch)
        torch.manual_seed(0)
        with torch.no_grad():
            if model is ppo:
                own = ppo.policy.get_distribution(torch.as_tensor(batch)).sample().numpy()
            else:
                own = sac.actor(torch.as_tensor(batch), deterministic=False).numpy()
        assert direct.shape == own.shape == (n, 1)
        np.testing.assert_allclose(direct.mean(), own.mean(), atol=0.02)
        np.testing.assert_allclose(direct.std(), own.std(), rtol=0.03)
        np.testing.assert_allclose(
            np.quantile(direct, [0.25, 0.5, 0.75]), np.quantile(own, [0.25, 0.5, 0.75]), atol=0.03
        )
