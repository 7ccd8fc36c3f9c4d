"""Restricted teachers: utilities to policies, exact POMDP teachers on the grid, compatibility checks;
the Teacher protocol of every kind of teacher, its acting and its files."""

import math
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.sac.policies import SACPolicy

import rlimm.envs
from rlimm.agents.teachers import (
    ActionFamily,
    PolicyTeacher,
    TabularPOMDP,
    TabularTeacher,
    Teacher,
    VisibleMLP,
    alpha_teacher,
    fib,
    fit_induced_expert,
    gaussian_policy_teacher,
    load_teacher,
    policy_teacher,
    pomdp_teacher,
    q_value_iteration,
    save_teacher,
    suffix_for,
    tabular_model,
    utilities_to_policy,
)
from rlimm.envs import GRID_ID
from rlimm.envs.restrictions import restriction_for
from rlimm.envs.toroidal_grid import DOWN, LEFT, RIGHT, UP
from rlimm.errors import RlimmError

# --------------------------------------------------------------------------- utilities_to_policy


def test_argmax_is_one_hot():
    u = np.array([[1.0, 3.0, 2.0], [-5.0, -7.0, -6.0], [0.0, 0.0, 1e-3]])
    np.testing.assert_array_equal(utilities_to_policy(u, "argmax"), [[0, 1, 0], [1, 0, 0], [0, 0, 1]])


def test_argmax_ties_are_shared_equally():
    u = np.array([[2.0, 2.0, 1.0, 2.0], [5.0, 5.0, 5.0, 5.0], [10.0, 10.0 + 1e-12, 3.0, 0.0]])
    expected = np.array([[1 / 3, 1 / 3, 0, 1 / 3], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]])
    np.testing.assert_allclose(utilities_to_policy(u, "argmax"), expected)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_softmax_matches_hand_computation(temperature):
    u = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [100.0, 101.0, 99.0]])
    out = utilities_to_policy(u, "softmax", temperature)
    for row, probs in zip(u, out, strict=True):
        w = [math.exp((v - row.max()) / temperature) for v in row]
        np.testing.assert_allclose(probs, [x / sum(w) for x in w], rtol=1e-12)
    # the explicit numbers of the first row at temperature 0.5: exp(2), exp(4), exp(6) normalised
    if temperature == 0.5:
        z = math.exp(2) + math.exp(4) + math.exp(6)
        np.testing.assert_allclose(out[0], [math.exp(2) / z, math.exp(4) / z, math.exp(6) / z])


def test_lower_temperature_is_sharper():
    u = np.array([[1.0, 2.0, 3.0]])
    assert utilities_to_policy(u, "softmax", 0.5)[0, 2] > utilities_to_policy(u, "softmax", 1.0)[0, 2]


@pytest.mark.parametrize("mode", ["greedy", "Argmax", ""])
def test_unknown_mode_raises(mode):
    with pytest.raises(RlimmError, match="argmax"):
        utilities_to_policy(np.zeros((2, 3)), mode)


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.nan])
def test_bad_temperature_raises(temperature):
    with pytest.raises(RlimmError, match="temperature"):
        utilities_to_policy(np.zeros((2, 3)), "softmax", temperature)


# --------------------------------------------------------------------------- grid teachers


@pytest.fixture(scope="module")
def grid_alphas(grid_restriction):
    t, r = gym.make(GRID_ID).unwrapped.tabular_model()
    return fib(TabularPOMDP.from_restriction(t, r, grid_restriction.context_of, 0.9))


def test_fib_teacher_heads_for_the_centre_column(grid_teacher):
    table = grid_teacher.table
    assert table.shape == (11, 4)
    np.testing.assert_allclose(table.sum(axis=1), 1.0)
    for x in range(5):
        np.testing.assert_array_equal(table[x], np.eye(4)[RIGHT], err_msg=f"column {x}")
    for x in range(6, 11):
        np.testing.assert_array_equal(table[x], np.eye(4)[LEFT], err_msg=f"column {x}")
    # in the centre column, moving sideways leaves the bump: only UP/DOWN remain
    assert table[5, LEFT] == table[5, RIGHT] == 0.0
    assert table[5, UP] == table[5, DOWN] == pytest.approx(0.5)


def test_fib_teacher_is_alpha_teacher_of_fib(grid_restriction, grid_alphas, grid_teacher):
    np.testing.assert_array_equal(grid_teacher.table, alpha_teacher(grid_alphas, grid_restriction).table)


