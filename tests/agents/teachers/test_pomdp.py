"""Exact MDP/POMDP solvers: validation, value iteration, QMDP ≥ FIB, and the paper's FIB α-vectors."""

import os
from pathlib import Path

import numpy as np
import pytest

import rlimm.envs
from rlimm.agents.teachers import TabularPOMDP, alpha_teacher, fib, q_value_iteration, qmdp
from rlimm.errors import RlimmError

DATA_DIR = Path(os.environ.get("RLIMM_DATA_DIR", Path(__file__).resolve().parents[4] / "shared" / "data"))
ALPHAS_CSV = DATA_DIR / "imm_reference" / "grid_fib_alphas.csv"


def _valid_arrays(n_actions=2, n_states=3, n_obs=2):
    t = np.full((n_actions, n_states, n_states), 1.0 / n_states)
    r = np.zeros((n_states, n_actions))
    o = np.full((n_actions, n_states, n_obs), 1.0 / n_obs)
    return t, r, o


# --------------------------------------------------------------------------- validation


def test_valid_pomdp_is_accepted():
    t, r, o = _valid_arrays()
    pomdp = TabularPOMDP(t, r, o, 0.9)
    assert (pomdp.n_states, pomdp.n_actions) == (3, 2)


@pytest.mark.parametrize(
    "bad",
    [
        "transitions_2d",
        "transitions_not_square",
        "rewards_transposed",
        "rewards_too_few_states",
        "observations_2d",
        "observations_wrong_actions",
        "observations_wrong_states",
    ],
)
def test_bad_shapes_raise(bad):
    t, r, o = _valid_arrays()
    if bad == "transitions_2d":
        t = t[0]
    elif bad == "transitions_not_square":
        t = np.full((2, 3, 4), 0.25)
    elif bad == "rewards_transposed":
        r = r.T
    elif bad == "rewards_too_few_states":
        r = np.zeros((2, 2))
    elif bad == "observations_2d":
        o = o[0]
    elif bad == "observations_wrong_actions":
        o = np.full((3, 3, 2), 0.5)
    elif bad == "observations_wrong_states":
        o = np.full((2, 4, 2), 0.5)
    with pytest.raises(RlimmError, match="must be"):
        TabularPOMDP(t, r, o, 0.9)


def test_transition_rows_summing_to_more_than_one_raise():
    t, r, o = _valid_arrays()
    t[1, 2] = [0.5, 0.4, 0.2]
    with pytest.raises(RlimmError, match="at most one"):
        TabularPOMDP(t, r, o, 0.9)


def test_sub_stochastic_transition_rows_mean_the_episode_ends():
    # Rows summing to less than one are accepted: the missing mass ends the episode (worth nothing).
    t, r, o = _valid_arrays()
    t[1, 2] = [0.5, 0.2, 0.2]
    t[0, 1] = 0.0  # action 0 in state 1 always ends the episode
    TabularPOMDP(t, r, o, 0.9)
    # One state, reward 1, continues with probability 0.5: Q = 1 / (1 - 0.9·0.5).
    q = q_value_iteration(np.full((1, 1, 1), 0.5), np.ones((1, 1)), 0.9)
    np.testing.assert_allclose(q, [[1.0 / (1.0 - 0.45)]], atol=1e-8)
    one = TabularPOMDP(np.full((1, 1, 1), 0.5), np.ones((1, 1)), np.ones((1, 1, 1)), 0.9)
    np.testing.assert_allclose(fib(one), q, atol=1e-8)


def test_negative_probabilities_raise_even_if_rows_sum_to_one():
    t, r, o = _valid_arrays()
    t[0, 0] = [1.5, -0.5, 0.0]
    with pytest.raises(RlimmError, match="non-negative"):
        TabularPOMDP(t, r, o, 0.9)


def test_observation_rows_not_summing_to_one_raise():
    t, r, o = _valid_arrays()
    o[0, 1] = [0.7, 0.7]
    with pytest.raises(RlimmError, match="sum to one"):
        TabularPOMDP(t, r, o, 0.9)


@pytest.mark.parametrize("discount", [1.0, 1.5, -0.1])
def test_discount_outside_unit_interval_raises(discount):
    t, r, o = _valid_arrays()
    with pytest.raises(RlimmError, match="discount"):
        TabularPOMDP(t, r, o, discount)


