"""The end-of-run measures (:mod:`rlimm.rl.hidden_part`): the learner's induced policy and itself
against the teacher, and the share of the hidden part left once the visible part is known — checked
against hand computations, with the consistency property (a policy blind to the hidden part is its own
induced policy) and on a real comparison (``measures.csv``)."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from rlimm.envs.restrictions import PartitionRestriction, restriction_for
from rlimm.rl.comparison import MEASURES_FILE, read_measures, read_results, run_matrix
from rlimm.rl.config import load_compare_config
from rlimm.rl.hidden_part import MEASURES, Visited, hidden_left, measure, partition_hidden_left, visit

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "cartpole_cart_hidden.yaml"


def _kl(p, q):
    return float((p * np.log(p / q)).sum())


class TableModel:
    """What :func:`measure` reads of a model: a categorical policy given by a logits table per state."""

    device = th.device("cpu")

    def __init__(self, logits):
        self.logits = th.as_tensor(logits, dtype=th.float32)
        self.action_space = spaces.Discrete(self.logits.shape[1])

    def get_vec_normalize_env(self):
        return None

    def action_params(self, obs):
        return self.logits[obs.reshape(-1).long()]


class LinearModel:
    """A categorical policy on Box observations: logits = obs @ W."""

    device = th.device("cpu")
    action_space = spaces.Discrete(2)

    def __init__(self, weights):
        self.weights = th.as_tensor(weights, dtype=th.float32)

    def get_vec_normalize_env(self):
        return None

    def action_params(self, obs):
        return obs @ self.weights


class ProbsTeacher:
    def __init__(self, fn):
        self.fn = fn

    def params(self, visible):
        return self.fn(np.asarray(visible))


def test_partition_measures_by_hand():
    context_of = np.array([0, 0, 1, 1, 1, 2])
    restriction = PartitionRestriction(context_of)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 3))
    table = rng.dirichlet(np.ones(3), size=3)
    states = np.array([0, 1, 1, 2, 3, 5, 4, 0, 2, 2])
    visited = Visited(states, np.zeros(len(states), np.int64), np.arange(len(states)))
    teacher = ProbsTeacher(lambda contexts: table[contexts.reshape(-1)])
    out = measure(TableModel(logits), teacher, restriction, None, visited)

    pi = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    induced = np.stack([pi[context_of == c].mean(axis=0) for c in range(3)])  # uniform belief
    contexts = context_of[states]
    assert out["induced_kl"] == pytest.approx(
        np.mean([_kl(table[c], induced[c]) for c in contexts]), rel=1e-5
    )
    assert out["pointwise_kl"] == pytest.approx(
        np.mean([_kl(table[c], pi[s]) for s, c in zip(states, contexts, strict=True)]), rel=1e-5
    )
    # H(hidden | context) / H(hidden): a state's hidden value is its place in its context.
    place = np.array([0, 1, 0, 1, 2, 0])[states]
    joint = np.zeros((3, 3))
    np.add.at(joint, (contexts, place), 1.0)
    joint /= joint.sum()

    def h(p):
        p = p[p > 0]
        return -(p * np.log(p)).sum()

    expected = (h(joint.ravel()) - h(joint.sum(axis=1))) / h(joint.sum(axis=0))
    assert out["hidden_left"] == pytest.approx(expected, rel=1e-12)
    assert out["states"] == len(states)


def test_partition_hidden_left_is_zero_when_the_context_tells_the_hidden_value():
    restriction = PartitionRestriction(np.array([0, 0, 1, 1]))
    # context 0 only ever visited at its first member, context 1 only at its second
    assert partition_hidden_left(restriction, np.array([0, 0, 3, 3, 0])) == pytest.approx(0.0, abs=1e-12)
    assert partition_hidden_left(restriction, np.array([0, 1, 2, 3])) == pytest.approx(1.0)


def _cartpole_states(n, hidden_of_visible, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 4)).astype(np.float32)
    obs[:, 1] = hidden_of_visible(obs[:, 0], rng)  # x_dot from x
    obs[:, 3] = hidden_of_visible(obs[:, 2], rng)  # theta_dot from theta
    return obs


def test_hidden_left_by_hand():
    restriction = restriction_for(gym.make("CartPole-v1"), ["x", "theta"])
    obs = th.as_tensor(_cartpole_states(6, lambda v, rng: rng.normal(size=v.shape)))
    neighbours = th.tensor([[0, 1, 2], [1, 0, 3], [2, 3, 4], [3, 2, 5], [4, 5, 0], [5, 4, 1]])
    hidden = obs[:, [1, 3]].double().numpy()
    among = np.stack([hidden[row].var(axis=0, ddof=1) for row in neighbours.numpy()]).mean(axis=0)
    expected = (among / hidden.var(axis=0, ddof=1)).mean()
    assert hidden_left(restriction, obs, neighbours) == pytest.approx(expected, rel=1e-12)


def test_hidden_left_is_small_when_the_visible_part_tells_it_and_near_one_when_it_does_not():
    restriction = restriction_for(gym.make("CartPole-v1"), ["x", "theta"])
    settings = {"method": "knn", "k": 16, "exclude": None}
    model = LinearModel(np.zeros((4, 2)))
    teacher = ProbsTeacher(lambda v: np.full((len(v), 2), 0.5))
    told = _cartpole_states(1000, lambda v, rng: 2 * v + 0.01 * rng.normal(size=v.shape))
    free = _cartpole_states(1000, lambda v, rng: rng.normal(size=v.shape))
    ids = np.arange(1000)
    left_told = measure(model, teacher, restriction, settings, Visited(told, ids, ids * 0))["hidden_left"]
    left_free = measure(model, teacher, restriction, settings, Visited(free, ids, ids * 0))["hidden_left"]
    assert left_told < 0.05  # the neighbours spread a little in x̄ itself
    assert 0.85 < left_free < 1.15


@pytest.mark.parametrize("k", [1, 16])
def test_a_policy_blind_to_the_hidden_part_is_its_own_induced_policy(k):
    # IMM's consistency in its simplest form: when π(·|x) depends on x̄ only, Q̄ = π, so the induced
    # KL equals the pointwise one (k = 1: the state's own hidden part, the naive term exactly).
    restriction = restriction_for(gym.make("CartPole-v1"), ["x", "theta"])
    weights = np.array([[1.0, -1.0], [0.0, 0.0], [-2.0, 0.5], [0.0, 0.0]])  # x, theta only
    obs = _cartpole_states(400, lambda v, rng: rng.normal(size=v.shape))
    teacher = ProbsTeacher(lambda v: np.tile([0.3, 0.7], (len(v), 1)))
    ids = np.arange(400)
    out = measure(
        LinearModel(weights),
        teacher,
        restriction,
        {"method": "knn", "k": k, "exclude": None},
        Visited(obs, ids, ids * 0),
    )
    assert out["induced_kl"] == pytest.approx(out["pointwise_kl"], rel=1e-5)
    # …while a policy that reads the hidden part is not its own induced policy
    reading = measure(
        LinearModel(weights + np.array([[0, 0], [3.0, -3.0], [0, 0], [0, 0]])),
        teacher,
        restriction,
        {"method": "knn", "k": 16, "exclude": None},
        Visited(obs, ids, ids * 0),
    )
    assert reading["induced_kl"] < reading["pointwise_kl"] - 0.1


def test_visiting_is_seeded_and_leaves_the_global_random_state_alone():
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=64, seed=0)
    th.manual_seed(123)
    before = th.get_rng_state()
    a = visit(model, gym.make("CartPole-v1"), 100, seed=5)
    assert th.equal(th.get_rng_state(), before)
    b = visit(model, gym.make("CartPole-v1"), 100, seed=5)
    np.testing.assert_array_equal(a.raw, b.raw)
    np.testing.assert_array_equal(a.episode, b.episode)
    assert a.step[0] == 0 and (np.diff(a.step)[np.diff(a.episode) == 0] == 1).all()


def test_a_comparison_writes_one_measure_row_per_run_none_included(tmp_path):
    config = load_compare_config(
        CONFIG,
        {
            "budgets": [256],
            "seeds": 1,
            "methods": ["none", "naive", "imm"],
            "lambda_ratio": 0.5,
            "teacher": {"timesteps": 256},
            "algo": {"kwargs": {"n_steps": 128, "batch_size": 64, "n_epochs": 1}},
            "evaluation": {"episodes": 2},
        },
    )
    run_matrix(config, tmp_path, jobs=1, progress=False)
    assert (tmp_path / MEASURES_FILE).read_text().splitlines()[0].endswith(",".join(MEASURES))
    measured = read_measures(tmp_path)
    results, _ = read_results(tmp_path / "results.csv")
    assert len(measured) == len(results) == 3
    for m in measured.values():
        assert m["induced_kl"] >= 0 and m["pointwise_kl"] >= 0 and 0 <= m["hidden_left"] <= 2
        assert m["states"] == 2048
