"""Tests written to kill mutants of the RL side (agents/regularizer.py, agents/neighbours.py and the
train() of agents/reinforce.py, ppo.py, a2c.py) that survived the rest of the suite; see
docs/mutation.md for the run, the results and the mutants left alive because they are equivalent.

The update tests record every optimiser step of a short run (the minibatch the algorithm drew, the
parameters and the gradients just before the step) and compare each gradient with the gradient of the
loss written out by hand at the recorded parameters: the policy-gradient term, the entropy and value
terms with their coefficients, the advantage normalisation, PPO's clipping and λ · KL(teacher ‖
induced policy) computed from the paper's definition. The logged values are checked the same way."""

import math
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch.nn.utils import vector_to_parameters

import rlimm.envs as E
from rlimm.agents import neighbours
from rlimm.agents.a2c import A2C
from rlimm.agents.action_families import family_for
from rlimm.agents.policies import RegularizedActorCriticPolicy, RegularizedMultiInputActorCriticPolicy
from rlimm.agents.ppo import PPO
from rlimm.agents.regularizer import TeacherRegularizer
from rlimm.agents.reinforce import REINFORCE
from rlimm.agents.teachers import pomdp_teacher
from rlimm.envs.restriction import CoordinateRestriction, KeyRestriction, PartitionRestriction
from rlimm.errors import RlimmError

GRID, WIDTH = 121, 11


@pytest.fixture(scope="module")
def restriction():
    return E.FactoredRestriction.for_env(gym.make(E.GRID_ID), ["x"])


@pytest.fixture(scope="module")
def teacher(restriction):
    return pomdp_teacher(gym.make(E.GRID_ID, max_episode_steps=50), restriction, "fib")


def grid():
    return gym.make(E.GRID_ID, max_episode_steps=50)


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


class Recorder:
    """Records the minibatches a model's ``train()`` draws and, at every optimiser step, the
    parameters and gradients just before it."""

    def __init__(self, model):
        self.batches, self.params, self.grads, self.training = [], [], [], []
        buffer, get = model.rollout_buffer, model.rollout_buffer.get
        parameters = list(model.policy.parameters())

        def recording_get(*args, **kwargs):
            for sample in get(*args, **kwargs):
                self.batches.append(sample)
                yield sample

        def before_step(optimizer, args, kwargs):
            self.training.append(model.policy.training)
            self.params.append(flat([p.detach() for p in parameters]).clone())
            self.grads.append(flat([torch.zeros_like(p) if p.grad is None else p.grad for p in parameters]))

        buffer.get = recording_get
        model.policy.optimizer.register_step_pre_hook(before_step)


def policy_at(model, params):
    """The model's policy with the given parameters (the model is only inspected after this)."""
    with torch.no_grad():
        vector_to_parameters(params, model.policy.parameters())
    return model.policy


def hand_kl(policy, teacher, observations, kind):
    """KL(teacher ‖ induced policy) (``imm``, uniform belief over the hidden row) or KL(teacher ‖
    policy) (``naive``), batch mean, from the definitions."""
    probs = policy.get_distribution(torch.arange(float(GRID))).distribution.probs  # (121, 4)
    obs = observations.long().reshape(-1)
    p = torch.as_tensor(teacher.table[obs.numpy() % WIDTH], dtype=torch.float32)
    q = probs.reshape(WIDTH, WIDTH, -1).mean(0)[obs % WIDTH] if kind == "imm" else probs[obs]
    safe_p = torch.where(p > 0, p, torch.ones_like(p))
    return torch.where(p > 0, p * (torch.log(safe_p) - torch.log(q)), torch.zeros_like(p)).sum(-1).mean()


