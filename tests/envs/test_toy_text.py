"""Exact teachers on gymnasium's toy-text environments (Taxi, FrozenLake, CliffWalking) from their
transition tables ``P[s][a] = [(p, s', r, terminated), …]``."""

import gymnasium as gym
import numpy as np
import pytest

from rlimm.agents.teachers import (
    TabularPOMDP,
    fib,
    pomdp_teacher,
    q_value_iteration,
    qmdp,
    tabular_model,
    utilities_to_policy,
)
from rlimm.envs import FactoredRestriction, IdentityRestriction, restriction_for
from rlimm.errors import RlimmError

DISCOUNT = 0.9

# --------------------------------------------------------------------------- tabular_model


def test_taxi_model_matches_stepping_the_environment():
    env = gym.make("Taxi-v4").unwrapped
    transitions, rewards = tabular_model(env)
    assert transitions.shape == (6, 500, 500) and rewards.shape == (500, 6)
    for s in range(500):
        for a in range(6):
            env.s = s
            nxt, r, terminated, _, _ = env.step(a)
            assert rewards[s, a] == r
            expected = np.zeros(500)
            if not terminated:
                expected[nxt] = 1.0
            np.testing.assert_array_equal(transitions[a, s], expected)


def test_taxi_episode_ends_only_on_a_successful_drop_off():
    env = gym.make("Taxi-v4").unwrapped
    transitions, rewards = tabular_model(env)
    ended = np.argwhere(transitions.sum(-1) == 0)  # (action, state)
    assert len(ended) == 4 and set(ended[:, 0]) == {5}  # DROPOFF at the destination, one per destination
    for _, s in ended:
        row, col, passenger, destination = env.decode(int(s))
        assert passenger == 4 and (row, col) == env.locs[destination]
        assert rewards[s, 5] == 20


def test_frozen_lake_slippery_model_by_hand():
    transitions, rewards = tabular_model(gym.make("FrozenLake-v1"))
    assert transitions.shape == (4, 16, 16)
    # state 14 (row 3, col 2), RIGHT: left-of-intended 10, intended 15 (goal, ends, reward 1), right-of 14
    assert rewards[14, 2] == pytest.approx(1 / 3)
    assert transitions[2, 14, 10] == pytest.approx(1 / 3) and transitions[2, 14, 14] == pytest.approx(1 / 3)
    assert transitions[2, 14].sum() == pytest.approx(2 / 3)  # 1/3: the episode ends
    # a hole (5) ends the episode whatever the action: nothing follows
    np.testing.assert_array_equal(transitions[:, 5], 0.0)
    np.testing.assert_array_equal(rewards[5], 0.0)
    sums = transitions.sum(-1)
    assert np.all(sums <= 1 + 1e-12)
    # duplicates in P (slipping against a wall twice) are added: the corner's row still sums to one
    assert sums[0, 0] == pytest.approx(1.0)


def test_cliff_walking_model_by_hand():
    transitions, rewards = tabular_model(gym.make("CliffWalking-v1"))
    up, right, down, left = 0, 1, 2, 3
    start, goal = 36, 47
    assert transitions[right, start, start] == 1.0 and rewards[start, right] == -100  # the cliff
    assert transitions[up, start, 24] == 1.0 and rewards[start, up] == -1
    assert transitions[down, 35].sum() == 0.0 and rewards[35, down] == -1  # into the goal: ends
    assert transitions[left, start, start] == 1.0  # against the wall
    assert goal == 47


def test_rainy_taxi_is_stochastic_and_fickle_taxi_is_refused():
    transitions, _ = tabular_model(gym.make("Taxi-v4", is_rainy=True))
    assert (transitions.max(-1) < 1.0).any()
    assert np.all(transitions.sum(-1) <= 1 + 1e-9)
    with pytest.raises(RlimmError, match="fickle"):
        tabular_model(gym.make("Taxi-v4", fickle_passenger=True))


def test_environment_without_a_table_is_refused():
    with pytest.raises(RlimmError, match="transition table P"):
        tabular_model(gym.make("CartPole-v1"))


# --------------------------------------------------------------------------- solvers and teachers

RESTRICTED = [
    ("Taxi-v4", {}, ["taxi_row", "taxi_col", "passenger"]),  # destination hidden
    ("Taxi-v4", {}, ["destination"]),
    ("Taxi-v4", {"is_rainy": True}, ["taxi_row", "taxi_col", "passenger"]),
    ("FrozenLake-v1", {}, ["col"]),
    ("FrozenLake-v1", {"map_name": "8x8"}, ["row"]),
    ("CliffWalking-v1", {}, ["col"]),
    ("CliffWalkingSlippery-v1", {}, ["col"]),
]
ALL_ENVS = [
    ("Taxi-v4", {}),
    ("FrozenLake-v1", {}),
    ("FrozenLake-v1", {"is_slippery": False}),
    ("CliffWalking-v1", {}),
]


def _pomdp(env, restriction):
    transitions, rewards = tabular_model(env)
    return TabularPOMDP.from_restriction(transitions, rewards, restriction.context_of, DISCOUNT)


