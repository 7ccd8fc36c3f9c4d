"""Sampled induction on a Box restriction (CartPole, cart hidden) with a policy teacher: k = 1 is the
naive loss exactly, knn's draw and weights against a hand computation, the estimator's gradient
against finite differences, one batched forward, marginal draws, and the teacher's view recorded
from raw observations under VecNormalize. Then the draws themselves (knn's standardised distances,
marginal draws, their diagnostics), the sampled induced KL of Box and Dict observations against a
hand computation, and sampled induction in training on the grid with its row hidden."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hand_losses import Recorder, compute, grid_model, logged, no_lr, policy_at
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

import rlimm.envs as E
from rlimm.agents.a2c import A2C
from rlimm.agents.common.policies import DistributionReturningMultiInputPolicy, DistributionReturningPolicy
from rlimm.agents.imm import draws
from rlimm.agents.imm.regularizer import TeacherRegularizer
from rlimm.agents.ppo import PPO
from rlimm.agents.teachers import PolicyTeacher
from rlimm.envs.restrictions import CoordinateRestriction, KeyRestriction
from rlimm.envs.wrappers import VisibleObservation
from rlimm.errors import RlimmError
from rlimm.losses import naive_loss

ENV = "CartPole-v1"


@pytest.fixture(scope="module")
def restriction():
    return CoordinateRestriction(gym.make(ENV).observation_space, [2, 3])  # the pole; the cart hidden


@pytest.fixture(scope="module")
def teacher(restriction):
    torch.manual_seed(0)
    visible_model = PPO("MlpPolicy", VisibleObservation(gym.make(ENV), restriction), n_steps=64, seed=0)
    return PolicyTeacher(visible_model.policy, restriction.visible_space, 2, name="pole-ppo")


def agent(restriction, teacher, **kw):
    settings = {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "teacher_coef": 1.0, "seed": 0, **kw}
    return PPO("MlpPolicy", ENV, regularizer="imm", teacher=teacher, restriction=restriction, **settings)


def batch_of(model, rows):
    buf = model.rollout_buffer
    obs = buf.to_torch(buf.observations[rows])
    return SimpleNamespace(
        observations=obs,
        indices=torch.as_tensor(rows),
        teacher_params=buf.to_torch(buf.view_data["teacher_params"][rows]),
        contexts=None,
    )


def test_teacher_params_are_recorded_at_collection_time(restriction, teacher):
    model = agent(restriction, teacher)
    model.learn(64)
    buf = model.rollout_buffer
    expected = teacher.probs(buf.observations.reshape(-1, 4)[:, [2, 3]])
    np.testing.assert_allclose(buf.view_data["teacher_params"].reshape(-1, 2), expected, rtol=1e-6)


def test_k_one_is_the_naive_loss_exactly(restriction, teacher):
    model = agent(restriction, teacher, induction={"method": "knn", "k": 1})
    model.learn(64)
    rows = np.arange(0, 64, 3)
    batch = batch_of(model, rows)
    dist = model.policy.get_distribution(batch.observations)
    out = model.regularizer_output(batch, dist, model.rollout_buffer.rollout_observations())
    naive = naive_loss(batch.teacher_params, dist.distribution.logits)
    assert out.imm_kl == naive.item()  # bit for bit
    assert out.ess == 1.0


def test_knn_draw_matches_a_hand_computation():
    pool = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [0.5, 0.0]])
    batch = pool[[0, 3]]
    draw = draws.knn(batch, pool, torch.tensor([0, 3]), 3, torch.zeros(2, dtype=torch.bool))
    z = (pool - pool.mean(0)) / pool.std(0)
    d = torch.cdist(z[[0, 3]], z)
    for i, own in enumerate([0, 3]):
        order = [own] + [j for j in torch.argsort(d[i]).tolist() if j != own][:2]
        assert draw.index[i].tolist() == order
        dist = d[i, order]
        dist[0] = 0
        w = torch.exp(-0.5 * (dist / dist[-1]) ** 2)
        torch.testing.assert_close(draw.weights[i], w / w.sum())


def test_discrete_features_must_match():
    pool = torch.tensor([[0.0, 0.0], [0.1, 1.0], [5.0, 0.0]])
    draw = draws.knn(pool[:1], pool, torch.tensor([0]), 3, torch.tensor([False, True]))
    assert draw.index[0, :2].tolist() == [0, 2]
    assert draw.weights[0, 2] == 0  # the close state with another discrete value gets no weight


def test_gradient_of_the_sampled_estimator_matches_finite_differences(restriction, teacher, monkeypatch):
    import stable_baselines3.common.policies as sb3_policies

    model = agent(restriction, teacher, induction={"method": "knn", "k": 4})
    model.learn(64)
    # In double precision (SB3's preprocessing casts observations to float32).
    monkeypatch.setattr(
        sb3_policies, "preprocess_obs", lambda obs, space, normalize_images=True: obs.double()
    )
    model.policy = model.policy.double()
    rows = np.arange(0, 64, 8)
    batch = batch_of(model, rows)
    batch.observations = batch.observations.double()
    batch.teacher_params = batch.teacher_params.double()
    pool = draws.Pool(model.rollout_buffer.rollout_observations().double())  # one draw for every call
    weight = model.policy.action_net.weight

    def loss():
        dist = model.policy.get_distribution(batch.observations)
        return model.regularizer_output(batch, dist, pool).divergence

    (grad,) = torch.autograd.grad(loss(), [weight])
    eps = 1e-6
    with torch.no_grad():
        for idx in [(0, 0), (1, 5), (0, 63)]:
            weight[idx] += eps
            up = loss().item()
            weight[idx] -= 2 * eps
            down = loss().item()
            weight[idx] += eps
            assert grad[idx].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9)


def test_one_batched_forward_over_batch_times_k(restriction, teacher):
    model = agent(restriction, teacher, induction={"method": "knn", "k": 5})
    model.learn(64)
    batch = batch_of(model, np.arange(10))
    dist = model.policy.get_distribution(batch.observations)
    calls = []
    hook = model.policy.action_net.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    model.regularizer_output(batch, dist, model.rollout_buffer.rollout_observations())
    hook.remove()
    # knn's first hidden part is the state's own: its logits are the algorithm's, not recomputed.
    assert calls == [10 * (5 - 1)]


def test_the_rollout_cache_of_synthetic_states_changes_nothing(restriction, teacher, monkeypatch):
    """knn draws and synthetic states are kept for the rollout when small; built per minibatch
    otherwise: the loss and its gradient are the same either way."""
    from rlimm.agents.imm import regularizer as reg

    model = agent(restriction, teacher, induction={"method": "knn", "k": 6})
    model.learn(64)
    batch = batch_of(model, np.arange(3, 40, 2))
    observations = model.rollout_buffer.rollout_observations()

    def loss_and_grad():
        pool = draws.Pool(observations)  # a new pool: its draws are drawn again
        dist = model.policy.get_distribution(batch.observations)
        loss = model.regularizer_output(batch, dist, pool).divergence
        return pool, loss.item(), torch.autograd.grad(loss, [model.policy.action_net.weight])[0]

    pool, *cached = loss_and_grad()
    assert pool.drawn.synthetic is not None
    monkeypatch.setattr(reg, "SYNTHETIC_CACHE_BYTES", 0)
    pool, *uncached = loss_and_grad()
    assert pool.drawn.synthetic is None
    assert cached[0] == pytest.approx(uncached[0], rel=1e-6)
    torch.testing.assert_close(cached[1], uncached[1])


def test_marginal_draws_do_not_move_sb3s_random_stream(restriction, teacher):
    def params(m):
        return torch.cat([p.detach().flatten() for p in m.policy.parameters()])

    a = agent(restriction, teacher, induction={"method": "marginal", "k": 4}, teacher_coef=0.0)
    a.learn(128)
    b = PPO("MlpPolicy", ENV, n_steps=64, batch_size=32, n_epochs=1, seed=0)
    b.learn(128)
    assert torch.equal(params(a), params(b))


def test_training_logs_ess_and_distance(restriction, teacher):
    model = agent(restriction, teacher, induction={"method": "knn", "k": 8})
    model.learn(128)
    values = model.logger.name_to_value
    assert 1.0 <= values["train/induction_ess"] <= 8.0
    assert values["train/neighbour_distance"] > 0


def test_teacher_sees_raw_observations_under_vecnormalize(restriction):
    sharp = torch.nn.Linear(2, 2)
    with torch.no_grad():
        sharp.weight.copy_(torch.tensor([[20.0, 20.0], [-20.0, -20.0]]))
        sharp.bias.zero_()
    teacher = PolicyTeacher(sharp, restriction.visible_space, 2, name="sharp")
    venv = VecNormalize(make_vec_env(ENV, n_envs=2, seed=0), norm_obs=True, norm_reward=False, training=False)
    # Fixed statistics, so that the stored observations can be unnormalised exactly.
    venv.obs_rms.mean = np.array([0.1, -0.2, 0.05, 0.3])
    venv.obs_rms.var = np.array([0.04, 0.25, 0.01, 0.09])
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=32,
        batch_size=64,
        n_epochs=1,
        regularizer="imm",
        teacher=teacher,
        restriction=restriction,
        teacher_coef=1.0,
        seed=0,
    )
    model.learn(64)
    model.learn(64, reset_num_timesteps=False)
    buf = model.rollout_buffer
    stored = buf.view_data["teacher_params"].reshape(-1, 2)
    normalised = buf.observations.reshape(-1, 4)
    raw = venv.unnormalize_obs(normalised)  # the raw observations (nothing is clipped here)
    assert np.abs(normalised).max() < venv.clip_obs
    np.testing.assert_allclose(stored, teacher.probs(raw[:, [2, 3]]), atol=1e-4)
    assert np.abs(stored - teacher.probs(normalised[:, [2, 3]])).max() > 0.1


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"induction": {"method": "exact"}}, "can be enumerated"),
        ({"induction": {"method": "knn", "k": 0}}, "k must be"),
    ],
)
def test_bad_induction_is_refused(restriction, teacher, kw, match):
    with pytest.raises(RlimmError, match=match):
        agent(restriction, teacher, **kw)


def test_identity_restriction_imm_equals_naive():
    from rlimm.envs.restrictions import IdentityRestriction

    space = gym.make(ENV).observation_space
    r = IdentityRestriction(space)
    torch.manual_seed(1)
    expert = PPO("MlpPolicy", ENV, n_steps=64, seed=1)
    t = PolicyTeacher(expert.policy, space, 2, name="full")
    reg = TeacherRegularizer("imm", r)
    obs = torch.randn(6, 4)
    batch = SimpleNamespace(
        observations=obs,
        indices=torch.arange(6),
        contexts=None,
        teacher_params=torch.as_tensor(t.probs(obs.numpy()), dtype=torch.float32),
    )
    learner = PPO("MlpPolicy", ENV, n_steps=64, seed=2).policy
    dist = learner.get_distribution(obs)
    out = reg.compute(
        batch.teacher_params,
        dist.distribution.logits,
        learner.action_params,
        observations=obs,
        indices=batch.indices,
        pool=obs,
    )
    assert out.imm_kl == pytest.approx(out.naive_kl, rel=1e-6)


# --- the draws (found by mutation testing) ------------------------------------------------------------


def test_knn_distances_standardise_each_feature_by_the_pools_spread():
    """Features of very different spreads (one well below 1) count equally after standardisation;
    the draw's distances are those of the standardised features."""
    gen = torch.Generator().manual_seed(0)
    pool = torch.stack([0.05 * torch.randn(30, generator=gen), 3.0 * torch.randn(30, generator=gen)], 1)
    own = torch.tensor([4, 17, 29])
    draw = draws.knn(pool[own], pool, own, 5, torch.zeros(2, dtype=torch.bool))
    z = (pool - pool.mean(0)) / pool.std(0)
    d = torch.cdist(z[own], z)
    for i, row in enumerate(own.tolist()):
        order = [row] + [j for j in torch.argsort(d[i]).tolist() if j != row][:4]
        assert draw.index[i].tolist() == order
        expected = d[i, order].clone()
        expected[0] = 0.0
        torch.testing.assert_close(draw.distances[i], expected)
    assert draw.mean_distance().item() == pytest.approx(draw.distances.mean().item(), rel=1e-6)