def hand_terms(model, policy, batch, teacher, lam, kind):
    """The algorithm's loss terms on one minibatch, written out by hand."""
    obs = batch.observations
    actions = batch.actions.long().reshape(-1)
    distribution = policy.get_distribution(obs)
    log_prob = distribution.log_prob(actions)
    entropy = distribution.distribution.entropy()
    values = policy.predict_values(obs).reshape(-1)
    adv = batch.advantages
    if model.normalize_advantage and (isinstance(model, A2C) or len(adv) > 1):
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    terms = {"entropy": -entropy.mean(), "value": ((batch.returns - values) ** 2).mean()}
    if isinstance(model, PPO):
        ratio = torch.exp(log_prob - batch.old_log_prob)
        clip = model.clip_range(model._current_progress_remaining)
        # min(r·A, clip(r)·A): the pessimistic bound, written per sign of A
        bounded = torch.where(adv >= 0, torch.clamp(ratio, max=1 + clip), torch.clamp(ratio, min=1 - clip))
        terms["policy"] = -(bounded * adv).mean()
        terms["clip_fraction"] = ((ratio - 1).abs() > clip).float().mean()
        log_ratio = log_prob - batch.old_log_prob
        terms["approx_kl"] = ((log_ratio.exp() - 1) - log_ratio).mean()
        if model.clip_range_vf is not None:
            clip_vf = model.clip_range_vf(model._current_progress_remaining)
            pred = batch.old_values + torch.clamp(values - batch.old_values, -clip_vf, clip_vf)
            terms["value"] = ((batch.returns - pred) ** 2).mean()
    else:
        terms["policy"] = -(log_prob * adv).mean()
    terms["teacher"] = lam * hand_kl(policy, teacher, obs, kind) if lam else torch.zeros(())
    terms["imm_kl"], terms["naive_kl"] = (
        hand_kl(policy, teacher, obs, "imm"),
        hand_kl(policy, teacher, obs, "naive"),
    )
    vf_coef = 0.0 if isinstance(model, REINFORCE) else model.vf_coef
    terms["loss"] = (
        terms["policy"] + model.ent_coef * terms["entropy"] + vf_coef * terms["value"] + terms["teacher"]
    )
    return terms


def check_steps(model, rec, teacher, lam, kind, max_grad_norm=None):
    """Every recorded gradient is ∇(hand loss) at the recorded parameters (clipped to
    ``max_grad_norm`` as torch's clip_grad_norm_ does); returns the hand terms of each step."""
    assert len(rec.grads) == len(rec.batches) > 0
    assert all(rec.training)  # the update runs in training mode (dropout, batch norm)
    all_terms = []
    for params, grads, batch in zip(rec.params, rec.grads, rec.batches, strict=True):
        policy = policy_at(model, params)
        terms = hand_terms(model, policy, batch, teacher, lam, kind)
        expected = flat(
            [
                torch.zeros_like(p) if g is None else g
                for g, p in zip(
                    torch.autograd.grad(terms["loss"], list(policy.parameters()), allow_unused=True),
                    policy.parameters(),
                    strict=True,
                )
            ]
        )
        if max_grad_norm is not None:
            expected = expected * min(1.0, max_grad_norm / (expected.norm().item() + 1e-6))
            assert expected.norm() > 0.99 * max_grad_norm  # the clip acts here
        torch.testing.assert_close(grads, expected, atol=2e-6, rtol=1e-4)
        all_terms.append({k: v.item() for k, v in terms.items()})
    return all_terms


SGD = {"optimizer_class": torch.optim.SGD}


def build(algo, teacher, restriction, kind="imm", lam=0.37, **kw):
    return algo(
        "MlpPolicy",
        grid(),
        regularizer=kind,
        teacher=teacher,
        restriction=restriction,
        teacher_coef=lam,
        seed=3,
        **kw,
    )


def logged(model, key):
    return model.logger.name_to_value[key]


# --------------------------------------------------------------------------- the algorithms' updates


@pytest.mark.parametrize(("kind", "normalize", "clip"), [("imm", False, None), ("naive", True, 0.05)])
def test_reinforce_update_is_the_hand_loss(teacher, restriction, kind, normalize, clip):
    lam = 0.37
    model = build(
        REINFORCE,
        teacher,
        restriction,
        kind,
        lam,
        n_steps=20,
        ent_coef=0.3,
        normalize_advantage=normalize,
        max_grad_norm=clip,
        learning_rate=0.5,
        policy_kwargs=SGD,
    )
    rec = Recorder(model)
    model.learn(40)  # two updates
    (first, second) = check_steps(model, rec, teacher, lam, kind, clip)
    assert logged(model, "train/policy_gradient_loss") == pytest.approx(second["policy"], rel=1e-5)
    assert logged(model, "train/entropy_loss") == pytest.approx(second["entropy"], rel=1e-5)
    assert logged(model, "train/loss") == pytest.approx(second["loss"], rel=1e-5)
    assert logged(model, "train/regularizer_loss") == pytest.approx(second["teacher"], rel=1e-5)
    assert logged(model, "train/imm_kl") == pytest.approx(second["imm_kl"], rel=1e-5)
    assert logged(model, "train/naive_kl") == pytest.approx(second["naive_kl"], rel=1e-5)
    assert logged(model, "train/lambda") == lam
    assert "train/induction_ess" not in model.logger.name_to_value  # exact induction: no draws
    assert model.logger.name_to_excluded["train/n_updates"] == ("tensorboard",)
    assert logged(model, "train/n_updates") == model._n_updates == 2


