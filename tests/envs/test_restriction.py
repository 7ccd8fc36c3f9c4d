"""Restrictions: contexts, members and beliefs of a partial view; the VisibleObservation wrapper."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import rlimm.envs
from rlimm.envs import GRID_ID, VisibleObservation
from rlimm.envs.restrictions import FactoredRestriction, PartitionRestriction
from rlimm.errors import RlimmError

FACTORS = {"y": 3, "x": 4}  # obs = y·4 + x, 12 observations


def test_visible_x_contexts_members_and_belief():
    r = FactoredRestriction(FACTORS, ["x"])
    assert (r.n_observations, r.n_contexts, r.n_hidden) == (12, 4, 3)
    np.testing.assert_array_equal(r.context_of, np.arange(12) % 4)
    for c in range(4):
        assert sorted(r.members[c].tolist()) == [obs for obs in range(12) if obs % 4 == c]
        assert all(r.context_of[m] == c for m in r.members[c])
    np.testing.assert_allclose(r.belief, np.full((4, 3), 1.0 / 3.0))
    np.testing.assert_array_equal(r.visible(np.array([0, 5, 11, 6])), [0, 1, 3, 2])
    assert r.visible(7) == 3


def test_visible_y_contexts_members_and_belief():
    r = FactoredRestriction(FACTORS, ["y"])
    assert (r.n_contexts, r.n_hidden) == (3, 4)
    np.testing.assert_array_equal(r.context_of, np.arange(12) // 4)
    for c in range(3):
        assert sorted(r.members[c].tolist()) == [4 * c, 4 * c + 1, 4 * c + 2, 4 * c + 3]
    np.testing.assert_allclose(r.belief, np.full((3, 4), 0.25))


def test_three_factors_with_two_visible():
    # obs = z·12 + y·4 + x; visible (z, x) in that order -> context = z·4 + x
    r = FactoredRestriction({"z": 2, "y": 3, "x": 4}, ["z", "x"])
    obs = np.arange(24)
    z, x = obs // 12, obs % 4
    np.testing.assert_array_equal(r.context_of, z * 4 + x)
    assert (r.n_contexts, r.n_hidden) == (8, 3)


def test_state_belief_of_factored_restriction():
    r = FactoredRestriction(FACTORS, ["x"])
    b = r.state_belief()
    assert b.shape == (4, 12)
    expected = np.zeros((4, 12))
    for obs in range(12):
        expected[obs % 4, obs] = 1.0 / 3.0
    np.testing.assert_allclose(b, expected)


def test_missing_field_raises_naming_it_and_listing_fields():
    with pytest.raises(RlimmError) as info:
        FactoredRestriction(FACTORS, ["z"])
    msg = str(info.value)
    assert "'z'" in msg
    assert "y" in msg and "x" in msg and "fields" in msg


def test_missing_field_among_known_fields_raises():
    with pytest.raises(RlimmError, match="'z'"):
        FactoredRestriction(FACTORS, ["x", "z"])


@pytest.mark.parametrize("visible", [["y", "x"], ["x", "y"]])
def test_all_visible_raises(visible):
    with pytest.raises(RlimmError, match="hidden"):
        FactoredRestriction(FACTORS, visible)


def test_nothing_visible_or_duplicates_raise():
    with pytest.raises(RlimmError):
        FactoredRestriction(FACTORS, [])
    with pytest.raises(RlimmError, match="distinct"):
        FactoredRestriction({"z": 2, "y": 3, "x": 4}, ["x", "x"])


def test_partition_with_unequal_groups_pads_with_zero_belief():
    context_of = np.array([0, 1, 0, 1, 0, 2])  # sizes 3, 2, 1
    r = PartitionRestriction(context_of)
    assert (r.n_observations, r.n_contexts, r.n_hidden) == (6, 3, 3)
    for c, real in enumerate([[0, 2, 4], [1, 3], [5]]):
        n = len(real)
        assert r.members[c, :n].tolist() == real
        np.testing.assert_allclose(r.belief[c, :n], 1.0 / n)
        np.testing.assert_array_equal(r.belief[c, n:], 0.0)
        # padding points at a real member of the same context (safe to index with)
        assert all(context_of[m] == c for m in r.members[c])
    b = r.state_belief()
    np.testing.assert_allclose(b.sum(axis=1), 1.0)
    expected = np.zeros((3, 6))
    expected[0, [0, 2, 4]] = 1.0 / 3.0
    expected[1, [1, 3]] = 0.5
    expected[2, 5] = 1.0
    np.testing.assert_allclose(b, expected)


def test_partition_with_weights_normalises_within_contexts():
    r = PartitionRestriction(np.array([0, 0, 1, 1, 1]), belief=np.array([1.0, 3.0, 2.0, 0.0, 2.0]))
    np.testing.assert_allclose(r.belief, [[0.25, 0.75, 0.0], [0.5, 0.0, 0.5]])
    b = r.state_belief()
    np.testing.assert_allclose(b.sum(axis=1), 1.0)
    np.testing.assert_allclose(b, [[0.25, 0.75, 0, 0, 0], [0, 0, 0.5, 0.0, 0.5]])


@pytest.mark.parametrize(
    ("context_of", "belief"),
    [
        (np.array([0, 2, 2]), None),  # context 1 never occurs
        (np.array([0.0, 1.0]), None),  # not integers
        (np.array([[0, 1]]), None),  # not 1-D
        (np.array([0, 1]), np.array([1.0, -1.0])),  # negative weight
        (np.array([0, 1]), np.array([1.0, 1.0, 1.0])),  # wrong length
        (np.array([0, 0, 1]), np.array([1.0, 1.0, 0.0])),  # context 1 has zero total weight
    ],
)
def test_partition_validation(context_of, belief):
    with pytest.raises(RlimmError):
        PartitionRestriction(context_of, belief)


def test_negative_context_raises_rlimm_error():
    with pytest.raises(RlimmError, match="contexts must be"):
        PartitionRestriction(np.array([-1, 0, 1]))


def test_check_space():
    r = FactoredRestriction(FACTORS, ["x"])
    r.check_space(spaces.Discrete(12))  # fits: no error
    with pytest.raises(RlimmError, match="Discrete"):
        r.check_space(spaces.Box(low=0.0, high=1.0, shape=(12,)))
    with pytest.raises(RlimmError, match="12"):
        r.check_space(spaces.Discrete(13))
    with pytest.raises(RlimmError):
        r.check_space(spaces.MultiDiscrete([3, 4]))


def test_for_env_uses_declared_factors():
    env = rlimm.envs.ToroidalGridEnv(height=3, width=4)
    r = FactoredRestriction.for_env(env, ["x"])
    np.testing.assert_array_equal(r.context_of, np.arange(12) % 4)
    with pytest.raises(RlimmError, match="'z'"):
        FactoredRestriction.for_env(env, ["z"])


def test_for_env_without_factors_raises():
    env = gym.make("CartPole-v1")
    with pytest.raises(RlimmError, match="observation_factors"):
        FactoredRestriction.for_env(env, ["x"])


def test_visible_observation_wrapper_on_the_grid():
    env = gym.make(GRID_ID)
    twin = gym.make(GRID_ID)  # the same trajectory, seen in full
    r = FactoredRestriction.for_env(env, ["x"])
    wrapped = VisibleObservation(env, r)
    assert wrapped.observation_space == spaces.Discrete(11)
    assert twin.observation_space == spaces.Discrete(121)
    seen = set()
    for seed in range(5):
        obs, _ = wrapped.reset(seed=seed)
        full, _ = twin.reset(seed=seed)
        assert obs == full % 11
        for action in [0, 3, 3, 1, 2, 0, 3, 3, 3]:
            obs, reward, _, _, _ = wrapped.step(action)
            full, full_reward, _, _, _ = twin.step(action)
            assert wrapped.observation_space.contains(obs)
            assert obs == full % 11
            assert reward == full_reward
            seen.add(full // 11)
    assert len(seen) > 1  # the hidden row did vary


def test_visible_observation_refuses_mismatched_restriction():
    env = gym.make(GRID_ID)
    with pytest.raises(RlimmError):
        VisibleObservation(env, FactoredRestriction(FACTORS, ["x"]))


def _tables_by_loop(context_of, weights):
    """The partition tables built context by context (the former construction)."""
    n_contexts = int(context_of.max()) + 1
    n_hidden = int(np.bincount(context_of).max())
    members = np.zeros((n_contexts, n_hidden), dtype=np.int64)
    belief = np.zeros((n_contexts, n_hidden))
    for c in range(n_contexts):
        obs = np.flatnonzero(context_of == c)
        members[c, :] = obs[0]
        members[c, : len(obs)] = obs
        belief[c, : len(obs)] = weights[obs]
    return members, belief / belief.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(4))
def test_partition_tables_equal_the_context_by_context_construction(seed):
    rng = np.random.default_rng(seed)
    context_of = rng.permutation(np.concatenate([np.arange(7), rng.integers(0, 7, size=30)]))
    weights = rng.random(len(context_of)) + 0.1
    r = PartitionRestriction(context_of, belief=weights)
    members, belief = _tables_by_loop(context_of, weights)
    np.testing.assert_array_equal(r.members, members)
    np.testing.assert_allclose(r.belief, belief, rtol=1e-15)


def test_for_env_uses_known_or_given_factors():
    taxi = gym.make("Taxi-v4")
    r = FactoredRestriction.for_env(taxi, ["destination"])
    np.testing.assert_array_equal(r.context_of, np.arange(500) % 4)
    given = FactoredRestriction.for_env(taxi, ["b"], factors={"a": 125, "b": 4})
    np.testing.assert_array_equal(given.context_of, r.context_of)
    with pytest.raises(RlimmError, match="12"):
        FactoredRestriction.for_env(gym.make(GRID_ID), ["x"], factors=FACTORS)


def test_factored_restriction_is_a_restriction_with_a_visible_space():
    r = FactoredRestriction(FACTORS, ["x"])
    assert isinstance(r, rlimm.envs.Restriction) and r.exact
    assert r.observation_space == spaces.Discrete(12) and r.visible_space == spaces.Discrete(4)
    assert r.visible_names == ("x",) and r.hidden_fields == ["y"]
    assert r.describe() == "visible x, hidden y (uniform belief)"