def test_knn_with_only_discrete_features_weighs_the_matching_states_equally():
    pool = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 2.0], [0.0, 1.0]])
    own = torch.tensor([0, 3, 1])
    draw = draws.knn(pool[own], pool, own, 3, torch.ones(2, dtype=torch.bool))
    # state 0 matches rows 2 and 4; states 3 and 1 match nothing but themselves
    assert sorted(draw.index[0].tolist()) == [0, 2, 4] and draw.index[0, 0] == 0
    torch.testing.assert_close(draw.weights[0], torch.full((3,), 1 / 3))
    assert draw.index[1, 0] == 3 and draw.index[2, 0] == 1
    torch.testing.assert_close(draw.weights[1:], torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    assert draw.distances[0].tolist() == [0.0, 0.0, 0.0]
    assert torch.isinf(draw.distances[1:, 1:]).all()
    assert draw.effective_sample_size().item() == pytest.approx((3 + 1 + 1) / 3)


def test_mean_distance_without_any_finite_distance_is_zero():
    inf = float("inf")
    index = torch.zeros(2, 2, dtype=torch.long)
    draw = draws.Draw(index, torch.full((2, 2), 0.5), torch.full((2, 2), inf))
    assert draw.mean_distance().item() == 0.0
    weights, distances = torch.tensor([[0.5, 0.25, 0.25]]), torch.tensor([[1.0, inf, 3.0]])
    draw = draws.Draw(torch.zeros(1, 3, dtype=torch.long), weights, distances)
    assert draw.mean_distance().item() == 2.0
    assert draw.effective_sample_size().item() == pytest.approx(1 / (0.25 + 2 * 0.0625))


def test_marginal_draws_uniformly_from_the_whole_pool_with_equal_weights():
    gen = torch.Generator().manual_seed(0)
    pool = torch.randn(40, 2, generator=gen)
    batch = pool[:25] + 0.1  # the batch's visible features need not be the pool's
    continuous = torch.zeros(2, dtype=torch.bool)
    draw = draws.marginal(batch, pool, 16, continuous, torch.Generator().manual_seed(7))
    assert draw.index.shape == (25, 16)
    assert set(draw.index.reshape(-1).tolist()) == set(range(40))  # every row of the pool can be drawn
    expected = torch.randint(40, (25, 16), generator=torch.Generator().manual_seed(7))
    assert torch.equal(draw.index, expected)  # the draws come from the given generator only
    assert torch.equal(draw.weights, torch.full((25, 16), 1 / 16))
    z = (pool - pool.mean(0)) / pool.std(0)
    d = torch.cdist((batch - pool.mean(0)) / pool.std(0), z)
    torch.testing.assert_close(draw.distances, d.gather(1, draw.index))


# --- the sampled induced KL by hand, and in training (found by mutation testing) ----------------------

BOX = spaces.Box(-2.0, 2.0, (4,))
DICT = spaces.Dict({"a": spaces.Box(-2.0, 2.0, (2,)), "b": spaces.Box(-2.0, 2.0, (2,))})


def sampled_setting(space):
    """A policy over ``space`` with 3 actions, a rollout pool of 24 observations, a batch of 6 of its
    rows and teacher probabilities for them."""
    torch.manual_seed(0)
    if isinstance(space, spaces.Dict):
        policy = DistributionReturningMultiInputPolicy(space, spaces.Discrete(3), no_lr)
        restriction = KeyRestriction(space, ["a"])
        pool = {k: torch.randn(24, 2) for k in ("a", "b")}
    else:
        policy = DistributionReturningPolicy(space, spaces.Discrete(3), no_lr)
        restriction = CoordinateRestriction(space, [1, 3])
        pool = torch.randn(24, 4)
    rows = torch.tensor([0, 5, 9, 10, 17, 23])
    obs = {k: v[rows] for k, v in pool.items()} if isinstance(pool, dict) else pool[rows]
    teacher_params = torch.distributions.Dirichlet(torch.ones(3)).sample((6,))
    batch = SimpleNamespace(observations=obs, indices=rows, teacher_params=teacher_params, contexts=None)
    return policy, restriction, pool, batch


def hand_sampled_kl(policy, space, pool, batch, draw):
    """KL(teacher ‖ Σ_j w_ij π(·|x̄_i, h_j)) with h_j the hidden part of pool row index_ij."""
    b, k = draw.index.shape
    if isinstance(space, spaces.Dict):
        synthetic = {
            "a": batch.observations["a"].repeat_interleave(k, 0),
            "b": pool["b"][draw.index.reshape(-1)],
        }
    else:
        synthetic = pool[draw.index.reshape(-1)].clone()
        synthetic[:, [1, 3]] = batch.observations[:, [1, 3]].repeat_interleave(k, 0)
    probs = policy.get_distribution(synthetic).distribution.probs.reshape(b, k, -1)
    induced = (draw.weights[..., None] * probs).sum(1)
    p = batch.teacher_params
    return (p * (p.log() - induced.log())).sum(-1).mean()


@pytest.mark.parametrize("space", [BOX, DICT], ids=["box", "dict"])
@pytest.mark.parametrize("method", ["knn", "marginal"])
def test_sampled_imm_is_the_weighted_induced_kl_by_hand(space, method):
    policy, restriction, pool, batch = sampled_setting(space)
    reg = TeacherRegularizer("imm", restriction, induction={"method": method, "k": 4}, seed=5)
    features = restriction.visible_features(batch.observations)
    pool_features = restriction.visible_features(pool)
    continuous = torch.zeros(features.shape[1], dtype=torch.bool)
    if method == "knn":
        draw = draws.knn(features, pool_features, batch.indices, 4, continuous)
        assert not torch.allclose(draw.weights, torch.full_like(draw.weights, 0.25))  # unequal weights
    else:
        draw = draws.marginal(features, pool_features, 4, continuous, torch.Generator().manual_seed(5))
    distribution = policy.get_distribution(batch.observations)
    log_q = distribution.distribution.logits.log_softmax(-1)  # (SB3 reuses the distribution object)
    out = compute(reg, policy, batch, distribution, pool)
    expected = hand_sampled_kl(policy, space, pool, batch, draw)
    assert out.imm_kl == pytest.approx(expected.item(), rel=1e-5)
    assert out.divergence.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.ess == pytest.approx(draw.effective_sample_size().item(), rel=1e-6)
    assert out.distance == pytest.approx(draw.mean_distance().item(), rel=1e-6)
    naive = (batch.teacher_params * (batch.teacher_params.log() - log_q)).sum(-1)
    assert out.naive_kl == pytest.approx(naive.mean().item(), rel=1e-5)
    # the gradient is that of the hand KL
    params = list(policy.parameters())
    got = torch.autograd.grad(out.divergence, params, allow_unused=True)
    want = torch.autograd.grad(hand_sampled_kl(policy, space, pool, batch, draw), params, allow_unused=True)
    for g, w in zip(got, want, strict=True):
        if w is None:
            assert g is None or not g.any()
        else:
            torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-4)


