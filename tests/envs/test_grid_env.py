"""The paper's 11×11 toroidal grid: reward bump, wrap-around moves, seeding, tabular model."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from rlimm.envs import ACTION_NAMES, GRID_ID, ToroidalGridEnv
from rlimm.envs.toroidal_grid import DOWN, LEFT, RIGHT, UP


def _walk_to(env, obs, y, x):
    """From observation ``obs``, walk with public steps (DOWN, RIGHT) to cell (y, x)."""
    cy, cx = divmod(obs, env.width)
    for _ in range((y - cy) % env.height):
        obs, *_ = env.step(DOWN)
    for _ in range((x - cx) % env.width):
        obs, *_ = env.step(RIGHT)
    assert obs == y * env.width + x
    return obs


def test_spaces_and_action_names():
    env = ToroidalGridEnv()
    assert env.observation_space == spaces.Discrete(121)
    assert env.action_space == spaces.Discrete(4)
    assert ACTION_NAMES == ("UP", "DOWN", "LEFT", "RIGHT")
    assert (UP, DOWN, LEFT, RIGHT) == (0, 1, 2, 3)
    assert env.observation_factors == {"y": 11, "x": 11}


def test_reward_grid_peaks_at_the_centre():
    grid = ToroidalGridEnv().reward_grid
    assert grid.shape == (11, 11)
    peak = 1.0 / (2.0 * math.pi * 0.1)
    assert peak == pytest.approx(1.5915, abs=1e-4)
    assert grid[5, 5] == pytest.approx(peak, rel=1e-12)
    assert np.unravel_index(np.argmax(grid), grid.shape) == (5, 5)
    # isotropic and symmetric
    np.testing.assert_allclose(grid, grid.T)
    np.testing.assert_allclose(grid, grid[::-1, ::-1])
    # one cell off the centre: coordinate 0.4, density exp(-0.16 / 0.2) · peak
    assert grid[5, 6] == pytest.approx(peak * math.exp(-0.16 / 0.2), rel=1e-12)
    # the corners are essentially zero
    assert grid[0, 0] == pytest.approx(peak * math.exp(-8.0 / 0.2), rel=1e-9)


def test_reward_variance_parameter():
    wide = ToroidalGridEnv(reward_variance=0.3).reward_grid
    assert wide[5, 5] == pytest.approx(1.0 / (2.0 * math.pi * 0.3), rel=1e-12)
    with pytest.raises(ValueError):
        ToroidalGridEnv(reward_variance=0.0)


def test_moves_and_wrap_around():
    env = ToroidalGridEnv()
    obs, _ = env.reset(seed=0)
    h, w = env.height, env.width
    # UP from row 0 wraps to row H-1 (same column)
    obs = _walk_to(env, obs, 0, 4)
    obs, *_ = env.step(UP)
    assert divmod(obs, w) == (h - 1, 4)
    # DOWN from the last row wraps to row 0
    obs, *_ = env.step(DOWN)
    assert divmod(obs, w) == (0, 4)
    # RIGHT from the last column wraps to column 0 (same row)
    obs = _walk_to(env, obs, 7, w - 1)
    obs, *_ = env.step(RIGHT)
    assert divmod(obs, w) == (7, 0)
    # LEFT from column 0 wraps to the last column
    obs, *_ = env.step(LEFT)
    assert divmod(obs, w) == (7, w - 1)
    # interior moves: UP decreases y, DOWN increases y, LEFT/RIGHT change x
    obs = _walk_to(env, obs, 3, 3)
    expected = {UP: (2, 3), DOWN: (4, 3), LEFT: (3, 2), RIGHT: (3, 4)}
    for action, cell in expected.items():
        obs = _walk_to(env, obs, 3, 3)
        obs, reward, terminated, truncated, info = env.step(action)
        assert divmod(obs, w) == cell
        assert reward == env.reward_grid[cell]
        assert terminated is False and truncated is False and info == {}


def test_wrap_around_on_a_non_square_grid():
    env = ToroidalGridEnv(height=3, width=5)
    obs, _ = env.reset(seed=1)
    obs = _walk_to(env, obs, 0, 4)
    obs, *_ = env.step(UP)
    assert divmod(obs, 5) == (2, 4)
    obs, *_ = env.step(RIGHT)
    assert divmod(obs, 5) == (2, 0)


def test_reset_with_seed_is_reproducible():
    a, b = ToroidalGridEnv(), ToroidalGridEnv()
    actions = [0, 3, 3, 1, 2, 2, 0, 1, 3]
    for seed in (0, 1, 123):
        oa, _ = a.reset(seed=seed)
        ob, _ = b.reset(seed=seed)
        assert oa == ob
        for act in actions:
            assert a.step(act) == b.step(act)
    # an unseeded reset continues the seeded stream reproducibly
    a.reset(seed=5)
    b.reset(seed=5)
    assert [a.reset()[0] for _ in range(10)] == [b.reset()[0] for _ in range(10)]


def test_reset_start_is_random_and_covers_the_grid():
    env = ToroidalGridEnv()
    starts = {env.reset(seed=s)[0] for s in range(300)}
    assert len(starts) > 80
    assert all(0 <= s < 121 for s in starts)


def test_gymnasium_env_checker_passes():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(ToroidalGridEnv().unwrapped)
        check_env(gym.make(GRID_ID, render_mode="ansi").unwrapped)
    # The checker only warns about most problems; the sole acceptable notes concern rendering
    # (no spec on a bare env, no render_fps for a text renderer).
    problems = [str(w.message) for w in caught if "render" not in str(w.message)]
    assert problems == []


def test_registered_id_makes_the_grid():
    env = gym.make(GRID_ID)
    assert isinstance(env.unwrapped, ToroidalGridEnv)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def test_ansi_render():
    env = ToroidalGridEnv(height=3, width=4, render_mode="ansi")
    obs, _ = env.reset(seed=0)
    y, x = divmod(obs, 4)
    lines = env.render().splitlines()
    assert len(lines) == 3 and all(len(line.split()) == 4 for line in lines)
    assert lines[y].split()[x] == "A"
    assert sum(line.count("A") for line in lines) == 1
    assert ToroidalGridEnv().render() is None


def test_tabular_model_is_deterministic_one_hot():
    env = ToroidalGridEnv()
    t, r = env.tabular_model()
    assert t.shape == (4, 121, 121) and r.shape == (121, 4)
    assert set(np.unique(t)) == {0.0, 1.0}
    np.testing.assert_array_equal(t.sum(axis=-1), 1.0)
    # every action is a permutation of the states on a torus
    np.testing.assert_array_equal(t.sum(axis=1), 1.0)


def test_tabular_model_matches_stepping_the_env():
    env = ToroidalGridEnv()
    t, r = env.tabular_model()
    obs, _ = env.reset(seed=0)
    for s in range(121):
        for a in range(4):
            obs = _walk_to(env, obs, *divmod(s, 11))
            obs, reward, *_ = env.step(a)
            assert t[a, s, obs] == 1.0, (s, ACTION_NAMES[a])
            assert r[s, a] == reward, (s, ACTION_NAMES[a])