@pytest.mark.parametrize("n_steps", [1, 2])
def test_reinforce_normalises_the_weights_only_with_more_than_one(teacher, restriction, n_steps):
    # One weight has no spread: it is used as it is (standardising it would give NaN).
    model = build(
        REINFORCE,
        teacher,
        restriction,
        "imm",
        0.0,
        n_steps=n_steps,
        normalize_advantage=True,
        learning_rate=0.5,
        policy_kwargs=SGD,
    )
    rec = Recorder(model)
    model.learn(n_steps)
    check_steps(model, rec, teacher, 0.0, "imm")
    assert np.isfinite(logged(model, "train/loss"))


@pytest.mark.parametrize(("kind", "normalize", "clip"), [("imm", False, 1e9), ("naive", True, 0.05)])
def test_a2c_update_is_the_hand_loss(teacher, restriction, kind, normalize, clip):
    lam = 0.37
    model = build(
        A2C,
        teacher,
        restriction,
        kind,
        lam,
        n_steps=16,
        ent_coef=0.3,
        vf_coef=0.7,
        normalize_advantage=normalize,
        max_grad_norm=clip,
        learning_rate=0.5,
        policy_kwargs=SGD,
    )
    rec = Recorder(model)
    model.learn(32)  # two updates
    (first, second) = check_steps(model, rec, teacher, lam, kind, None if clip > 1 else clip)
    assert logged(model, "train/policy_loss") == pytest.approx(second["policy"], rel=1e-5)
    assert logged(model, "train/value_loss") == pytest.approx(second["value"], rel=1e-5)
    assert logged(model, "train/entropy_loss") == pytest.approx(second["entropy"], rel=1e-5)
    # A2C logs every 100 updates by default: the regulariser's value is the mean over both
    assert logged(model, "train/regularizer_loss") == pytest.approx(
        (first["teacher"] + second["teacher"]) / 2, rel=1e-5
    )
    assert logged(model, "train/n_updates") == model._n_updates == 2
    assert model.logger.name_to_excluded["train/n_updates"] == ("tensorboard",)
    buf = model.rollout_buffer
    ev = 1 - np.var(buf.returns.flatten() - buf.values.flatten()) / np.var(buf.returns.flatten())
    assert logged(model, "train/explained_variance") == pytest.approx(ev, rel=1e-5)


@pytest.mark.parametrize(
    ("kind", "n_steps", "normalize", "clip_vf", "clip", "value_bias"),
    [
        ("imm", 9, True, None, 1e9, 0.0),
        ("naive", 10, True, 0.02, 0.05, 0.0),
        ("imm", 8, False, None, 1e9, 0.0),
        ("imm", 8, True, 0.02, 1e9, 100.0),
    ],
)
def test_ppo_update_is_the_hand_loss(
    teacher, restriction, kind, n_steps, normalize, clip_vf, clip, value_bias
):
    """Two epochs over 8 to 10 transitions in minibatches of 4, 4 and the rest: the ratio moves away
    from one in the later minibatches (the clipping acts); a minibatch of one is not normalised, one
    of two is. The value clip acts upwards from values near zero, downwards from values far above
    the returns (``value_bias``). With exact induction the KL that is not optimised is reported as the
    mean over every minibatch."""
    lam = 0.37
    model = build(
        PPO,
        teacher,
        restriction,
        kind,
        lam,
        n_steps=n_steps,
        batch_size=4,
        n_epochs=2,
        ent_coef=0.3,
        vf_coef=0.7,
        # schedules of progress_remaining (0 at this update): 0.1 and clip_vf
        clip_range=lambda progress: 0.1 + 0.3 * progress,
        clip_range_vf=None if clip_vf is None else (lambda progress: clip_vf * (1 + progress)),
        normalize_advantage=normalize,
        max_grad_norm=clip,
        learning_rate=2.0,
        policy_kwargs=SGD,
    )
    with torch.no_grad():
        model.policy.value_net.bias += value_bias
    rec = Recorder(model)
    model.learn(n_steps)
    terms = check_steps(model, rec, teacher, lam, kind, None if clip > 1 else clip)
    assert len(terms) == (6 if n_steps > 8 else 4)
    assert max(t["clip_fraction"] for t in terms) > 0  # the clipping acts
    for key, name in [
        ("policy", "train/policy_gradient_loss"),
        ("value", "train/value_loss"),
        ("entropy", "train/entropy_loss"),
        ("clip_fraction", "train/clip_fraction"),
        ("teacher", "train/regularizer_loss"),
        ("imm_kl", "train/imm_kl"),
        ("naive_kl", "train/naive_kl"),
    ]:
        assert logged(model, name) == pytest.approx(np.mean([t[key] for t in terms]), rel=1e-5), name
    # approx_kl: the last epoch's minibatches; loss: the last minibatch's
    per_epoch = len(terms) // 2
    assert logged(model, "train/approx_kl") == pytest.approx(
        np.mean([t["approx_kl"] for t in terms[per_epoch:]]), rel=1e-5
    )
    assert logged(model, "train/loss") == pytest.approx(terms[-1]["loss"], rel=1e-5)
    assert logged(model, "train/n_updates") == model._n_updates == 2
    assert model.logger.name_to_excluded["train/n_updates"] == ("tensorboard",)
    assert logged(model, "train/clip_range") == pytest.approx(0.1)
    if clip_vf is None:
        assert "train/clip_range_vf" not in model.logger.name_to_value
    else:
        assert logged(model, "train/clip_range_vf") == pytest.approx(clip_vf)
    buf = model.rollout_buffer
    ev = 1 - np.var(buf.returns.flatten() - buf.values.flatten()) / np.var(buf.returns.flatten())
    assert logged(model, "train/explained_variance") == pytest.approx(ev, rel=1e-5)