def test_sampled_induction_without_the_rollout_is_refused():
    policy, restriction, _, batch = sampled_setting(BOX)
    reg = TeacherRegularizer("imm", restriction, induction={"method": "knn", "k": 2})
    message = r"^sampled induction needs the pool of observations and the batch's rows in it$"
    with pytest.raises(RlimmError, match=message):
        compute(reg, policy, batch, policy.get_distribution(batch.observations), None)


def test_training_with_sampled_induction_logs_the_draws_diagnostics(grid_teacher):
    """The grid with the hidden row sampled (knn from the rollout) instead of enumerated: the update
    evaluates the regulariser on the rollout's observations, and logs its values and the draws'."""
    sampled = E.FactoredRestriction.for_env(gym.make(E.GRID_ID), ["x"], max_hidden=5)
    assert not sampled.exact
    # One 24-step rollout of one episode: no exclusion of the own episode's steps, or nothing is left.
    model = grid_model(
        A2C, grid_teacher, sampled, "imm", 0.6, n_steps=24, induction={"k": 3, "exclude": None}
    )
    rec = Recorder(model)
    model.learn(24)
    assert model.teacher_regularizer.method == "knn"
    (params,) = rec.params
    (batch,) = rec.batches
    policy = policy_at(model, params)
    pool = model.induction_pool()  # the rollout's pool, built once (the draws with it)
    out = compute(model.teacher_regularizer, policy, batch, policy.get_distribution(batch.observations), pool)
    assert np.isfinite(out.ess) and out.ess > 1.0
    for key, value in [
        ("train/regularizer_loss", 0.6 * out.divergence.item()),
        ("train/imm_kl", out.imm_kl),
        ("train/naive_kl", out.naive_kl),
        ("train/induction_ess", out.ess),
        ("train/neighbour_distance", out.distance),
        ("train/hidden_left", out.hidden_left),
    ]:
        assert logged(model, key) == pytest.approx(value, rel=1e-5, abs=1e-7), key
    assert out.divergence.item() == pytest.approx(out.imm_kl, rel=1e-6)
    # The hidden part left by hand: the hidden row y of each state among its 3 drawn neighbours.
    y = pool.observations.reshape(-1).long().numpy() // 11  # obs = y·11 + x
    index = model.teacher_regularizer.pool_draws(pool).draws.index.numpy()
    among = np.mean([y[row].var(ddof=1) for row in index])
    assert out.hidden_left == pytest.approx(among / y.var(ddof=1), rel=1e-9)


