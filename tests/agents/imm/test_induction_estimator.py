"""Sampled induction as an estimator of the induced policy: ties broken at random, neighbours from the
state's own episode left out, a pool of several rollouts, the diagnostics, the on-policy belief of exact
induction — and the estimate measured against the truth (rlimm.envs.induction_truth)."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlimm.agents.common.rollout_buffers import TeacherRolloutBuffer
from rlimm.agents.imm.draws import Pool, Trajectories, knn, knn_all
from rlimm.agents.imm.regularizer import TeacherRegularizer
from rlimm.agents.imm.settings import InductionSettings
from rlimm.envs.induction_truth import ContinuousTruth, DiscreteTruth, kl_to_truth
from rlimm.envs.restrictions import FactoredRestriction

from cli_helpers import rlimm

# --- ties ------------------------------------------------------------------------------------------------


def _contexts(n: int = 400, contexts: int = 4) -> torch.Tensor:
    return (torch.arange(n) % contexts).float()[:, None]


def test_without_a_generator_ties_go_to_the_lowest_rows_the_old_bias():
    pool = _contexts()
    draw = knn_all(pool, 5, torch.tensor([True]))
    # The 100 states of context 0 share a handful of neighbours, all among the pool's first rows.
    used = draw.index[pool[:, 0] == 0][:, 1:].unique()
    assert len(used) <= 5 and used.max() <= 16


def test_ties_are_broken_at_random_every_exact_match_equally_likely():
    pool = _contexts()
    generator = torch.Generator().manual_seed(0)
    counts = torch.zeros(len(pool))
    for _ in range(20):
        draw = knn_all(pool, 5, torch.tensor([True]), ties=generator)
        same = pool[draw.index[:, 1:], 0] == pool[:, None, 0].expand(-1, 4)
        assert same.all()  # only exact matches are drawn
        own = draw.index[:, :1] == torch.arange(len(pool))[:, None]
        assert own.all()  # the state's own hidden part first
        counts += torch.bincount(draw.index[:, 1:].reshape(-1), minlength=len(pool))
    # 400 states × 4 neighbours × 20 draws over 400 rows: 80 draws per row expected. Without random
    # tie-breaking, 4 rows per context would take every draw.
    assert counts.min() > 40 and counts.max() < 130
    assert (counts > 0).all()


def test_tie_breaking_only_reorders_exact_ties():
    torch.manual_seed(3)
    pool = torch.randn(300, 2)
    plain = knn_all(pool, 8, torch.tensor([False, False]))
    tied = knn_all(pool, 8, torch.tensor([False, False]), ties=torch.Generator().manual_seed(1))
    assert torch.equal(plain.index, tied.index) and torch.equal(plain.weights, tied.weights)


def test_ties_never_touch_torch_or_numpy_global_generators():
    pool = _contexts()
    torch.manual_seed(11)
    np.random.seed(11)
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    knn_all(pool, 5, torch.tensor([True]), ties=torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)


# --- own-trajectory exclusion ------------------------------------------------------------------------------


def _two_episodes() -> tuple[torch.Tensor, Trajectories]:
    # Rows 0-9: episode 0, steps 0-9; rows 10-19: episode 1. Visible feature = step (smooth trajectory).
    features = torch.cat([torch.arange(10.0), torch.arange(10.0) + 0.1])[:, None]
    trajectories = Trajectories(torch.tensor([0] * 10 + [1] * 10), torch.tensor(list(range(10)) * 2))
    return features, trajectories


def test_exclusion_leaves_out_the_own_episode_within_the_window():
    features, trajectories = _two_episodes()
    own = torch.tensor([5])
    plain = knn(features[5:6], features, own, 4, torch.tensor([False]), trajectories=trajectories)
    # Nearest to step 5 of episode 0: itself, episode 1's steps 5 and 4 (0.1, 0.9 away), its own step 4 or 6.
    assert plain.index[0].tolist()[:3] == [5, 15, 14] and plain.index[0, 3].item() in (4, 6)
    assert plain.same_episode[0].tolist() == [True, False, False, True]
    windowed = knn(
        features[5:6], features, own, 4, torch.tensor([False]), trajectories=trajectories, exclude=2.0
    )
    steps_in_episode_0 = [i for i in windowed.index[0, 1:].tolist() if i < 10]
    assert all(abs(i - 5) > 2 for i in steps_in_episode_0)
    whole = knn(
        features[5:6], features, own, 4, torch.tensor([False]), trajectories=trajectories, exclude=math.inf
    )
    assert whole.index[0, 0] == 5 and (whole.index[0, 1:] >= 10).all()
    assert whole.own_episode_share().item() == 0.0


@pytest.mark.parametrize("exclude", [0.0, 2.0, 3.5, 20.0, -1.0, math.inf])
def test_the_exclusion_mask_is_same_episode_and_within_the_window(exclude):
    """The one-pass mask (episode and step folded into one key) against its definition, on episodes
    with arbitrary ids and steps in any order (one episode's last step next to another's first)."""
    from rlimm.agents.imm.draws import _excluded

    g = torch.Generator().manual_seed(int(exclude) if math.isfinite(exclude) else 7)
    episode = torch.randint(0, 40, (300,), generator=g) * 1009 + 10**9  # ids far apart
    step = torch.randint(0, 30, (300,), generator=g) + 17
    own = torch.randint(0, 300, (50,), generator=g)
    same = episode[None, :] == episode[own][:, None]
    near = (step[None, :] - step[own][:, None]).abs() <= exclude
    assert torch.equal(_excluded(Trajectories(episode, step), own, exclude), same & near)


def test_a_state_with_every_neighbour_excluded_falls_back_to_its_own_hidden_part():
    features = torch.arange(6.0)[:, None]
    trajectories = Trajectories(torch.zeros(6, dtype=torch.long), torch.arange(6))
    draw = knn_all(features, 3, torch.tensor([False]), trajectories=trajectories, exclude=math.inf)
    assert torch.equal(draw.weights[:, 0], torch.ones(6)) and (draw.weights[:, 1:] == 0).all()
    assert draw.fallback_share().item() == 1.0


# --- the estimate against the truth -----------------------------------------------------------------------


def _policy() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[2].weight.mul_(3.0)
    return net


def _probs(net: torch.nn.Module):
    def probs(visible: np.ndarray, hidden: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.as_tensor(np.concatenate([visible, hidden], 1), dtype=torch.float32)
            return torch.softmax(net(x).double(), -1).numpy()

    return probs


def _error(truth, rollout, rows: int, k: int, *, ties=None, exclude=None, discrete=False) -> float:
    probs = _probs(_policy())
    draw = knn_all(
        torch.as_tensor(rollout.visible),
        k,
        torch.tensor([discrete]),
        rows=rows,
        ties=ties,
        trajectories=Trajectories(torch.as_tensor(rollout.episode), torch.as_tensor(rollout.step)),
        exclude=exclude,
    )
    kl = kl_to_truth(
        probs, truth, rollout, np.arange(rows), draw.index.numpy(), draw.weights.double().numpy()
    )
    return float(kl.mean())


def test_the_truth_is_known_in_closed_form():
    truth = ContinuousTruth()
    rollout = truth.sample(64 * 200, seed=0)
    x, h = rollout.visible[:, 0], rollout.hidden[:, 0]
    assert abs(np.mean(h - truth.slope * x)) < 0.1 and abs(np.std(h - truth.slope * x) - truth.noise) < 0.1
    nodes, weights = truth.nodes(np.array([[0.5]]))
    # E[h | x̄ = 0.5] and E[h² | x̄] by quadrature equal the Gaussian's moments.
    assert np.dot(weights, nodes[0, :, 0]) == pytest.approx(0.4)
    assert np.dot(weights, nodes[0, :, 0] ** 2) == pytest.approx(0.4**2 + 1.0)


def test_k_one_is_the_naive_estimate():
    truth = ContinuousTruth()
    rollout = truth.sample(512, seed=1)
    probs = _probs(_policy())
    draw = knn_all(torch.as_tensor(rollout.visible), 1, torch.tensor([False]))
    assert torch.equal(draw.index[:, 0], torch.arange(512)) and (draw.weights == 1).all()
    kl = kl_to_truth(probs, truth, rollout, np.arange(512), draw.index.numpy(), draw.weights.double().numpy())
    # By hand: the estimate is the state's own policy (naive), the truth the quadrature over h | x̄.
    own = probs(rollout.visible, rollout.hidden)
    nodes, weights = truth.nodes(rollout.visible)
    at_nodes = probs(np.repeat(rollout.visible, len(weights), 0), nodes.reshape(-1, 1)).reshape(512, -1, 3)
    exact = np.einsum("n,bna->ba", weights, at_nodes)
    np.testing.assert_allclose(kl, (exact * (np.log(exact) - np.log(own))).sum(1), rtol=1e-9)


def test_the_fixed_knn_is_closer_to_the_truth_than_the_old_one_on_correlated_trajectories():
    truth = ContinuousTruth()
    rollouts = [truth.sample(512 * 4, seed) for seed in range(3)]
    old = np.mean([_error(truth, r, 512, 16) for r in rollouts])  # one rollout, no exclusion
    # Ties at random, the own episode within 20 steps left out, and a pool of 4 rollouts (an option).
    fixed = np.mean(
        [_error(truth, r, 512, 16, ties=torch.Generator().manual_seed(0), exclude=20.0) for r in rollouts]
    )
    old_one_rollout = np.mean([_error(truth, truth.sample(512, s), 512, 16) for s in range(3)])
    assert fixed < 0.5 * old_one_rollout
    assert fixed <= old * 1.001  # exclusion does not hurt on the same pool


def test_more_pool_less_error():
    truth = ContinuousTruth()
    errors = [
        np.mean([_error(truth, truth.sample(512 * m, s), 512, 16) for s in range(3)]) for m in (1, 4, 16)
    ]
    assert errors[0] > errors[1] > errors[2]


def test_random_ties_remove_the_discrete_bias():
    truth = DiscreteTruth(first_episode_hidden=1.0)
    rollout = truth.sample(2048, seed=0)
    old = _error(truth, rollout, 2048, 16, discrete=True)
    fixed = _error(truth, rollout, 2048, 16, discrete=True, ties=torch.Generator().manual_seed(0))
    assert fixed < 0.5 * old


# --- the regulariser: pool, diagnostics, belief -----------------------------------------------------------


def test_the_regulariser_draws_only_for_the_batch_rows_and_reports_the_diagnostics():
    env = gym.make("CartPole-v1")
    from rlimm.envs.restrictions import restriction_for

    restriction = restriction_for(env, ["theta", "theta_dot"])
    regularizer = TeacherRegularizer(
        "imm", restriction, env.action_space, {"method": "knn", "k": 4, "exclude": "episode"}
    )
    torch.manual_seed(0)
    obs = torch.randn(40, 4)
    pool = Pool(obs, rows=10, trajectories=Trajectories(torch.arange(40) // 20, torch.arange(40) % 20))
    draws = regularizer.pool_draws(pool)
    assert draws.draws.index.shape == (10, 4)
    # Rows 0-9 are episode 0 with rows 10-19: no neighbour from rows 0-19.
    assert (draws.draws.index[:, 1:] >= 20).all()
    logits = torch.nn.Linear(4, 2)

    def evaluate(o):
        return logits(o)

    params = torch.log_softmax(logits(obs[:10]), -1)
    out = regularizer.compute(
        torch.full((10, 2), 0.5),
        params,
        evaluate,
        observations=obs[:10],
        indices=torch.arange(10),
        pool=pool,
    )
    assert out.own_episode == 0.0 and out.fallback == 0.0 and out.own_kl > 0
    # k = 1: the induced policy is the state's own.
    one = TeacherRegularizer("imm", restriction, env.action_space, {"method": "knn", "k": 1})
    out = one.compute(
        torch.full((10, 2), 0.5),
        params,
        evaluate,
        observations=obs[:10],
        indices=torch.arange(10),
        pool=pool,
    )
    assert out.own_kl == pytest.approx(0.0, abs=1e-7) and out.fallback == 1.0
    assert out.imm_kl == pytest.approx(out.naive_kl, rel=1e-6)


def test_the_rollout_buffer_numbers_episodes_and_steps_across_rollouts():
    env = gym.make("CartPole-v1")
    buffer = TeacherRolloutBuffer(3, env.observation_space, env.action_space, n_envs=2)
    starts = [np.array([[1, 1], [0, 1], [1, 0]]), np.array([[0, 0], [0, 1], [0, 0]])]
    ids = []
    for episode_starts in starts:
        buffer.reset()
        for t in range(3):
            buffer.add(
                np.zeros((2, 4), np.float32),
                np.zeros((2, 1)),
                np.zeros(2),
                episode_starts[t],
                torch.zeros(2),
                torch.zeros(2),
            )
        buffer.store_teacher_view({"teacher_params": np.zeros((6, 2), np.float32)})
        buffer.compute_returns_and_advantage(torch.zeros(2), np.zeros(2))
        next(buffer.get(6))
        ids.append([t.tolist() for t in buffer.rollout_trajectories()])
    # Env 0: episode 1 (steps 0-1), episode 2 from step 2 on, continuing into the second rollout. Env 1:
    # episodes 1, 2, then 3 from the second rollout's step 1. Ids are count·n_envs + env; (env, step) order.
    assert ids[0] == [[2, 2, 4, 3, 5, 5], [0, 1, 2, 0, 1, 2]]
    assert ids[1] == [[4, 4, 4, 5, 7, 7], [3, 4, 5, 3, 4, 5]]


def test_on_policy_belief_weighs_the_hidden_values_by_the_rollouts_visits():
    from rlimm.envs import GRID_ID

    env = gym.make(GRID_ID)
    restriction = FactoredRestriction.for_env(env, ["x"])
    fixed = TeacherRegularizer("imm", restriction, env.action_space)
    on_policy = TeacherRegularizer("imm", restriction, env.action_space, {"belief": "on_policy"})
    assert torch.equal(fixed.belief, on_policy.belief)  # before any rollout: the fixed belief
    members = torch.as_tensor(restriction.members)
    visits = np.concatenate([np.repeat(members[0, 0].item(), 9), [members[0, 3].item()]])
    on_policy.observe_rollout(visits)
    fixed.observe_rollout(visits)
    b0 = 1 / members.shape[1]
    assert on_policy.belief[0, 0].item() == pytest.approx((9 + b0) / 11)
    assert on_policy.belief[0, 3].item() == pytest.approx((1 + b0) / 11)
    assert on_policy.belief[0, 1].item() == pytest.approx(b0 / 11)
    assert torch.allclose(on_policy.belief[1], fixed.belief[1])  # an unvisited context keeps its belief
    assert torch.allclose(on_policy.belief.sum(1), torch.ones(len(members)))
    assert torch.equal(fixed.belief, torch.as_tensor(restriction.belief, dtype=torch.float32))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"exclude": -1}, "exclude"),
        ({"pool": 0}, "pool"),
        ({"belief": "rollout"}, "belief"),
    ],
)
def test_bad_settings_are_one_line_errors(change, message):
    from rlimm.errors import RlimmError

    with pytest.raises(RlimmError, match=message):
        InductionSettings(**change)


@pytest.mark.parametrize(
    "change",
    [{"exclude": -1}, {"pool": 0}, {"belief": "rollout"}, {"k": 0}, {"method": "kde"}, {"samples": 1.5}],
)
def test_the_config_section_is_the_settings_with_their_checks(change):
    """``induction:`` in a config has exactly the settings' keys and defaults, and refuses a bad value
    with the settings' own message under its dotted key."""
    from dataclasses import fields

    from rlimm.common.config import parse_mapping
    from rlimm.errors import ConfigError, RlimmError
    from rlimm.rl.config import InductionConfig

    assert list(InductionConfig.model_fields) == [f.name for f in fields(InductionSettings)]
    assert InductionConfig().settings() == InductionSettings()
    assert InductionConfig(exclude="none", k=3).settings() == InductionSettings(exclude=None, k=3)
    with pytest.raises(RlimmError) as direct:
        InductionSettings(**change)
    ((key, _),) = change.items()
    with pytest.raises(ConfigError) as config:
        parse_mapping(InductionConfig, change, "x.yaml")
    assert str(config.value) == f"x.yaml: '{key}': {direct.value}"


@pytest.mark.parametrize(
    ("setting", "key"),
    [("induction.exclude=-3", "induction.exclude"), ("induction.pool=0", "induction.pool")],
)
def test_bad_induction_settings_on_the_command_line_exit_2_and_write_nothing(tmp_path, setting, key):
    out = tmp_path / "out"
    res = rlimm("compare", "configs/cartpole_cart_hidden.yaml", "--out", out, "--set", setting)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlimm: error: ") and key in lines[0]
    assert not out.exists()
