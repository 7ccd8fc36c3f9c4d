"""One run of the RL experiment, below the command line: budgets in updates or environment steps,
λ resolved per run, evaluation against a hand-computed return, PPO and A2C through ``run_one`` and
the matrix, ``--jobs 1`` = ``--jobs 2``, several environments at once, and VecNormalize."""

import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

import rlimm.envs as E
from rlimm.agents.ppo import PPO
from rlimm.common.config import parse_mapping
from rlimm.rl.comparison import run_matrix
from rlimm.rl.config import CompareConfig, RunSpec, load_compare_config
from rlimm.rl.environments import evaluate
from rlimm.rl.runs import run_one

BASE = {
    "name": "t",
    "env": {"id": E.GRID_ID, "episode_steps": 50},
    "restriction": {"visible": ["x"]},
    "methods": ["none", "imm"],
    "budgets": [1000],
    "seeds": 1,
    "evaluation": {"episodes": 2, "steps": 22},
}


def config(**changes):
    return parse_mapping(CompareConfig, {**BASE, **changes})


@pytest.mark.parametrize(
    ("unit", "n_steps", "budget", "expected"),
    [("timesteps", 250, 1000, (4, 1000)), ("timesteps", 250, 100, (1, 100)), ("updates", 50, 30, (30, 1500))],
)
def test_budgets_in_updates_or_environment_steps(unit, n_steps, budget, expected):
    c = config(algo={"name": "ppo", "kwargs": {"n_steps": n_steps}}, budget_unit=unit)
    assert c.updates_and_timesteps(budget) == expected


def test_default_steps_per_update_comes_from_the_algorithm():
    assert config(algo={"name": "a2c"}, budget_unit="timesteps").updates_and_timesteps(50) == (10, 50)


@pytest.mark.parametrize(("budget", "ratio"), [(5000, 0.2), (20_000, 0.1)])
def test_paper_rule_counts_updates_for_step_budgets(budget, ratio):
    # 5000 steps / 50 per update = 100 updates → 0.2; 20 000 steps = 400 updates → 0.1.
    c = config(
        algo={"name": "reinforce", "kwargs": {"n_steps": 50}}, budget_unit="timesteps", budgets=[budget]
    )
    runs = {r.method: r for r in c.runs()}
    assert runs["none"].lambda_ratio == 0.0 and runs["none"].teacher_coef == 0.0
    assert runs["imm"].lambda_ratio == pytest.approx(ratio)
    assert runs["imm"].teacher_coef == pytest.approx(ratio / (1 - ratio))


def test_a_sweep_runs_none_once_per_seed():
    c = config(lambda_ratio=[0.1, 0.5], seeds=3)
    runs = c.runs()
    assert sorted((r.method, r.lambda_ratio) for r in runs if r.seed == 0) == [
        ("imm", 0.1),
        ("imm", 0.5),
        ("none", 0.0),
    ]
    assert len(runs) == 9


class AlwaysRight:
    """A model that always moves RIGHT (action 3)."""

    def predict(self, obs, deterministic=False):
        return 3, None


def test_evaluate_matches_a_hand_computed_return():
    env = gym.make(E.GRID_ID)
    returns = evaluate(AlwaysRight(), env, episodes=3, steps=5, seed=123, deterministic=True)
    # The same starts, by hand: reset(seed) once, then unseeded resets of the same generator.
    probe = E.ToroidalGridEnv()
    starts = [probe.reset(seed=123)[0]] + [probe.reset()[0] for _ in range(2)]
    grid = probe.reward_grid
    expected = [sum(grid[s // 11, (s % 11 + t) % 11] for t in range(1, 6)) for s in starts]
    np.testing.assert_allclose(returns, expected, rtol=1e-12)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_run_one_with_ppo_and_a2c(algo):
    kwargs = {"ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 1}, "a2c": {"n_steps": 16}}[algo]
    c = config(algo={"name": algo, "kwargs": kwargs}, budget_unit="timesteps", lambda_ratio=0.2)
    row = run_one(c, RunSpec("imm", 256, 0, 0.2))
    assert row["algo"] == algo and row["timesteps"] == 256 and row["updates"] == 256 // kwargs["n_steps"]
    assert row["teacher"] == "fib-argmax" and np.isfinite(row["score"])


def _rows(path):
    with open(path, newline="") as f:
        return sorted(
            (r["method"], r["budget"], r["seed"], r["lambda_ratio"], r["score"]) for r in csv.DictReader(f)
        )


def test_jobs_one_and_jobs_two_give_the_same_results(tmp_path):
    c = config(
        algo={"name": "a2c", "kwargs": {"n_steps": 16}},
        budget_unit="timesteps",
        budgets=[128, 256],
        seeds=2,
        lambda_ratio=0.2,
        methods=["none", "naive", "imm"],
    )
    one = run_matrix(c, tmp_path / "one", jobs=1, progress=False)
    two = run_matrix(c, tmp_path / "two", jobs=2, progress=False)
    assert len(_rows(one)) == 12
    assert _rows(one) == _rows(two)


def test_several_environments_at_once_with_the_context_buffer_and_vecnormalize(
    grid_restriction, grid_teacher
):
    restriction, teacher = grid_restriction, grid_teacher
    # SB3's usual helper passes render_mode="rgb_array": the grid accepts it.
    venv = VecNormalize(make_vec_env(E.GRID_ID, n_envs=4, seed=0), norm_obs=False, norm_reward=True)
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=32,
        batch_size=64,
        n_epochs=1,
        regularizer="imm",
        teacher=teacher,
        restriction=restriction,
        teacher_coef=0.5,
        seed=0,
    )
    model.learn(256)
    assert model.rollout_buffer.view_data["contexts"].size == 32 * 4
    # Re-collect one rollout and check every env's column was recorded at collection time.
    model.learn(128, reset_num_timesteps=False)
    obs = model.rollout_buffer.observations.reshape(-1).astype(int)
    np.testing.assert_array_equal(model.rollout_buffer.view_data["contexts"].reshape(-1), obs % 11)
    assert np.isfinite(model.logger.name_to_value["train/imm_kl"])


def test_trust_tests_imm_against_an_induced_teachers_expert_unless_told_otherwise():
    from rlimm.rl.teacher_builder import make_teacher, with_trust_score

    path = Path(__file__).resolve().parents[2] / "configs" / "suite" / "frozenlake_col_hidden_induced.yaml"
    config = load_compare_config(path, {"lambda_schedule": "trust", "evaluation": {"episodes": 3}})
    teacher = make_teacher(config)
    expert = teacher.about["expert"]["score"]
    assert expert == 1.0  # the optimal policy reaches the goal on every episode
    scored = with_trust_score(config, teacher)
    assert scored.trust.source_score == expert
    assert 0.0 <= scored.trust.teacher_score < 0.5  # the induced teacher itself rarely gets there
    given = config.model_copy(update={"trust": config.trust.model_copy(update={"source_score": 0.25})})
    assert with_trust_score(given, teacher).trust.source_score == 0.25
    constant = config.model_copy(update={"lambda_schedule": "constant"})
    assert with_trust_score(constant, teacher) is constant  # constant λ: nothing measured