@pytest.mark.parametrize("induction", ["exact", "knn"])
def test_the_kl_that_is_not_optimised_is_diagnosed_once_per_pass_with_sampled_induction(
    grid_teacher, induction
):
    """``naive`` optimised, the induced KL a diagnostic: with exact induction it is computed on every
    minibatch; with sampled induction (a batch × k forward) on the first minibatch of each pass only,
    and the logged values (imm_kl, ess, distance) are the means over the minibatches that computed it."""
    restriction = E.FactoredRestriction.for_env(
        gym.make(E.GRID_ID), ["x"], max_hidden=5 if induction == "knn" else 64
    )
    model = grid_model(
        PPO,
        grid_teacher,
        restriction,
        "naive",
        0.37,
        n_steps=12,
        batch_size=4,
        n_epochs=2,
        induction={"k": 3},
    )
    assert model.teacher_regularizer.method == induction
    outputs = []
    compute = model.teacher_regularizer.compute

    def spy(*args, **kwargs):
        outputs.append(compute(*args, **kwargs))
        return outputs[-1]

    model.teacher_regularizer.compute = spy
    model.learn(12)
    computed = [not np.isnan(out.imm_kl) for out in outputs]
    if induction == "exact":
        assert computed == [True] * 6
    else:
        assert computed == [True, False, False] * 2  # two passes (epochs) of three minibatches
        assert [not np.isnan(out.ess) for out in outputs] == computed
    done = [out for out in outputs if not np.isnan(out.imm_kl)]
    assert logged(model, "train/imm_kl") == pytest.approx(np.mean([out.imm_kl for out in done]), rel=1e-5)
    assert logged(model, "train/naive_kl") == pytest.approx(
        np.mean([out.naive_kl for out in outputs]), rel=1e-5
    )
    if induction == "knn":
        assert logged(model, "train/induction_ess") == pytest.approx(
            np.mean([out.ess for out in done]), rel=1e-5
        )
    else:
        assert "train/induction_ess" not in model.logger.name_to_value
