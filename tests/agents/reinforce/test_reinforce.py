"""REINFORCE itself: the paper's reward-to-go weights without a critic, and each update against the
loss written out by hand (hand_losses.py). What every algorithm shares (the teacher term, λ = 0,
save/load, TensorBoard) is in test_agents.py.

``model._n_updates`` is SB3's own name for the update counter (it logs it as ``train/n_updates``)."""

import numpy as np
import pytest
import torch
from hand_losses import SGD, Recorder, check_steps, grid, grid_model, logged

from rlimm.agents.reinforce import REINFORCE


def make(restriction, teacher, regularizer="imm", coef=0.25, seed=0, **kw):
    return REINFORCE(
        "MlpPolicy",
        grid(),  # a fresh env: seeding is per model
        regularizer=regularizer,
        teacher=None if regularizer == "none" else teacher,
        restriction=restriction,
        teacher_coef=coef,
        seed=seed,
        **kw,
    )


def params(model):
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()])


def test_weights_are_discounted_reward_to_go_without_critic(grid_restriction, grid_teacher):
    model = make(grid_restriction, grid_teacher, "none")
    model.learn(50)
    buf = model.rollout_buffer
    rewards = buf.rewards[:, 0]
    expected = np.zeros(50)
    running = 0.0
    for t in reversed(range(50)):  # one 50-step episode: no bootstrap at the cut
        running = rewards[t] + 0.9 * running
        expected[t] = running
    np.testing.assert_allclose(buf.advantages[:, 0], expected, rtol=1e-5)
    assert np.all(buf.values == 0)
    assert buf.episode_starts[0, 0] == 1  # every update starts a fresh trajectory


# --- the update, step by step (found by mutation testing) ---------------------------------------------


@pytest.mark.parametrize(("kind", "normalize", "clip"), [("imm", False, None), ("naive", True, 0.05)])
def test_reinforce_update_is_the_hand_loss(grid_teacher, grid_restriction, kind, normalize, clip):
    lam = 0.37
    model = grid_model(
        REINFORCE,
        grid_teacher,
        grid_restriction,
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
    (first, second) = check_steps(model, rec, grid_teacher, lam, kind, clip)
    assert logged(model, "train/policy_gradient_loss") == pytest.approx(second["policy"], rel=1e-5)
    assert logged(model, "train/entropy_loss") == pytest.approx(second["entropy"], rel=1e-5)
    assert logged(model, "train/loss") == pytest.approx(second["loss"], rel=1e-5)
    assert logged(model, "train/regularizer_loss") == pytest.approx(second["teacher"], rel=1e-5)
    assert logged(model, "train/imm_kl") == pytest.approx(second["imm_kl"], rel=1e-5)
    assert logged(model, "train/naive_kl") == pytest.approx(second["naive_kl"], rel=1e-5)
    assert logged(model, "train/teacher_coef") == lam
    assert "train/induction_ess" not in model.logger.name_to_value  # exact induction: no draws
    assert model.logger.name_to_excluded["train/n_updates"] == ("tensorboard",)
    assert logged(model, "train/n_updates") == model._n_updates == 2


@pytest.mark.parametrize("n_steps", [1, 2])
def test_reinforce_normalises_the_weights_only_with_more_than_one(grid_teacher, grid_restriction, n_steps):
    # One weight has no spread: it is used as it is (standardising it would give NaN).
    model = grid_model(
        REINFORCE,
        grid_teacher,
        grid_restriction,
        "imm",
        0.0,
        n_steps=n_steps,
        normalize_advantage=True,
        learning_rate=0.5,
        policy_kwargs=SGD,
    )
    rec = Recorder(model)
    model.learn(n_steps)
    check_steps(model, rec, grid_teacher, 0.0, "imm")
    assert np.isfinite(logged(model, "train/loss"))