def test_softmax_alpha_teacher_matches_hand_utilities(grid_restriction, grid_alphas):
    teacher = alpha_teacher(grid_alphas, grid_restriction, "softmax", temperature=0.5, name="fib-softmax")
    for x in range(11):
        u = np.mean([grid_alphas[y * 11 + x] for y in range(11)], axis=0)  # uniform belief over the rows
        w = np.exp((u - u.max()) / 0.5)
        np.testing.assert_allclose(teacher.table[x], w / w.sum(), rtol=1e-9)
    assert teacher.name == "fib-softmax"


def test_induced_optimal_teacher_is_the_column_average_of_the_optimal_policy(grid_env, grid_restriction):
    env, restriction = grid_env, grid_restriction
    t, r = env.unwrapped.tabular_model()
    q = q_value_iteration(t, r, 0.9)
    # One-hot optimal policy per state (exact symmetric ties of the grid share the mass).
    optimal = np.zeros((121, 4))
    for s in range(121):
        best = np.flatnonzero(np.isclose(q[s], q[s].max(), rtol=0, atol=1e-8))
        optimal[s, best] = 1.0 / len(best)
    expected = np.zeros((11, 4))
    for x in range(11):
        for y in range(11):
            expected[x] += optimal[y * 11 + x] / 11
    teacher = pomdp_teacher(env, restriction, "induced_optimal")
    np.testing.assert_allclose(teacher.table, expected, atol=1e-12)
    # unlike the FIB teacher, it keeps the vertical moves of the off-centre rows
    assert teacher.table[0, UP] > 0 and teacher.table[0, RIGHT] > 0.5


def test_qmdp_teacher_is_a_policy(grid_env, grid_restriction):
    teacher = pomdp_teacher(grid_env, grid_restriction, "qmdp")
    assert teacher.table.shape == (11, 4)
    np.testing.assert_allclose(teacher.table.sum(axis=1), 1.0)


def test_unknown_solver_raises(grid_env, grid_restriction):
    with pytest.raises(RlimmError, match="bogus"):
        pomdp_teacher(grid_env, grid_restriction, "bogus")


def test_teacher_for_env_without_tabular_model_raises():
    env = gym.make("CartPole-v1")
    with pytest.raises(RlimmError, match="tabular_model"):
        tabular_model(env)


def test_pomdp_teacher_checks_the_observation_space(grid_restriction):
    small = rlimm.envs.ToroidalGridEnv(height=3, width=4)
    with pytest.raises(RlimmError):
        pomdp_teacher(small, grid_restriction, "fib")


def test_alpha_teacher_rejects_wrong_number_of_states(grid_restriction):
    with pytest.raises(RlimmError, match="120"):
        alpha_teacher(np.zeros((120, 4)), grid_restriction)


# --------------------------------------------------------------------------- TabularTeacher


def test_check_compatible(grid_env, grid_restriction, grid_teacher):
    env, restriction = grid_env, grid_restriction
    grid_teacher.check_compatible(restriction, env.action_space)  # fits: no error
    three_actions = TabularTeacher(np.full((11, 3), 1.0 / 3.0), "three")
    with pytest.raises(RlimmError, match="3 actions"):
        three_actions.check_compatible(restriction, env.action_space)
    five_contexts = TabularTeacher(np.full((5, 4), 0.25), "five")
    with pytest.raises(RlimmError, match="5 visible contexts"):
        five_contexts.check_compatible(restriction, env.action_space)
    with pytest.raises(RlimmError, match="Discrete"):
        grid_teacher.check_compatible(restriction, spaces.Box(-1.0, 1.0, shape=(4,)))


def test_tabular_teacher_probs_indexes_rows():
    table = np.array([[1.0, 0.0], [0.25, 0.75], [0.5, 0.5]])
    teacher = TabularTeacher(table)
    assert (teacher.n_contexts, teacher.n_actions) == (3, 2)
    np.testing.assert_array_equal(teacher.probs(np.array([2, 0, 1, 1])), table[[2, 0, 1, 1]])


@pytest.mark.parametrize(
    "table",
    [np.array([[0.5, 0.6]]), np.array([[1.5, -0.5]]), np.array([0.5, 0.5])],
)
def test_tabular_teacher_rejects_non_policies(table):
    with pytest.raises(RlimmError):
        TabularTeacher(table)


# --------------------------------------------------------------------------- the Teacher protocol, every kind

VISIBLE = spaces.Box(-1.0, 1.0, (2,), np.float32)
BOX = spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))


def _sb3_policy(policy_class, action_space, seed=0):
    torch.manual_seed(seed)
    return policy_class(VISIBLE, action_space, lambda _: 1e-3)