def test_ppo_stops_an_update_when_the_kl_passes_one_and_a_half_times_target_kl(teacher, restriction, capsys):
    """Early stopping: the minibatch whose approximate KL first exceeds 1.5 · target_kl is not
    applied, the remaining epochs are skipped, and verbose runs say so."""
    kw = {"n_steps": 16, "batch_size": 4, "n_epochs": 3, "learning_rate": 0.5, "max_grad_norm": 1e9}
    free = build(PPO, teacher, restriction, "imm", 0.0, policy_kwargs=SGD, **kw)
    free_rec = Recorder(free)
    free.learn(16)
    kls = [t["approx_kl"] for t in check_steps(free, free_rec, teacher, 0.0, "imm")]
    assert kls[0] == pytest.approx(0.0, abs=1e-7)  # the first minibatch: the rollout's own policy
    stop = 3  # the last minibatch of the first epoch
    assert max(kls[:stop]) < 0.9 * kls[stop]
    target = 0.99 * kls[stop] / 1.5
    stopped = build(
        PPO, teacher, restriction, "imm", 0.0, policy_kwargs=SGD, target_kl=target, verbose=1, **kw
    )
    rec = Recorder(stopped)
    stopped.learn(16)
    assert len(rec.grads) == stop  # minibatches 0 to 2 applied, then the epochs end
    for i in range(stop):  # the same steps as the run without target_kl
        assert torch.equal(rec.params[i], free_rec.params[i]) and torch.equal(rec.grads[i], free_rec.grads[i])
    assert stopped._n_updates == 1
    assert logged(stopped, "train/approx_kl") == pytest.approx(np.mean(kls[: stop + 1]), rel=1e-4)
    assert f"Early stopping at step 0 due to reaching max kl: {kls[stop]:.2f}\n" in capsys.readouterr().out
    # A KL of exactly 1.5 · target_kl does not stop the update: only one above it does.
    batch = free_rec.batches[stop]
    with torch.no_grad():
        _, log_prob, _ = policy_at(free, free_rec.params[stop]).evaluate_actions(
            batch.observations, batch.actions.long().flatten()
        )
        log_ratio = log_prob - batch.old_log_prob
        kl = float(torch.mean((torch.exp(log_ratio) - 1) - log_ratio).numpy())  # as PPO computes it
    tie = kl / 1.5
    for _ in range(8):  # the float64 whose 1.5-fold is the KL exactly
        if 1.5 * tie == kl:
            break
        tie = math.nextafter(tie, math.inf if 1.5 * tie < kl else -math.inf)
    assert 1.5 * tie == kl
    at_tie = build(PPO, teacher, restriction, "imm", 0.0, policy_kwargs=SGD, target_kl=tie, **kw)
    rec = Recorder(at_tie)
    at_tie.learn(16)
    assert len(rec.grads) > stop


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_without_an_analytic_entropy_the_entropy_term_is_the_mean_log_probability(algo):
    """Squashed gSDE actions have no closed-form entropy: the term is −mean(−log π(a|s)); the
    logged std is the mean of exp(log_std)."""
    kw = {"n_steps": 8, "batch_size": 8, "n_epochs": 1} if algo is PPO else {"n_steps": 8}
    model = algo(
        "MlpPolicy", "Pendulum-v1", use_sde=True, policy_kwargs={"squash_output": True}, seed=0, **kw
    )
    rec = Recorder(model)
    model.learn(8)
    std = torch.exp(model.policy.log_std).mean().item()
    assert logged(model, "train/std") == pytest.approx(std, rel=1e-6)
    (params,) = rec.params
    (batch,) = rec.batches
    policy = policy_at(model, params)
    with torch.no_grad():
        _, log_prob, entropy = policy.evaluate_actions(batch.observations, batch.actions)
    assert entropy is None
    assert logged(model, "train/entropy_loss") == pytest.approx(log_prob.mean().item(), rel=1e-5)