def test_from_restriction_builds_deterministic_observations():
    t, r, _ = _valid_arrays(n_actions=2, n_states=4)
    context_of = np.array([0, 1, 0, 1])
    pomdp = TabularPOMDP.from_restriction(t, np.zeros((4, 2)), context_of, 0.5)
    assert pomdp.observations.shape == (2, 4, 2)
    for a in range(2):
        np.testing.assert_array_equal(pomdp.observations[a], np.eye(2)[context_of])
    assert pomdp.discount == 0.5


# --------------------------------------------------------------------------- value iteration


def test_q_value_iteration_matches_closed_form_on_two_state_mdp():
    # Action 0 stays, action 1 switches state. Staying in state 1 pays 1, everything else 0.
    t = np.array([np.eye(2), np.array([[0.0, 1.0], [1.0, 0.0]])])
    r = np.array([[0.0, 0.0], [1.0, 0.0]])
    g = 0.9
    # V(1) = 1/(1-g) = 10 (stay forever); V(0) = g·V(1) = 9 (switch, then stay).
    # Q(0,stay) = g·V(0) = 8.1, Q(0,switch) = g·V(1) = 9, Q(1,stay) = 1 + g·V(1) = 10,
    # Q(1,switch) = g·V(0) = 8.1.
    expected = np.array([[8.1, 9.0], [10.0, 8.1]])
    np.testing.assert_allclose(q_value_iteration(t, r, g), expected, atol=1e-8)


def test_q_value_iteration_stochastic_closed_form():
    # One state, one action, reward 2: Q = 2 / (1 - g).
    q = q_value_iteration(np.ones((1, 1, 1)), np.array([[2.0]]), 0.75)
    np.testing.assert_allclose(q, [[8.0]], atol=1e-8)


def test_value_iteration_that_cannot_converge_raises():
    t = np.array([np.eye(2)])
    with pytest.raises(RlimmError, match="did not converge"):
        q_value_iteration(t, np.ones((2, 1)), 0.99, tol=1e-12, max_iter=5)


# --------------------------------------------------------------------------- QMDP vs FIB


def _random_pomdp(seed, n_states=5, n_actions=3, n_obs=2, discount=0.9):
    rng = np.random.default_rng(seed)
    t = rng.random((n_actions, n_states, n_states)) ** 3
    t /= t.sum(-1, keepdims=True)
    r = rng.normal(size=(n_states, n_actions))
    o = rng.random((n_actions, n_states, n_obs)) + 0.2
    o /= o.sum(-1, keepdims=True)
    return TabularPOMDP(t, r, o, discount)


def _fib_by_loops(pomdp, n_iter=400):
    """FIB written out term by term: α_a(s) = R(s,a) + γ Σ_o max_k Σ_s' T(s'|s,a) O(o|s',a) α_k(s')."""
    t, r, o, g = pomdp.transitions, pomdp.rewards, pomdp.observations, pomdp.discount
    n_a, n_s, n_o = o.shape
    alpha = np.zeros((n_s, n_a))
    for _ in range(n_iter):
        new = np.empty_like(alpha)
        for s in range(n_s):
            for a in range(n_a):
                total = 0.0
                for obs in range(n_o):
                    best = -np.inf
                    for k in range(n_a):
                        v = sum(t[a, s, sp] * o[a, sp, obs] * alpha[sp, k] for sp in range(n_s))
                        best = max(best, v)
                    total += best
                new[s, a] = r[s, a] + g * total
        alpha = new
    return alpha


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_qmdp_upper_bounds_fib(seed):
    pomdp = _random_pomdp(seed)
    q, f = qmdp(pomdp), fib(pomdp)
    assert q.shape == f.shape == (pomdp.n_states, pomdp.n_actions)
    assert np.all(q >= f - 1e-9)
    # with noisy observations the bound is strictly tighter somewhere
    assert np.max(q - f) > 1e-3


def _fib_dense(pomdp, tol=1e-10, max_iter=100_000):
    """The former dense FIB: M[a,o,s,s'] = T(s'|s,a) O(o|s',a) built once, one einsum per iteration."""
    m = np.einsum("ast,ato->aost", pomdp.transitions, pomdp.observations)
    alpha = np.zeros_like(pomdp.rewards, dtype=float)
    for _ in range(max_iter):
        future = np.einsum("aost,tk->aosk", m, alpha).max(axis=-1).sum(axis=1)
        new = pomdp.rewards + pomdp.discount * future.T
        if np.max(np.abs(new - alpha)) < tol:
            return new
        alpha = new
    raise AssertionError("dense FIB did not converge")


