"""REINFORCE with a regulariser: faithful returns, determinism, λ = 0 = plain, exact batched induction,
save/load with a teacher, and refusal of mismatched teachers."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.save_util import load_from_zip_file

import rlimm.envs as E
from rlimm.agents.reinforce import REINFORCE
from rlimm.agents.teachers import TabularTeacher, pomdp_teacher
from rlimm.coefficients import Linear
from rlimm.errors import RlimmError


@pytest.fixture(scope="module")
def setting():
    env = gym.make(E.GRID_ID, max_episode_steps=50)
    restriction = E.FactoredRestriction.for_env(env, ["x"])
    teacher = pomdp_teacher(env, restriction, "fib")
    return env, restriction, teacher


def make(setting, regularizer="imm", coef=0.25, seed=0, **kw):
    _, restriction, teacher = setting
    return REINFORCE(
        "MlpPolicy",
        gym.make(E.GRID_ID, max_episode_steps=50),  # a fresh env: seeding is per model
        regularizer=regularizer,
        teacher=None if regularizer == "none" else teacher,
        restriction=restriction,
        teacher_coef=coef,
        seed=seed,
        **kw,
    )


def params(model):
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()])


def test_weights_are_discounted_reward_to_go_without_critic(setting):
    model = make(setting, "none")
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


def test_same_seed_same_parameters(setting):
    # SB3 seeds torch's global RNG at construction: build and train one model at a time.
    a = make(setting, seed=7)
    a.learn(250)
    b = make(setting, seed=7)
    b.learn(250)
    assert torch.equal(params(a), params(b))
    c = make(setting, seed=8)
    c.learn(250)
    assert not torch.equal(params(a), params(c))


@pytest.mark.parametrize("kind", ["imm", "naive"])
def test_lambda_zero_equals_no_regularizer(setting, kind):
    plain = make(setting, "none", seed=3)
    plain.learn(250)
    zero = make(setting, kind, coef=0.0, seed=3)
    zero.learn(250)
    assert torch.equal(params(plain), params(zero))
    reg = make(setting, kind, coef=1.0, seed=3)
    reg.learn(250)
    assert not torch.equal(params(plain), params(reg))


def test_imm_term_is_exact_induction_with_one_batched_forward(setting):
    _, restriction, teacher = setting
    model = make(setting, "imm", coef=1.0)
    model.learn(50)
    obs = torch.as_tensor(model.rollout_buffer.observations.reshape(-1, 1))
    with torch.no_grad():
        logits = model.policy.get_distribution(obs).distribution.logits
    calls = []
    hook = model.policy.action_net.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    contexts = restriction.visible(obs.numpy().astype(int).ravel())
    # The buffer recorded the teacher's view of each observation at collection time.
    np.testing.assert_array_equal(model.rollout_buffer.contexts.ravel(), contexts)
    out = model.regularizer.compute(model.policy, torch.as_tensor(contexts), logits, progress=0.0)
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


def test_schedule_coefficient_follows_progress(setting):
    model = make(setting, "imm", coef=Linear(0.0, 2.0))
    seen = []
    original = model.regularizer.compute

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out.lam)
        return out

    model.regularizer.compute = spy
    model.learn(200)  # four updates; SB3's progress is measured after each rollout, as for lr schedules
    assert seen == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert model.logger.name_to_value["train/lambda"] == pytest.approx(2.0)


def test_save_load_with_and_without_teacher(setting, tmp_path):
    env, _, teacher = setting
    model = make(setting, "imm", coef=0.5)
    model.learn(100)
    path = tmp_path / "agent.zip"
    model.save(path)
    data, _, _ = load_from_zip_file(path)
    assert "teacher" not in data and "regularizer" not in data
    assert data["regularizer_kind"] == "imm"

    loaded = REINFORCE.load(path, env=env, teacher=teacher)
    assert torch.equal(params(loaded), params(model))
    assert loaded.regularizer_kind == "imm" and loaded.regularizer.teacher is teacher
    loaded.learn(100, reset_num_timesteps=False)  # training continues with the teacher
    assert not torch.equal(params(loaded), params(model))

    bare = REINFORCE.load(path, env=env)  # no teacher: predicts, but refuses to train
    action, _ = bare.predict(5, deterministic=True)
    assert 0 <= int(action) < 4
    with pytest.raises(RlimmError, match="no teacher"):
        bare.learn(50)


def test_mismatched_teacher_is_refused(setting):
    env, restriction, _ = setting
    three_actions = TabularTeacher(np.full((11, 3), 1 / 3), "three")
    with pytest.raises(RlimmError, match="3 actions"):
        REINFORCE("MlpPolicy", env, regularizer="imm", teacher=three_actions, restriction=restriction)
    five_contexts = TabularTeacher(np.full((5, 4), 0.25), "five")
    with pytest.raises(RlimmError, match="5 visible contexts"):
        REINFORCE("MlpPolicy", env, regularizer="imm", teacher=five_contexts, restriction=restriction)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"regularizer": "kl"}, "unknown regularizer 'kl'"),
        ({"regularizer": "imm"}, "needs a teacher"),
        ({"regularizer": "none", "teacher_coef": -1.0}, "lambda must be"),
    ],
)
def test_bad_arguments(setting, kwargs, match):
    env, restriction, _ = setting
    with pytest.raises(RlimmError, match=match):
        REINFORCE("MlpPolicy", env, restriction=restriction, **kwargs)


def test_tensorboard_gets_the_documented_keys(setting, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = make(setting, "imm", coef=0.5, tensorboard_log=str(tmp_path))
    model.learn(200, tb_log_name="reinforce_imm")  # train/ values appear one dump later (SB3's lag)
    (run,) = tmp_path.iterdir()
    acc = EventAccumulator(str(run))
    acc.Reload()
    keys = set(acc.Tags()["scalars"])
    for key in [
        "train/policy_gradient_loss",
        "train/regularizer_loss",
        "train/lambda",
        "train/imm_kl",
        "train/naive_kl",
        "train/loss",
        "rollout/ep_rew_mean",
    ]:
        assert key in keys, sorted(keys)
    assert acc.Scalars("train/lambda")[-1].value == pytest.approx(0.5)