# --------------------------------------------------------------------------- the neighbour draws


def test_knn_distances_standardise_each_feature_by_the_pools_spread():
    """Features of very different spreads (one well below 1) count equally after standardisation;
    the draw's distances are those of the standardised features."""
    gen = torch.Generator().manual_seed(0)
    pool = torch.stack([0.05 * torch.randn(30, generator=gen), 3.0 * torch.randn(30, generator=gen)], 1)
    own = torch.tensor([4, 17, 29])
    draw = neighbours.knn(pool[own], pool, own, 5, torch.zeros(2, dtype=torch.bool))
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
    draw = neighbours.knn(pool[own], pool, own, 3, torch.ones(2, dtype=torch.bool))
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
    draw = neighbours.Draw(index, torch.full((2, 2), 0.5), torch.full((2, 2), inf))
    assert draw.mean_distance().item() == 0.0
    weights, distances = torch.tensor([[0.5, 0.25, 0.25]]), torch.tensor([[1.0, inf, 3.0]])
    draw = neighbours.Draw(torch.zeros(1, 3, dtype=torch.long), weights, distances)
    assert draw.mean_distance().item() == 2.0
    assert draw.effective_sample_size().item() == pytest.approx(1 / (0.25 + 2 * 0.0625))


def test_marginal_draws_uniformly_from_the_whole_pool_with_equal_weights():
    gen = torch.Generator().manual_seed(0)
    pool = torch.randn(40, 2, generator=gen)
    batch = pool[:25] + 0.1  # the batch's visible features need not be the pool's
    continuous = torch.zeros(2, dtype=torch.bool)
    draw = neighbours.marginal(batch, pool, 16, continuous, torch.Generator().manual_seed(7))
    assert draw.index.shape == (25, 16)
    assert set(draw.index.reshape(-1).tolist()) == set(range(40))  # every row of the pool can be drawn
    expected = torch.randint(40, (25, 16), generator=torch.Generator().manual_seed(7))
    assert torch.equal(draw.index, expected)  # the draws come from the given generator only
    assert torch.equal(draw.weights, torch.full((25, 16), 1 / 16))
    z = (pool - pool.mean(0)) / pool.std(0)
    d = torch.cdist((batch - pool.mean(0)) / pool.std(0), z)
    torch.testing.assert_close(draw.distances, d.gather(1, draw.index))


# --------------------------------------------------------------------------- the regulariser


def no_lr(_progress):
    return 0.0


BOX = spaces.Box(-2.0, 2.0, (4,))
DICT = spaces.Dict({"a": spaces.Box(-2.0, 2.0, (2,)), "b": spaces.Box(-2.0, 2.0, (2,))})


def sampled_setting(space):
    """A policy over ``space`` with 3 actions, a rollout pool of 24 observations, a batch of 6 of its
    rows and teacher probabilities for them."""
    torch.manual_seed(0)
    if isinstance(space, spaces.Dict):
        policy = RegularizedMultiInputActorCriticPolicy(space, spaces.Discrete(3), no_lr)
        restriction = KeyRestriction(space, ["a"])
        pool = {k: torch.randn(24, 2) for k in ("a", "b")}
    else:
        policy = RegularizedActorCriticPolicy(space, spaces.Discrete(3), no_lr)
        restriction = CoordinateRestriction(space, [1, 3])
        pool = torch.randn(24, 4)
    rows = torch.tensor([0, 5, 9, 10, 17, 23])
    obs = {k: v[rows] for k, v in pool.items()} if isinstance(pool, dict) else pool[rows]
    teacher_probs = torch.distributions.Dirichlet(torch.ones(3)).sample((6,))
    batch = SimpleNamespace(observations=obs, indices=rows, teacher_probs=teacher_probs, contexts=None)
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
    p = batch.teacher_probs
    return (p * (p.log() - induced.log())).sum(-1).mean()


