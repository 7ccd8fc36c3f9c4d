"""The shared regulariser on its own: exact induction in one batched forward, the diagnostics, what
``compute()`` returns against the KLs written out by hand (hand_losses.py), refusals, and an inactive
regulariser that asks nothing of the policy (continuous actions train without a teacher)."""

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hand_losses import GRID, WIDTH, compute, grid, grid_model, hand_kl, no_lr

from rlimm.agents.common.policies import DistributionReturningPolicy
from rlimm.agents.imm.families import family_for
from rlimm.agents.imm.regularizer import TeacherRegularizer
from rlimm.agents.imm.settings import InductionSettings
from rlimm.agents.ppo import PPO
from rlimm.agents.reinforce import REINFORCE
from rlimm.envs.restrictions import PartitionRestriction
from rlimm.errors import RlimmError


def test_imm_term_is_exact_induction_with_one_batched_forward(grid_restriction, grid_teacher):
    restriction, teacher = grid_restriction, grid_teacher
    model = REINFORCE(
        "MlpPolicy",
        grid(),
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
        teacher_params=torch.as_tensor(model.rollout_buffer.view_data["teacher_params"].reshape(-1, 4)),
        observations=obs,
        indices=None,
    )
    np.testing.assert_array_equal(batch.teacher_params.numpy(), teacher.table[contexts].astype(np.float32))
    out = model.regularizer_output(batch, distribution)
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
    assert out.divergence.item() == pytest.approx(kl, rel=1e-5)
    # The naive diagnostic is the pointwise KL at the visited states.
    naive = np.where(
        p > 0, p * (np.log(np.where(p > 0, p, 1)) - np.log(all_probs[obs.numpy().astype(int).ravel()])), 0
    )
    assert out.naive_kl == pytest.approx(naive.sum(1).mean(), rel=1e-5)


def test_an_inactive_regularizer_is_off_and_asks_nothing():
    off = TeacherRegularizer("none")
    assert not off.enabled
    # Continuous actions without a teacher: PPO trains (the regulariser never asks for logits).
    model = PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=32, n_epochs=1, seed=0)
    model.learn(128)
    assert model.num_timesteps == 128


def test_a_discrete_teacher_on_continuous_actions_is_refused_clearly(grid_restriction, grid_teacher):
    restriction, teacher = grid_restriction, grid_teacher
    box = gym.spaces.Box(-2.0, 2.0, (1,))
    message = (
        rf"^teacher '{teacher.name}' gives probabilities over Discrete actions but the environment's "
        r"actions are Box\(-2.0, 2.0, \(1,\), float32\): a Box action space needs a Gaussian teacher"
    )
    with pytest.raises(RlimmError, match=message):
        teacher.check_compatible(restriction, box)


def test_induction_settings_are_spelled_once_with_their_defaults():
    """The algorithms' ``induction``, the config's ``induction`` section and the regulariser share
    InductionSettings' names and defaults; bad values are refused in one line naming them."""
    from rlimm import gaussian_kl
    from rlimm.agents.imm.settings import DEFAULT_INDUCTION
    from rlimm.rl.config import InductionConfig

    assert DEFAULT_INDUCTION == InductionSettings("auto", 16, "mc", gaussian_kl.DEFAULT_SAMPLES, 20, 1)
    assert InductionConfig().settings() == DEFAULT_INDUCTION
    assert InductionSettings.of({"k": 4}) == InductionSettings(k=4)
    assert (
        InductionSettings.of(None) is not None
        and InductionSettings.of(DEFAULT_INDUCTION) is DEFAULT_INDUCTION
    )
    for value, message in [
        ({"method": "kde"}, r"^unknown induction method 'kde'; accepted: auto, exact, knn, marginal$"),
        (
            {"estimator": "jensen"},
            r"^unknown induction estimator 'jensen'; accepted: mc, quadrature, moment$",
        ),
        ({"samples": 0}, r"^induction samples must be a whole number >= 1, got 0$"),
        (
            {"kk": 3},
            r"^unknown induction setting 'kk'; accepted: method, k, estimator, samples, exclude, pool, "
            r"belief$",
        ),
    ]:
        with pytest.raises(RlimmError, match=message):
            InductionSettings.of(value)
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, induction={"method": "knn", "k": 3})
    assert model.induction == InductionSettings("knn", 3)


# --- what compute() returns, by hand (found by mutation testing) --------------------------------------


