"""Restricted teachers: utilities to policies, exact POMDP teachers on the grid, compatibility checks."""

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import rlimm.envs
from rlimm.agents.pomdp import TabularPOMDP, fib, q_value_iteration
from rlimm.agents.teachers import (
    TabularTeacher,
    alpha_teacher,
    pomdp_teacher,
    tabular_model,
    utilities_to_policy,
)
from rlimm.envs import GRID_ID, FactoredRestriction
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
def grid():
    env = gym.make(GRID_ID)
    return env, FactoredRestriction.for_env(env, ["x"])


@pytest.fixture(scope="module")
def fib_teacher(grid):
    return pomdp_teacher(grid[0], grid[1], "fib")


@pytest.fixture(scope="module")
def grid_alphas(grid):
    env, restriction = grid
    t, r = env.unwrapped.tabular_model()
    return fib(TabularPOMDP.from_restriction(t, r, restriction.context_of, 0.9))


def test_fib_teacher_heads_for_the_centre_column(fib_teacher):
    table = fib_teacher.table
    assert table.shape == (11, 4)
    np.testing.assert_allclose(table.sum(axis=1), 1.0)
    for x in range(5):
        np.testing.assert_array_equal(table[x], np.eye(4)[RIGHT], err_msg=f"column {x}")
    for x in range(6, 11):
        np.testing.assert_array_equal(table[x], np.eye(4)[LEFT], err_msg=f"column {x}")
    # in the centre column, moving sideways leaves the bump: only UP/DOWN remain
    assert table[5, LEFT] == table[5, RIGHT] == 0.0
    assert table[5, UP] == table[5, DOWN] == pytest.approx(0.5)


def test_fib_teacher_is_alpha_teacher_of_fib(grid, grid_alphas, fib_teacher):
    np.testing.assert_array_equal(fib_teacher.table, alpha_teacher(grid_alphas, grid[1]).table)


def test_softmax_alpha_teacher_matches_hand_utilities(grid, grid_alphas):
    teacher = alpha_teacher(grid_alphas, grid[1], "softmax", temperature=0.5, name="fib-softmax")
    for x in range(11):
        u = np.mean([grid_alphas[y * 11 + x] for y in range(11)], axis=0)  # uniform belief over the rows
        w = np.exp((u - u.max()) / 0.5)
        np.testing.assert_allclose(teacher.table[x], w / w.sum(), rtol=1e-9)
    assert teacher.name == "fib-softmax"


def test_induced_optimal_teacher_is_the_column_average_of_the_optimal_policy(grid):
    env, restriction = grid
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


def test_qmdp_teacher_is_a_policy(grid):
    teacher = pomdp_teacher(grid[0], grid[1], "qmdp")
    assert teacher.table.shape == (11, 4)
    np.testing.assert_allclose(teacher.table.sum(axis=1), 1.0)


def test_unknown_solver_raises(grid):
    with pytest.raises(RlimmError, match="bogus"):
        pomdp_teacher(grid[0], grid[1], "bogus")


def test_teacher_for_env_without_tabular_model_raises():
    env = gym.make("CartPole-v1")
    with pytest.raises(RlimmError, match="tabular_model"):
        tabular_model(env)


def test_pomdp_teacher_checks_the_observation_space(grid):
    small = rlimm.envs.ToroidalGridEnv(height=3, width=4)
    with pytest.raises(RlimmError):
        pomdp_teacher(small, grid[1], "fib")


def test_alpha_teacher_rejects_wrong_number_of_states(grid):
    with pytest.raises(RlimmError, match="120"):
        alpha_teacher(np.zeros((120, 4)), grid[1])


# --------------------------------------------------------------------------- TabularTeacher


def test_check_compatible(grid, fib_teacher):
    env, restriction = grid
    fib_teacher.check_compatible(restriction, env.action_space)  # fits: no error
    three_actions = TabularTeacher(np.full((11, 3), 1.0 / 3.0), "three")
    with pytest.raises(RlimmError, match="3 actions"):
        three_actions.check_compatible(restriction, env.action_space)
    five_contexts = TabularTeacher(np.full((5, 4), 0.25), "five")
    with pytest.raises(RlimmError, match="5 visible contexts"):
        five_contexts.check_compatible(restriction, env.action_space)
    with pytest.raises(RlimmError, match="Discrete"):
        fib_teacher.check_compatible(restriction, spaces.Box(-1.0, 1.0, shape=(4,)))


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