@pytest.mark.parametrize("space", [BOX, DICT], ids=["box", "dict"])
@pytest.mark.parametrize("method", ["knn", "marginal"])
def test_sampled_imm_is_the_weighted_induced_kl_by_hand(space, method):
    policy, restriction, pool, batch = sampled_setting(space)
    reg = TeacherRegularizer("imm", object(), restriction, 0.7, induction=method, k=4, seed=5)
    features = restriction.visible_features(batch.observations)
    pool_features = restriction.visible_features(pool)
    continuous = torch.zeros(features.shape[1], dtype=torch.bool)
    if method == "knn":
        draw = neighbours.knn(features, pool_features, batch.indices, 4, continuous)
        assert not torch.allclose(draw.weights, torch.full_like(draw.weights, 0.25))  # unequal weights
    else:
        draw = neighbours.marginal(features, pool_features, 4, continuous, torch.Generator().manual_seed(5))
    distribution = policy.get_distribution(batch.observations)
    log_q = distribution.distribution.logits.log_softmax(-1)  # (SB3 reuses the distribution object)
    out = reg.compute(policy, batch, distribution, 1.0, pool)
    expected = hand_sampled_kl(policy, space, pool, batch, draw)
    assert out.imm_kl == pytest.approx(expected.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(0.7 * expected.item(), rel=1e-5)
    assert out.ess == pytest.approx(draw.effective_sample_size().item(), rel=1e-6)
    assert out.distance == pytest.approx(draw.mean_distance().item(), rel=1e-6)
    naive = (batch.teacher_probs * (batch.teacher_probs.log() - log_q)).sum(-1)
    assert out.naive_kl == pytest.approx(naive.mean().item(), rel=1e-5)
    # the gradient is that of λ · the hand KL
    params = list(policy.parameters())
    got = torch.autograd.grad(out.loss, params, allow_unused=True)
    want = torch.autograd.grad(
        0.7 * hand_sampled_kl(policy, space, pool, batch, draw), params, allow_unused=True
    )
    for g, w in zip(got, want, strict=True):
        if w is None:
            assert g is None or not g.any()
        else:
            torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-4)


def test_sampled_induction_without_the_rollout_is_refused():
    policy, restriction, _, batch = sampled_setting(BOX)
    reg = TeacherRegularizer("imm", object(), restriction, 1.0, induction="knn", k=2)
    with pytest.raises(RlimmError, match=r"^sampled induction needs the rollout's observations \(pool\)$"):
        reg.compute(policy, batch, policy.get_distribution(batch.observations), 1.0, None)