def test_an_exact_restriction_without_tables_uses_its_belief():
    """A restriction that enumerates its hidden part itself (no lookup tables): the induced policy
    weighs the hidden values by the belief it returns (here π(y | x) ∝ 1 + y)."""
    weighted = PartitionRestriction(np.arange(GRID) % WIDTH, belief=1.0 + np.arange(GRID) // WIDTH)
    enumerating = SimpleNamespace(
        exact=True, enumerate_hidden=weighted.enumerate_hidden, discrete_features=weighted.discrete_features
    )
    torch.manual_seed(0)
    policy = DistributionReturningPolicy(spaces.Discrete(GRID), spaces.Discrete(4), no_lr)
    obs = torch.tensor([[3.0], [14.0], [60.0], [120.0], [7.0]])
    x = obs.long().reshape(-1) % WIDTH
    teacher_params = torch.distributions.Dirichlet(torch.ones(4)).sample((11,))[x]
    batch = SimpleNamespace(observations=obs, teacher_params=teacher_params, contexts=None, indices=None)
    reg = TeacherRegularizer("imm", enumerating, induction={"method": "exact"})
    out = compute(reg, policy, batch, policy.get_distribution(obs))
    probs = policy.get_distribution(torch.arange(float(GRID))).distribution.probs.reshape(WIDTH, WIDTH, 4)
    w = (1.0 + torch.arange(WIDTH, dtype=torch.float32)).reshape(WIDTH, 1, 1)
    induced = ((w * probs).sum(0) / w.sum())[x]  # (y, x, a) → (x, a)
    kl = (teacher_params * (teacher_params.log() - induced.log())).sum(-1).mean()
    assert out.imm_kl == pytest.approx(kl.item(), rel=1e-5)
    assert out.divergence.item() == pytest.approx(kl.item(), rel=1e-5)


def grid_batch(restriction, teacher, seed=0):
    torch.manual_seed(seed)
    policy = DistributionReturningPolicy(spaces.Discrete(GRID), spaces.Discrete(4), no_lr)
    obs = torch.tensor([3.0, 14.0, 60.0, 120.0, 7.0, 18.0])
    contexts = torch.as_tensor(restriction.visible(obs.long().numpy()))
    teacher_params = torch.as_tensor(teacher.probs(contexts.numpy()), dtype=torch.float32)
    batch = SimpleNamespace(observations=obs, teacher_params=teacher_params, contexts=contexts, indices=None)
    return policy, batch


@pytest.mark.parametrize("kind", ["imm", "naive"])
def test_both_kls_are_reported_whichever_is_optimised(grid_teacher, grid_restriction, kind):
    policy, batch = grid_batch(grid_restriction, grid_teacher)
    reg = TeacherRegularizer(kind, grid_restriction)
    out = compute(reg, policy, batch, policy.get_distribution(batch.observations))
    imm, naive = (
        hand_kl(policy, grid_teacher, batch.observations, "imm"),
        hand_kl(policy, grid_teacher, batch.observations, "naive"),
    )
    assert out.imm_kl == pytest.approx(imm.item(), rel=1e-5)
    assert out.naive_kl == pytest.approx(naive.item(), rel=1e-5)
    # the divergence is not weighted: λ is the algorithm's, on its own loss line
    assert out.divergence.item() == pytest.approx((imm if kind == "imm" else naive).item(), rel=1e-5)
    assert np.isnan(out.ess) and np.isnan(out.distance)
    # without the diagnostics only the optimised KL is computed
    quiet = compute(reg, policy, batch, policy.get_distribution(batch.observations), diagnostics=False)
    assert quiet.divergence.item() == out.divergence.item()
    assert np.isnan(quiet.imm_kl) == (kind == "naive")


@pytest.mark.parametrize("kind", ["imm", "naive", "none"])
def test_a_term_that_is_not_optimised_builds_no_graph(grid_teacher, grid_restriction, kind):
    """λ = 0 now (``optimise=False``), ``none``, or evaluation under ``no_grad``: the divergence is a
    constant (no backward pass through the teacher term); optimised, it carries the gradient."""
    policy, batch = grid_batch(grid_restriction, grid_teacher)
    reg = TeacherRegularizer(kind, grid_restriction)
    for optimise in [False, True]:
        out = compute(reg, policy, batch, policy.get_distribution(batch.observations), optimise=optimise)
        assert out.divergence.requires_grad == (optimise and kind != "none")
        assert (out.divergence.item() == 0.0) == (not optimise or kind == "none")
        distribution = policy.get_distribution(batch.observations)  # with a graph
        with torch.no_grad():
            quiet = compute(reg, policy, batch, distribution, optimise=optimise)
        assert not quiet.divergence.requires_grad and quiet.divergence.item() == out.divergence.item()


def test_a_regularizer_without_a_teacher_says_how_to_give_one(grid_teacher, grid_restriction, tmp_path):
    """Without a restriction (no teacher) the regulariser is off and cannot compute; a model loaded
    without its teacher refuses to train with an active regulariser, saying how to give one."""
    policy, batch = grid_batch(grid_restriction, grid_teacher)
    off = TeacherRegularizer("none")
    assert not off.enabled and off.family is None and off.method is None
    with pytest.raises(RlimmError, match=r"^the regulariser has no teacher \(no restriction was given\)"):
        off.compute(batch.teacher_params, torch.zeros(6, 4), policy.action_params)
    model = grid_model(REINFORCE, grid_teacher, grid_restriction, "naive", 0.3)
    model.save(tmp_path / "model.zip")
    bare = REINFORCE.load(tmp_path / "model.zip", env=grid())
    message = r"^regularizer 'naive' has no teacher: pass teacher=\.\.\. to the constructor or to load\(\)$"
    with pytest.raises(RlimmError, match=message):
        bare.learn(50)


def test_bad_induction_settings_and_continuous_actions_are_refused_by_name():
    accepted = "auto, exact, knn, marginal"
    with pytest.raises(RlimmError, match=rf"^unknown induction method 'kde'; accepted: {accepted}$"):
        InductionSettings("kde", 4)
    for k in [True, 2.0, 0, -1]:
        with pytest.raises(RlimmError, match=rf"^induction k must be a whole number >= 1, got {k!r}$"):
            InductionSettings("knn", k)
    InductionSettings("marginal", 1)
    from stable_baselines3.common.distributions import DiagGaussianDistribution

    dist = DiagGaussianDistribution(1).proba_distribution(torch.zeros(2, 1), torch.zeros(1))
    message = r"^a Discrete action space needs a categorical policy, got Normal$"
    with pytest.raises(RlimmError, match=message):
        family_for(gym.spaces.Discrete(3)).params_of(dist.distribution)
    message = (
        r"^the teacher regulariser supports Discrete, 1-D MultiDiscrete and 1-D Box action spaces, got "
        r"MultiDiscrete\(\[\[2 3\]\]\) \(use regularizer 'none'\)$"
    )
    with pytest.raises(RlimmError, match=message):
        family_for(gym.spaces.MultiDiscrete([[2, 3]]))