@pytest.mark.parametrize("seed", [0, 5])
def test_sparse_fib_equals_dense_fib_on_random_pomdps(seed):
    pomdp = _random_pomdp(seed, n_states=6, n_actions=3, n_obs=3)
    np.testing.assert_allclose(fib(pomdp), _fib_dense(pomdp), rtol=0, atol=1e-12)
    # sparse transitions, deterministic observations, some rows ending the episode
    rng = np.random.default_rng(seed)
    t = (rng.random((3, 8, 8)) < 0.3) * rng.random((3, 8, 8))
    t /= np.maximum(t.sum(-1, keepdims=True), 1e-12) / rng.uniform(0.5, 1.0, size=(3, 8, 1))
    sparse = TabularPOMDP.from_restriction(t, rng.normal(size=(8, 3)), np.arange(8) % 3, 0.8)
    np.testing.assert_allclose(fib(sparse), _fib_dense(sparse), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("variance", "tol"), [(0.1, 1e-10), (0.1, 1e-3), (0.3, 1e-3)])
def test_fib_on_the_grid_is_bit_identical_to_the_dense_computation(variance, tol):
    # the trained grid (Σ = 0.1·I) at the default tolerance, and the paper's stopping rule
    env = rlimm.envs.ToroidalGridEnv(reward_variance=variance)
    transitions, rewards = env.tabular_model()
    restriction = rlimm.envs.FactoredRestriction.for_env(env, ["x"])
    pomdp = TabularPOMDP.from_restriction(transitions, rewards, restriction.context_of, 0.9)
    assert np.array_equal(fib(pomdp, tol=tol), _fib_dense(pomdp, tol=tol))


def test_fib_matches_its_definition():
    pomdp = _random_pomdp(7, n_states=3, n_actions=2, n_obs=2, discount=0.8)
    np.testing.assert_allclose(fib(pomdp), _fib_by_loops(pomdp, n_iter=200), atol=1e-8)


def test_fib_equals_qmdp_under_full_observability():
    p = _random_pomdp(3)
    full = TabularPOMDP(p.transitions, p.rewards, np.tile(np.eye(p.n_states), (p.n_actions, 1, 1)), 0.9)
    np.testing.assert_allclose(fib(full), qmdp(full), atol=1e-8)


def test_qmdp_is_value_iteration_of_the_underlying_mdp():
    p = _random_pomdp(4)
    np.testing.assert_array_equal(qmdp(p), q_value_iteration(p.transitions, p.rewards, p.discount))


# --------------------------------------------------------------------------- the paper's α-vectors


@pytest.fixture(scope="module")
def reference_alphas():
    if not ALPHAS_CSV.exists():
        pytest.skip(f"reference alpha-vectors not found at {ALPHAS_CSV} (set RLIMM_DATA_DIR)")
    alphas = np.loadtxt(ALPHAS_CSV, delimiter=",", comments="#")
    assert alphas.shape == (121, 4)
    return alphas


@pytest.fixture(scope="module")
def julia_grid():
    """The authors' Julia POMDP: Σ = 0.3·I, reward at the current state whatever the action."""
    env = rlimm.envs.ToroidalGridEnv(reward_variance=0.3)
    transitions, _ = env.tabular_model()
    rewards = np.repeat(env.reward_grid.reshape(-1, 1), 4, axis=1)
    restriction = rlimm.envs.FactoredRestriction.for_env(env, ["x"])
    pomdp = TabularPOMDP.from_restriction(transitions, rewards, restriction.context_of, 0.9)
    return pomdp, restriction


@pytest.fixture(scope="module")
def converged_fib(julia_grid):
    return fib(julia_grid[0])


def test_fib_reproduces_the_papers_alphas_with_fibjl_stopping_rule(reference_alphas, julia_grid):
    np.testing.assert_allclose(fib(julia_grid[0], tol=1e-3), reference_alphas, rtol=0, atol=1e-9)


def test_converged_fib_is_close_to_the_papers_alphas(reference_alphas, converged_fib):
    diff = np.abs(converged_fib - reference_alphas).max()
    assert 0 < diff < 0.01


def test_reference_argmax_teacher_equals_ours(reference_alphas, converged_fib, julia_grid):
    restriction = julia_grid[1]
    ours = alpha_teacher(converged_fib, restriction, "argmax")
    theirs = alpha_teacher(reference_alphas, restriction, "argmax")
    np.testing.assert_array_equal(ours.table, theirs.table)
    # sanity: the teacher heads for the centre column (RIGHT on the left half, LEFT on the right half)
    assert np.all(theirs.table[:5, 3] == 1.0)
    assert np.all(theirs.table[6:, 2] == 1.0)
