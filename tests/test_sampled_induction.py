"""Sampled induction on a Box restriction (CartPole, cart hidden) with a policy teacher: k = 1 is the
naive loss exactly, knn's draw and weights against a hand computation, the estimator's gradient
against finite differences, one batched forward, marginal draws, and the teacher's view recorded
from raw observations under VecNormalize."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from rlimm.agents import neighbours
from rlimm.agents.ppo import PPO
from rlimm.agents.regularizer import TeacherRegularizer
from rlimm.agents.teachers import PolicyTeacher
from rlimm.envs.restriction import CoordinateRestriction
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
        teacher_probs=buf.to_torch(buf.view_data["teacher_probs"][rows]),
        contexts=None,
    )


def test_teacher_probs_are_recorded_at_collection_time(restriction, teacher):
    model = agent(restriction, teacher)
    model.learn(64)
    buf = model.rollout_buffer
    expected = teacher.probs(buf.observations.reshape(-1, 4)[:, [2, 3]])
    np.testing.assert_allclose(buf.view_data["teacher_probs"].reshape(-1, 2), expected, rtol=1e-6)


def test_k_one_is_the_naive_loss_exactly(restriction, teacher):
    model = agent(restriction, teacher, induction="knn", induction_k=1)
    model.learn(64)
    rows = np.arange(0, 64, 3)
    batch = batch_of(model, rows)
    dist = model.policy.get_distribution(batch.observations)
    out = model.regularizer.compute(
        model.policy, batch, dist, 1.0, model.rollout_buffer.rollout_observations()
    )
    naive = naive_loss(batch.teacher_probs, dist.distribution.logits)
    assert out.imm_kl == naive.item()  # bit for bit
    assert out.ess == 1.0


def test_knn_draw_matches_a_hand_computation():
    pool = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [0.5, 0.0]])
    batch = pool[[0, 3]]
    draw = neighbours.knn(batch, pool, torch.tensor([0, 3]), 3, torch.zeros(2, dtype=torch.bool))
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
    draw = neighbours.knn(pool[:1], pool, torch.tensor([0]), 3, torch.tensor([False, True]))
    assert draw.index[0, :2].tolist() == [0, 2]
    assert draw.weights[0, 2] == 0  # the close state with another discrete value gets no weight


def test_gradient_of_the_sampled_estimator_matches_finite_differences(restriction, teacher, monkeypatch):
    import stable_baselines3.common.policies as sb3_policies

    model = agent(restriction, teacher, induction="knn", induction_k=4)
    model.learn(64)
    # In double precision (SB3's preprocessing casts observations to float32).
    monkeypatch.setattr(
        sb3_policies, "preprocess_obs", lambda obs, space, normalize_images=True: obs.double()
    )
    model.policy = model.policy.double()
    rows = np.arange(0, 64, 8)
    batch = batch_of(model, rows)
    batch.observations = batch.observations.double()
    batch.teacher_probs = batch.teacher_probs.double()
    pool = model.rollout_buffer.rollout_observations().double()
    weight = model.policy.action_net.weight

    def loss():
        dist = model.policy.get_distribution(batch.observations)
        return model.regularizer.compute(model.policy, batch, dist, 1.0, pool).loss

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
    model = agent(restriction, teacher, induction="knn", induction_k=5)
    model.learn(64)
    batch = batch_of(model, np.arange(10))
    dist = model.policy.get_distribution(batch.observations)
    calls = []
    hook = model.policy.action_net.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    model.regularizer.compute(model.policy, batch, dist, 1.0, model.rollout_buffer.rollout_observations())
    hook.remove()
    # knn's first hidden part is the state's own: its logits are the algorithm's, not recomputed.
    assert calls == [10 * (5 - 1)]


def test_the_rollout_cache_of_synthetic_states_changes_nothing(restriction, teacher, monkeypatch):
    """knn draws and synthetic states are kept for the rollout when small; built per minibatch
    otherwise: the loss and its gradient are the same either way."""
    from rlimm.agents import regularizer as reg

    model = agent(restriction, teacher, induction="knn", induction_k=6)
    model.learn(64)
    batch = batch_of(model, np.arange(3, 40, 2))
    pool = model.rollout_buffer.rollout_observations()

    def loss_and_grad():
        model.regularizer._draw_cache = None
        dist = model.policy.get_distribution(batch.observations)
        loss = model.regularizer.compute(model.policy, batch, dist, 1.0, pool).loss
        return loss.item(), torch.autograd.grad(loss, [model.policy.action_net.weight])[0]

    cached = loss_and_grad()
    assert model.regularizer._draw_cache.synthetic is not None
    monkeypatch.setattr(reg, "SYNTHETIC_CACHE_BYTES", 0)
    uncached = loss_and_grad()
    assert model.regularizer._draw_cache.synthetic is None
    assert cached[0] == pytest.approx(uncached[0], rel=1e-6)
    torch.testing.assert_close(cached[1], uncached[1])


def test_marginal_draws_do_not_move_sb3s_random_stream(restriction, teacher):
    def params(m):
        return torch.cat([p.detach().flatten() for p in m.policy.parameters()])

    a = agent(restriction, teacher, induction="marginal", induction_k=4, teacher_coef=0.0)
    a.learn(128)
    b = PPO("MlpPolicy", ENV, n_steps=64, batch_size=32, n_epochs=1, seed=0)
    b.learn(128)
    assert torch.equal(params(a), params(b))


def test_training_logs_ess_and_distance(restriction, teacher):
    model = agent(restriction, teacher, induction="knn", induction_k=8)
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
    stored = buf.view_data["teacher_probs"].reshape(-1, 2)
    normalised = buf.observations.reshape(-1, 4)
    raw = venv.unnormalize_obs(normalised)  # the raw observations (nothing is clipped here)
    assert np.abs(normalised).max() < venv.clip_obs
    np.testing.assert_allclose(stored, teacher.probs(raw[:, [2, 3]]), atol=1e-4)
    assert np.abs(stored - teacher.probs(normalised[:, [2, 3]])).max() > 0.1


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"induction": "exact"}, "can be enumerated"), ({"induction": "knn", "induction_k": 0}, "k must be")],
)
def test_bad_induction_is_refused(restriction, teacher, kw, match):
    with pytest.raises(RlimmError, match=match):
        agent(restriction, teacher, **kw)


def test_identity_restriction_imm_equals_naive():
    from rlimm.envs.restriction import IdentityRestriction

    space = gym.make(ENV).observation_space
    r = IdentityRestriction(space)
    torch.manual_seed(1)
    expert = PPO("MlpPolicy", ENV, n_steps=64, seed=1)
    t = PolicyTeacher(expert.policy, space, 2, name="full")
    reg = TeacherRegularizer("imm", t, r, 1.0)
    obs = torch.randn(6, 4)
    batch = SimpleNamespace(
        observations=obs,
        indices=torch.arange(6),
        contexts=None,
        teacher_probs=torch.as_tensor(t.probs(obs.numpy()), dtype=torch.float32),
    )
    learner = PPO("MlpPolicy", ENV, n_steps=64, seed=2).policy
    dist = learner.get_distribution(obs)
    out = reg.compute(learner, batch, dist, 1.0, obs)
    assert out.imm_kl == pytest.approx(out.naive_kl, rel=1e-6)