def _teacher(kind):
    """One teacher of each kind, built without training (weights from a fixed seed)."""
    if kind == "tabular":
        return TabularTeacher(np.array([[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]]), "table")
    if kind == "discrete":
        return policy_teacher(_model(_sb3_policy(ActorCriticPolicy, spaces.Discrete(3))), name="ppo")
    if kind == "multi":
        return policy_teacher(_model(_sb3_policy(ActorCriticPolicy, spaces.MultiDiscrete([2, 3]))), name="m")
    if kind == "net":
        torch.manual_seed(1)
        return PolicyTeacher(VisibleMLP(2, 3), VISIBLE, 3, "softmax", 0.5, "net")
    if kind == "gaussian":
        return gaussian_policy_teacher(_sb3_policy(ActorCriticPolicy, BOX), name="ppo-gaussian")
    if kind == "squashed":
        return gaussian_policy_teacher(_sb3_policy(SACPolicy, BOX), name="sac-gaussian")
    torch.manual_seed(2)
    return PolicyTeacher(VisibleMLP(2, 4), VISIBLE, BOX, name="fitted", squashed=False, fit_kl=0.25)


def _model(policy):
    """Just enough of an SB3 model for policy_teacher: a policy and its spaces."""
    return SimpleNamespace(
        policy=policy, observation_space=VISIBLE, action_space=policy.action_space, device=torch.device("cpu")
    )


KINDS = {
    "tabular": (ActionFamily.CATEGORICAL, 3),
    "discrete": (ActionFamily.CATEGORICAL, 3),
    "multi": (ActionFamily.MULTI_CATEGORICAL, 5),
    "net": (ActionFamily.CATEGORICAL, 3),
    "gaussian": (ActionFamily.GAUSSIAN, 4),
    "squashed": (ActionFamily.SQUASHED_GAUSSIAN, 4),
    "fitted": (ActionFamily.GAUSSIAN, 4),
}


