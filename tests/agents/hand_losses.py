"""The algorithms' updates written out by hand, for the tests that check every optimiser step of a short
run (test_agents.py, test_reinforce.py) and the regulariser's output (test_regularizer.py,
test_sampled_induction.py) against them.

:class:`Recorder` records the minibatches a model's ``train()`` draws and the parameters and gradients
just before each optimiser step; :func:`check_steps` compares each gradient with the gradient of the loss
written out by hand at the recorded parameters: the policy-gradient term, the entropy and value terms
with their coefficients, the advantage normalisation, PPO's clipping and λ · KL(teacher ‖ induced
policy) computed from the paper's definition. Most of these tests were found by mutation testing
(docs/mutation.md).

``model._current_progress_remaining`` is SB3's own name for the progress the schedules are read at."""

import gymnasium as gym
import torch
from torch.nn.utils import vector_to_parameters

import rlimm.envs as E
from rlimm.agents.a2c import A2C
from rlimm.agents.ppo import PPO
from rlimm.agents.reinforce import REINFORCE

#: The grid's states and its width: state = y · WIDTH + x.
GRID, WIDTH = 121, 11
#: Plain SGD: an update is then θ ← θ − lr · ∇loss.
SGD = {"optimizer_class": torch.optim.SGD}


def grid():
    """A fresh grid with 50-step episodes (as the ``grid_env`` fixture): one per model, seeding is per
    model."""
    return gym.make(E.GRID_ID, max_episode_steps=50)


def no_lr(_progress):
    """A learning-rate schedule for policies built outside an algorithm: they are only evaluated."""
    return 0.0


def flat(tensors):
    """The tensors flattened into one vector."""
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


def compute(reg, policy, batch, distribution, pool=None, diagnostics=True, optimise=True):
    """The regulariser on a batch as the algorithms call it: the policy's parameters from its
    distribution, the induced policy's members evaluated by its actor."""
    return reg.compute(
        batch.teacher_params,
        reg.family.params_of(distribution.distribution),
        policy.action_params,
        optimise=optimise,
        contexts=batch.contexts,
        observations=batch.observations,
        indices=batch.indices,
        pool=pool,
        diagnostics=diagnostics,
    )


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


def grid_model(algo, teacher, restriction, kind="imm", lam=0.37, **kw):
    """A model of ``algo`` on a fresh grid with the given regulariser, seed 3."""
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
    """The value the model's logger recorded last under ``key``."""
    return model.logger.name_to_value[key]