@pytest.mark.parametrize(("env_id", "kwargs", "visible"), RESTRICTED)
def test_fib_is_below_qmdp(env_id, kwargs, visible):
    env = gym.make(env_id, **kwargs)
    pomdp = _pomdp(env, restriction_for(env, visible))
    f, q = fib(pomdp), qmdp(pomdp)
    assert f.shape == q.shape == (pomdp.n_states, pomdp.n_actions)
    assert np.all(f <= q + 1e-9)  # FIB is the tighter upper bound
    context_of = pomdp.observations[0].argmax(axis=1)
    a, s, arrival = np.nonzero(pomdp.transitions)
    pairs = np.unique(np.stack([a, s, context_of[arrival]], axis=1), axis=0)
    if len(pairs) == len(a):
        # every observed context identifies the arrival state given (s, a) (deterministic moves, or
        # a hidden part that never changes, as Taxi's destination even in the rain): FIB's max after
        # the observation is then QMDP's max after the state
        np.testing.assert_allclose(f, q, atol=1e-9)
    else:
        assert np.max(q - f) > 1e-3  # hiding something costs somewhere


@pytest.mark.parametrize(("env_id", "kwargs"), ALL_ENVS)
def test_identity_restriction_gives_the_optimal_policy(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    identity = restriction_for(env, None)
    assert isinstance(identity, IdentityRestriction)
    transitions, rewards = tabular_model(env)
    q_star = q_value_iteration(transitions, rewards, DISCOUNT)
    optimal = utilities_to_policy(q_star)
    teacher = pomdp_teacher(env, identity, "induced_optimal", discount=DISCOUNT)
    np.testing.assert_array_equal(teacher.table, optimal)
    # with nothing hidden FIB and QMDP are Q* as well
    pomdp = _pomdp(env, identity)
    np.testing.assert_allclose(fib(pomdp), q_star, atol=1e-8)
    np.testing.assert_allclose(qmdp(pomdp), q_star, atol=1e-8)
    for solver in ("fib", "qmdp"):
        np.testing.assert_array_equal(pomdp_teacher(env, identity, solver, discount=DISCOUNT).table, optimal)


@pytest.mark.parametrize(("env_id", "kwargs", "visible"), RESTRICTED)
@pytest.mark.parametrize("solver", ["fib", "qmdp", "induced_optimal"])
def test_restricted_teachers_cover_every_context(env_id, kwargs, visible, solver):
    env = gym.make(env_id, **kwargs)
    restriction = restriction_for(env, visible)
    teacher = pomdp_teacher(env, restriction, solver, "softmax", temperature=0.5, discount=DISCOUNT)
    assert teacher.table.shape == (restriction.n_contexts, env.action_space.n)
    np.testing.assert_allclose(teacher.table.sum(axis=1), 1.0)
    teacher.check_compatible(restriction, env.action_space)


def test_induced_optimal_taxi_teacher_averages_over_destinations():
    env = gym.make("Taxi-v4")
    restriction = restriction_for(env, ["taxi_row", "taxi_col", "passenger"])
    assert isinstance(restriction, FactoredRestriction)
    full = pomdp_teacher(env, restriction_for(env, None), "induced_optimal", discount=DISCOUNT).table
    teacher = pomdp_teacher(env, restriction, "induced_optimal", discount=DISCOUNT).table
    np.testing.assert_allclose(teacher, full.reshape(125, 4, 6).mean(axis=1))


def _greedy_return(env, table, seed, max_steps):
    obs, _ = env.reset(seed=seed)
    total = 0.0
    for _ in range(max_steps):
        obs, reward, terminated, truncated, _ = env.step(int(np.argmax(table[obs])))
        total += reward
        if terminated or truncated:
            return total, terminated
    return total, False


@pytest.mark.parametrize("solver", ["fib", "qmdp"])
def test_frozen_lake_teacher_reaches_the_goal_on_the_deterministic_map(solver):
    env = gym.make("FrozenLake-v1", is_slippery=False)  # 4x4
    teacher = pomdp_teacher(env, restriction_for(env, ["all"]), solver, discount=DISCOUNT)
    total, terminated = _greedy_return(env, teacher.table, seed=0, max_steps=50)
    assert terminated and total == 1.0


def test_optimal_taxi_teacher_delivers_the_passenger():
    env = gym.make("Taxi-v4")
    teacher = pomdp_teacher(env, restriction_for(env, None), "fib", discount=DISCOUNT)
    for seed in range(5):
        total, terminated = _greedy_return(env, teacher.table, seed, max_steps=40)
        assert terminated and total > 0


def test_optimal_cliff_walking_teacher_reaches_the_goal_along_the_cliff():
    env = gym.make("CliffWalking-v1")
    teacher = pomdp_teacher(env, restriction_for(env, None), "induced_optimal", discount=DISCOUNT)
    total, terminated = _greedy_return(env, teacher.table, seed=0, max_steps=40)
    assert terminated and total == -13  # up, 11 × right, down