def _visible(kind, n=6):
    if kind == "tabular":
        return np.array([0, 1, 1, 0, 1, 0])[:n]
    return np.random.default_rng(5).uniform(-1, 1, (n, 2)).astype(np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_every_teacher_is_a_teacher_with_its_family_and_params(kind):
    teacher = _teacher(kind)
    family, width = KINDS[kind]
    assert isinstance(teacher, Teacher)
    assert teacher.family is family and teacher.n_params == width
    visible = _visible(kind)
    params = teacher.params(visible)
    assert params.shape == (6, width) and params.dtype == np.float32
    if family in (ActionFamily.GAUSSIAN, ActionFamily.SQUASHED_GAUSSIAN):
        mean, log_std = teacher.gaussian(visible)  # what the rollout buffer stored before params
        np.testing.assert_array_equal(params, np.concatenate([mean, log_std], axis=-1).astype(np.float32))
    else:
        np.testing.assert_array_equal(params, np.asarray(teacher.probs(visible), dtype=np.float32))
        sizes = [2, 3] if kind == "multi" else [3]
        for part in np.split(params, np.cumsum(sizes)[:-1], axis=1):
            np.testing.assert_allclose(part.sum(axis=1), 1.0, rtol=1e-6)


def _act_by_hand(teacher, kind, visible, rng, deterministic):
    """What the teacher's acting was before Teacher.act (rlimm.rl.teacher_builder.TeacherActor), one
    visible part at a time."""
    actions = []
    for i in range(len(visible)):
        one = visible[i : i + 1]
        if KINDS[kind][0] in (ActionFamily.GAUSSIAN, ActionFamily.SQUASHED_GAUSSIAN):
            mean, log_std = teacher.gaussian(one)
            u = mean if deterministic else mean + np.exp(log_std) * rng.standard_normal(mean.shape)
            low, high = BOX.low, BOX.high
            a = low + (np.tanh(u) + 1.0) * 0.5 * (high - low) if teacher.squashed else np.clip(u, low, high)
            actions.append(a.astype(np.float32)[0])
            continue
        probs = np.asarray(teacher.probs(one), dtype=np.float64)[0]
        parts = np.split(probs, [2]) if kind == "multi" else [probs]
        chosen = [
            int(np.argmax(p)) if deterministic else int(rng.choice(len(p), p=p / p.sum())) for p in parts
        ]
        actions.append(np.asarray(chosen if kind == "multi" else chosen[0]))
    return actions


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_act_is_the_old_acting_with_the_same_draws(kind, deterministic):
    teacher = _teacher(kind)
    visible = _visible(kind)
    expected = _act_by_hand(teacher, kind, visible, np.random.default_rng(11), deterministic)
    rng = np.random.default_rng(11)
    one_by_one = [teacher.act(visible[i : i + 1], rng, deterministic)[0] for i in range(len(visible))]
    batch = teacher.act(visible, np.random.default_rng(11), deterministic)
    assert len(batch) == len(visible)
    for got, in_batch, want in zip(one_by_one, batch, expected, strict=True):
        assert np.asarray(got).dtype == want.dtype and np.asarray(got).shape == want.shape
        np.testing.assert_array_equal(got, want)
        # A batch goes through the network at once: the same up to float rounding.
        np.testing.assert_allclose(in_batch, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_teacher_files_round_trip_every_kind(kind, tmp_path):
    teacher = _teacher(kind)
    path = tmp_path / f"teacher{suffix_for(teacher)}"
    save_teacher(teacher, path, {"env_id": "Some-v0", "visible": ["a", "b"], "solver": "test"})
    loaded = load_teacher(path)
    assert loaded.meta["env_id"] == "Some-v0" and loaded.teacher.name == teacher.name
    assert loaded.teacher.family is teacher.family and loaded.teacher.n_params == teacher.n_params
    visible = _visible(kind)
    np.testing.assert_array_equal(loaded.teacher.params(visible), teacher.params(visible))
    for deterministic in (False, True):
        np.testing.assert_array_equal(
            loaded.teacher.act(visible, np.random.default_rng(3), deterministic),
            teacher.act(visible, np.random.default_rng(3), deterministic),
        )
    loaded.check_visible(["a", "b"])
    with pytest.raises(RlimmError, match="built for visible fields"):
        loaded.check_visible(["a"])


# ------------------------------------------------------------------ the induced expert, discrete actions


def test_induced_expert_of_a_partition_is_the_visit_average_per_context(grid_restriction):
    restriction = grid_restriction
    expert = sb3.PPO("MlpPolicy", gym.make(GRID_ID), n_steps=64, seed=0)
    torch.manual_seed(0)  # expert.predict draws from torch's RNG
    report = {}
    teacher = fit_induced_expert(expert, gym.make(GRID_ID), restriction, samples=300, seed=0, report=report)
    assert isinstance(teacher, TabularTeacher) and teacher.family is ActionFamily.CATEGORICAL
    # the same run by hand
    torch.manual_seed(0)
    env = gym.make(GRID_ID)
    sums, counts = np.zeros((11, 4)), np.zeros(11)
    visits = []
    obs, _ = env.reset(seed=0)
    for _ in range(300):
        with torch.no_grad():
            dist = expert.policy.get_distribution(expert.policy.obs_to_tensor(obs)[0]).distribution
        context = int(np.asarray(restriction.visible(np.asarray(obs)[None])).reshape(-1)[0])
        sums[context] += dist.probs.double().numpy()[0]
        counts[context] += 1
        visits.append((context, dist.probs.double().numpy()[0]))
        action, _ = expert.predict(obs, deterministic=False)
        obs, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            obs, _ = env.reset()
    seen = counts > 0
    # (the table is renormalised: the expert's float32 probabilities sum to one only to ~1e-8)
    np.testing.assert_allclose(teacher.table[seen], sums[seen] / counts[seen, None], rtol=1e-6)
    np.testing.assert_array_equal(teacher.table[~seen], 0.25)
    # what the hidden row tells of the expert's action: the visit mean of KL(expert ‖ its context's average)
    kl = np.mean([(p * np.log(p / teacher.table[c])).sum() for c, p in visits])
    assert report == {"states": 300, "hidden_kl": pytest.approx(kl, rel=1e-6)}


def test_induced_expert_of_a_box_view_is_a_categorical_network():
    env = gym.make("CartPole-v1")
    restriction = restriction_for(env, ["theta", "theta_dot"])
    expert = sb3.PPO("MlpPolicy", env, n_steps=64, seed=0)

    def fit(seed):
        torch.manual_seed(0)
        return fit_induced_expert(
            expert, gym.make("CartPole-v1"), restriction, samples=200, seed=seed, epochs=3
        )

    teacher = fit(0)
    assert isinstance(teacher, PolicyTeacher) and isinstance(teacher.policy, VisibleMLP)
    assert teacher.family is ActionFamily.CATEGORICAL and teacher.n_params == 2
    teacher.check_compatible(restriction, env.action_space)
    visible = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    np.testing.assert_array_equal(teacher.params(visible), fit(0).params(visible))
    assert not np.array_equal(teacher.params(visible), fit(1).params(visible))
