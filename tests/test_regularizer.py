"""The shared regulariser on its own: exact induction in one batched forward, the diagnostics, and
an inactive regulariser that asks nothing of the policy (continuous actions train without a teacher)."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlimm.envs as E
from rlimm.agents.ppo import PPO
from rlimm.agents.regularizer import TeacherRegularizer
from rlimm.agents.reinforce import REINFORCE
from rlimm.agents.teachers import pomdp_teacher
from rlimm.errors import RlimmError


@pytest.fixture(scope="module")
def setting():
    env = gym.make(E.GRID_ID, max_episode_steps=50)
    restriction = E.FactoredRestriction.for_env(env, ["x"])
    return restriction, pomdp_teacher(env, restriction, "fib")


def test_imm_term_is_exact_induction_with_one_batched_forward(setting):
    restriction, teacher = setting
    model = REINFORCE(
        "MlpPolicy",
        gym.make(E.GRID_ID, max_episode_steps=50),
        regularizer="imm",
        teacher=teacher,
        restriction=restriction,
        teacher_coef=1.0,
        seed=0,
    )
    model.learn(50)
    obs = torch.as_tensor(model.rollout_buffer.observations.reshape(-1, 1))
    with torch.no_grad():
        distribution = model.policy.get_distribution(obs)
    calls = []
    hook = model.policy.action_net.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    contexts = restriction.visible(obs.numpy().astype(int).ravel())
    # The buffer recorded the teacher's view of each observation at collection time.
    np.testing.assert_array_equal(model.rollout_buffer.view_data["contexts"].ravel(), contexts)
    batch = SimpleNamespace(
        contexts=torch.as_tensor(contexts),
        teacher_probs=torch.as_tensor(model.rollout_buffer.view_data["teacher_probs"].reshape(-1, 4)),
    )
    np.testing.assert_array_equal(batch.teacher_probs.numpy(), teacher.table[contexts].astype(np.float32))
    out = model.regularizer.compute(model.policy, batch, distribution, 1.0)
    hook.remove()
    # One forward pass for the induced policy, over the members of the contexts in the batch.
    assert calls == [len(np.unique(contexts)) * restriction.n_hidden]
    # Hand computation: policy over all states, averaged over each column's rows.
    with torch.no_grad():
        all_probs = model.policy.get_distribution(torch.arange(121.0)).distribution.probs.numpy()
    induced = all_probs.reshape(11, 11, 4).mean(axis=0)  # (x, a): average over y
    p = teacher.table[contexts]
    q = induced[contexts]
    kl = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - np.log(q)), 0).sum(1).mean()
    assert out.imm_kl == pytest.approx(kl, rel=1e-5)
    assert out.loss.item() == pytest.approx(kl, rel=1e-5)
    # The naive diagnostic is the pointwise KL at the visited states.
    naive = np.where(
        p > 0, p * (np.log(np.where(p > 0, p, 1)) - np.log(all_probs[obs.numpy().astype(int).ravel()])), 0
    )
    assert out.naive_kl == pytest.approx(naive.sum(1).mean(), rel=1e-5)


def test_an_inactive_regularizer_is_off_and_asks_nothing():
    off = TeacherRegularizer("none", None, None, 0.0)
    assert not off.enabled
    # Continuous actions without a teacher: PPO trains (the regulariser never asks for logits).
    model = PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=32, n_epochs=1, seed=0)
    model.learn(128)
    assert model.num_timesteps == 128


def test_a_discrete_teacher_on_continuous_actions_is_refused_clearly():
    env = gym.make(E.GRID_ID)
    restriction = E.restriction_for(env, ["x"])
    teacher = pomdp_teacher(env, restriction, "fib")
    box = gym.spaces.Box(-2.0, 2.0, (1,))
    message = (
        rf"^teacher '{teacher.name}' gives probabilities over Discrete actions but the environment's "
        r"actions are Box\(-2.0, 2.0, \(1,\), float32\): a Box action space needs a Gaussian teacher"
    )
    with pytest.raises(RlimmError, match=message):
        teacher.check_compatible(restriction, box)