def test_an_exact_restriction_without_tables_uses_its_belief():
    """A restriction that enumerates its hidden part itself (no lookup tables): the induced policy
    weighs the hidden values by the belief it returns (here π(y | x) ∝ 1 + y)."""
    weighted = PartitionRestriction(np.arange(GRID) % WIDTH, belief=1.0 + np.arange(GRID) // WIDTH)
    enumerating = SimpleNamespace(
        exact=True, enumerate_hidden=weighted.enumerate_hidden, discrete_features=weighted.discrete_features
    )
    torch.manual_seed(0)
    policy = RegularizedActorCriticPolicy(spaces.Discrete(GRID), spaces.Discrete(4), no_lr)
    obs = torch.tensor([[3.0], [14.0], [60.0], [120.0], [7.0]])
    x = obs.long().reshape(-1) % WIDTH
    teacher_probs = torch.distributions.Dirichlet(torch.ones(4)).sample((11,))[x]
    batch = SimpleNamespace(observations=obs, teacher_probs=teacher_probs, contexts=None, indices=None)
    reg = TeacherRegularizer("imm", object(), enumerating, 0.5, induction="exact")
    out = reg.compute(policy, batch, policy.get_distribution(obs), 1.0)
    probs = policy.get_distribution(torch.arange(float(GRID))).distribution.probs.reshape(WIDTH, WIDTH, 4)
    w = (1.0 + torch.arange(WIDTH, dtype=torch.float32)).reshape(WIDTH, 1, 1)
    induced = ((w * probs).sum(0) / w.sum())[x]  # (y, x, a) → (x, a)
    kl = (teacher_probs * (teacher_probs.log() - induced.log())).sum(-1).mean()
    assert out.imm_kl == pytest.approx(kl.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(0.5 * kl.item(), rel=1e-5)


def grid_batch(restriction, teacher, seed=0):
    torch.manual_seed(seed)
    policy = RegularizedActorCriticPolicy(spaces.Discrete(GRID), spaces.Discrete(4), no_lr)
    obs = torch.tensor([3.0, 14.0, 60.0, 120.0, 7.0, 18.0])
    contexts = torch.as_tensor(restriction.visible(obs.long().numpy()))
    teacher_probs = torch.as_tensor(teacher.probs(contexts.numpy()), dtype=torch.float32)
    batch = SimpleNamespace(observations=obs, teacher_probs=teacher_probs, contexts=contexts, indices=None)
    return policy, batch


@pytest.mark.parametrize("kind", ["imm", "naive"])
def test_both_kls_are_reported_whichever_is_optimised(teacher, restriction, kind):
    policy, batch = grid_batch(restriction, teacher)
    reg = TeacherRegularizer(kind, teacher, restriction, 0.4)
    out = reg.compute(policy, batch, policy.get_distribution(batch.observations), 1.0)
    imm, naive = (
        hand_kl(policy, teacher, batch.observations, "imm"),
        hand_kl(policy, teacher, batch.observations, "naive"),
    )
    assert out.imm_kl == pytest.approx(imm.item(), rel=1e-5)
    assert out.naive_kl == pytest.approx(naive.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(0.4 * (imm if kind == "imm" else naive).item(), rel=1e-5)
    assert out.lam == 0.4 and np.isnan(out.ess) and np.isnan(out.distance)
    # without the diagnostics only the optimised KL is computed
    quiet = reg.compute(policy, batch, policy.get_distribution(batch.observations), 1.0, diagnostics=False)
    assert quiet.loss.item() == out.loss.item()
    assert np.isnan(quiet.imm_kl) == (kind == "naive")


@pytest.mark.parametrize("kind", ["imm", "naive", "none"])
def test_a_term_that_is_not_optimised_builds_no_graph(teacher, restriction, kind):
    """λ = 0, ``none``, or evaluation under ``no_grad``: the loss is a constant (no backward pass
    through the teacher term); with λ > 0 it carries the gradient."""
    policy, batch = grid_batch(restriction, teacher)
    for lam in [0.0, 0.4]:
        reg = TeacherRegularizer(kind, teacher, restriction, lam)
        out = reg.compute(policy, batch, policy.get_distribution(batch.observations), 1.0)
        assert out.loss.requires_grad == (lam > 0 and kind != "none")
        assert (out.loss.item() == 0.0) == (lam == 0 or kind == "none")
        distribution = policy.get_distribution(batch.observations)  # with a graph
        with torch.no_grad():
            quiet = reg.compute(policy, batch, distribution, 1.0)
        assert not quiet.loss.requires_grad and quiet.loss.item() == out.loss.item()


def test_a_regularizer_without_a_teacher_says_how_to_give_one():
    policy, batch = grid_batch(
        E.FactoredRestriction.for_env(gym.make(E.GRID_ID), ["x"]), pomdp_teacher_stub()
    )
    off = TeacherRegularizer("none", None, None, 0.3).compute(policy, batch, None, 1.0)
    assert off.loss.item() == 0.0 and off.loss.shape == () and off.lam == 0.3
    assert np.isnan(off.imm_kl) and np.isnan(off.naive_kl)
    reg = TeacherRegularizer("naive", None, None, 0.3)
    message = r"^regularizer 'naive' has no teacher: pass teacher=\.\.\. to the constructor or to load\(\)$"
    with pytest.raises(RlimmError, match=message):
        reg.compute(policy, batch, policy.get_distribution(batch.observations), 1.0)


def pomdp_teacher_stub():
    return SimpleNamespace(probs=lambda contexts: np.full((len(contexts), 4), 0.25))


def test_training_with_sampled_induction_logs_the_draws_diagnostics(teacher):
    """The grid with the hidden row sampled (knn from the rollout) instead of enumerated: the update
    evaluates the regulariser on the rollout's observations, and logs its values and the draws'."""
    sampled = E.FactoredRestriction.for_env(gym.make(E.GRID_ID), ["x"], max_hidden=5)
    assert not sampled.exact
    model = build(A2C, teacher, sampled, "imm", 0.6, n_steps=24, induction_k=3)
    rec = Recorder(model)
    model.learn(24)
    assert model.regularizer.induction == "knn"
    (params,) = rec.params
    (batch,) = rec.batches
    policy = policy_at(model, params)
    pool = model.rollout_buffer.rollout_observations()
    out = model.regularizer.compute(policy, batch, policy.get_distribution(batch.observations), 1.0, pool)
    assert np.isfinite(out.ess) and out.ess > 1.0
    for key, value in [
        ("train/regularizer_loss", out.loss.item()),
        ("train/imm_kl", out.imm_kl),
        ("train/naive_kl", out.naive_kl),
        ("train/induction_ess", out.ess),
        ("train/neighbour_distance", out.distance),
    ]:
        assert logged(model, key) == pytest.approx(value, rel=1e-5, abs=1e-7), key
    assert out.loss.item() == pytest.approx(0.6 * out.imm_kl, rel=1e-6)


def test_the_buffer_records_the_teachers_view_of_every_environment(teacher, restriction):
    """Two environments: each step records the context and the teacher's probabilities of both."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    model = A2C(
        "MlpPolicy",
        DummyVecEnv([grid, grid]),
        n_steps=5,
        regularizer="imm",
        teacher=teacher,
        restriction=restriction,
        teacher_coef=0.5,
        seed=0,
    )
    model.learn(10)
    buf = model.rollout_buffer  # flattened by the update: (n_steps · n_envs, …)
    contexts = restriction.visible(buf.observations.reshape(-1).astype(int))
    assert len(set(contexts.tolist())) > 1
    np.testing.assert_array_equal(buf.view_data["contexts"].reshape(-1), contexts)
    np.testing.assert_array_equal(
        buf.view_data["teacher_probs"].reshape(-1, 4), teacher.table[contexts].astype(np.float32)
    )


def test_bad_induction_settings_and_continuous_actions_are_refused_by_name():
    with pytest.raises(RlimmError, match=r"^unknown induction method 'kde'; accepted: exact, knn, marginal$"):
        neighbours.check_induction("kde", 4)
    for k in [True, 2.0, 0, -1]:
        with pytest.raises(RlimmError, match=rf"^induction k must be a whole number >= 1, got {k!r}$"):
            neighbours.check_induction("knn", k)
    neighbours.check_induction("marginal", 1)
    from stable_baselines3.common.distributions import DiagGaussianDistribution

    dist = DiagGaussianDistribution(1).proba_distribution(torch.zeros(2, 1), torch.zeros(1))
    message = r"^a Discrete action space needs a categorical policy, got DiagGaussianDistribution$"
    with pytest.raises(RlimmError, match=message):
        family_for(gym.spaces.Discrete(3)).of_distribution(dist)
    message = (
        r"^the teacher regulariser supports Discrete, 1-D MultiDiscrete and 1-D Box action spaces, got "
        r"MultiDiscrete\(\[\[2 3\]\]\) \(use regularizer 'none'\)$"
    )
    with pytest.raises(RlimmError, match=message):
        family_for(gym.spaces.MultiDiscrete([[2, 3]]))


def test_ppo_counts_as_clipped_only_ratios_strictly_beyond_the_clip_range(teacher, restriction):
    """The first minibatch is scored by the policy that collected it: every ratio is exactly one, and
    none counts as clipped, even with a clip range of zero."""
    model = build(
        PPO, teacher, restriction, "imm", 0.0, n_steps=16, batch_size=16, n_epochs=1, clip_range=0.0
    )
    model.learn(16)
    assert logged(model, "train/clip_fraction") == 0.0


@pytest.mark.parametrize("induction", ["exact", "knn"])
def test_the_kl_that_is_not_optimised_is_diagnosed_once_per_pass_with_sampled_induction(teacher, induction):
    """``naive`` optimised, the induced KL a diagnostic: with exact induction it is computed on every
    minibatch; with sampled induction (a batch × k forward) on the first minibatch of each pass only,
    and the logged values (imm_kl, ess, distance) are the means over the minibatches that computed it."""
    restriction = E.FactoredRestriction.for_env(
        gym.make(E.GRID_ID), ["x"], max_hidden=5 if induction == "knn" else 64
    )
    model = build(
        PPO, teacher, restriction, "naive", 0.37, n_steps=12, batch_size=4, n_epochs=2, induction_k=3
    )
    assert model.regularizer.induction == induction
    outputs = []
    compute = model.regularizer.compute

    def spy(*args, **kwargs):
        outputs.append(compute(*args, **kwargs))
        return outputs[-1]

    model.regularizer.compute = spy
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
