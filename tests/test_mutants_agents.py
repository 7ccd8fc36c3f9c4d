"""Tests written to kill mutants of the RL side (agents/regularizer.py, agents/neighbours.py and the
train() of agents/reinforce.py, ppo.py, a2c.py) that survived the rest of the suite; see
docs/mutation.md for the run, the results and the mutants left alive because they are equivalent.

The update tests record every optimiser step of a short run (the minibatch the algorithm drew, the
parameters and the gradients just before the step) and compare each gradient with the gradient of the
loss written out by hand at the recorded parameters: the policy-gradient term, the entropy and value
terms with their coefficients, the advantage normalisation, PPO's clipping and λ · KL(teacher ‖
induced policy) computed from the paper's definition. The logged values are checked the same way."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.nn.utils import vector_to_parameters

import rlimm.envs as E
from rlimm.agents.a2c import A2C
from rlimm.agents.ppo import PPO
from rlimm.agents.reinforce import REINFORCE
from rlimm.agents.teachers import pomdp_teacher

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
        self.batches, self.params, self.grads = [], [], []
        buffer, get = model.rollout_buffer, model.rollout_buffer.get
        parameters = list(model.policy.parameters())

        def recording_get(*args, **kwargs):
            for sample in get(*args, **kwargs):
                self.batches.append(sample)
                yield sample

        def before_step(optimizer, args, kwargs):
            self.params.append(flat([p.detach() for p in parameters]).clone())
            self.grads.append(flat([torch.zeros_like(p) if p.grad is None else p.grad for p in parameters]))

        buffer.get = recording_get
        model.policy.optimizer.register_step_pre_hook(before_step)


def policy_at(model, params):
    policy = copy.deepcopy(model.policy)
    vector_to_parameters(params, policy.parameters())
    return policy


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
        clip = model.clip_range(1.0)
        # min(r·A, clip(r)·A): the pessimistic bound, written per sign of A
        bounded = torch.where(adv >= 0, torch.clamp(ratio, max=1 + clip), torch.clamp(ratio, min=1 - clip))
        terms["policy"] = -(bounded * adv).mean()
        terms["clip_fraction"] = ((ratio - 1).abs() > clip).float().mean()
        log_ratio = log_prob - batch.old_log_prob
        terms["approx_kl"] = ((log_ratio.exp() - 1) - log_ratio).mean()
        if model.clip_range_vf is not None:
            clip_vf = model.clip_range_vf(1.0)
            pred = batch.old_values + torch.clamp(values - batch.old_values, -clip_vf, clip_vf)
            terms["value"] = ((batch.returns - pred) ** 2).mean()
    else:
        terms["policy"] = -(log_prob * adv).mean()
    terms["teacher"] = lam * hand_kl(policy, teacher, obs, kind) if lam else torch.zeros(())
    vf_coef = 0.0 if isinstance(model, REINFORCE) else model.vf_coef
    terms["loss"] = (
        terms["policy"] + model.ent_coef * terms["entropy"] + vf_coef * terms["value"] + terms["teacher"]
    )
    return terms


def check_steps(model, rec, teacher, lam, kind, max_grad_norm=None):
    """Every recorded gradient is ∇(hand loss) at the recorded parameters (clipped to
    ``max_grad_norm`` as torch's clip_grad_norm_ does); returns the hand terms of each step."""
    assert len(rec.grads) == len(rec.batches) > 0
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
    assert model.logger.name_to_excluded["train/n_updates"] == ("tensorboard",)
    assert logged(model, "train/n_updates") == model._n_updates == 2


@pytest.mark.parametrize("n_steps", [1, 2])
def test_reinforce_normalises_the_weights_only_with_more_than_one(teacher, restriction, n_steps):
    # One weight has no spread: it is used as it is (standardising it would give NaN).
    model = build(
        REINFORCE, teacher, restriction, "imm", 0.0, n_steps=n_steps, normalize_advantage=True,
        learning_rate=0.5, policy_kwargs=SGD,
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
    assert logged(model, "train/regularizer_loss") == pytest.approx(second["teacher"], rel=1e-5)
    assert logged(model, "train/n_updates") == model._n_updates == 2
    buf = model.rollout_buffer
    ev = 1 - np.var(buf.returns.flatten() - buf.values.flatten()) / np.var(buf.returns.flatten())
    assert logged(model, "train/explained_variance") == pytest.approx(ev, rel=1e-5)


@pytest.mark.parametrize(
    ("kind", "normalize", "clip_vf", "clip"), [("imm", True, None, 1e9), ("naive", False, 0.02, 0.05)]
)
def test_ppo_update_is_the_hand_loss(teacher, restriction, kind, normalize, clip_vf, clip):
    """Two epochs over 9 transitions in minibatches of 4, 4 and 1: the ratio moves away from one in
    the later minibatches (the clipping acts), and the minibatch of one is not normalised."""
    lam = 0.37
    model = build(
        PPO,
        teacher,
        restriction,
        kind,
        lam,
        n_steps=9,
        batch_size=4,
        n_epochs=2,
        ent_coef=0.3,
        vf_coef=0.7,
        clip_range=0.1,
        clip_range_vf=clip_vf,
        normalize_advantage=normalize,
        max_grad_norm=clip,
        learning_rate=2.0,
        policy_kwargs=SGD,
    )
    rec = Recorder(model)
    model.learn(9)
    terms = check_steps(model, rec, teacher, lam, kind, None if clip > 1 else clip)
    assert len(terms) == 6
    assert max(t["clip_fraction"] for t in terms) > 0  # the clipping acts
    for key, name in [
        ("policy", "train/policy_gradient_loss"),
        ("value", "train/value_loss"),
        ("entropy", "train/entropy_loss"),
        ("clip_fraction", "train/clip_fraction"),
        ("teacher", "train/regularizer_loss"),
    ]:
        assert logged(model, name) == pytest.approx(np.mean([t[key] for t in terms]), rel=1e-5), name
    # approx_kl: the last epoch's minibatches; loss: the last minibatch's
    assert logged(model, "train/approx_kl") == pytest.approx(np.mean([t["approx_kl"] for t in terms[3:]]), rel=1e-5)
    assert logged(model, "train/loss") == pytest.approx(terms[-1]["loss"], rel=1e-5)
    assert logged(model, "train/n_updates") == model._n_updates == 2
    assert logged(model, "train/clip_range") == pytest.approx(0.1)
    if clip_vf is None:
        assert "train/clip_range_vf" not in model.logger.name_to_value
    else:
        assert logged(model, "train/clip_range_vf") == pytest.approx(clip_vf)
    buf = model.rollout_buffer
    ev = 1 - np.var(buf.returns.flatten() - buf.values.flatten()) / np.var(buf.returns.flatten())
    assert logged(model, "train/explained_variance") == pytest.approx(ev, rel=1e-5)
