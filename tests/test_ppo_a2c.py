"""PPO and A2C with the shared regulariser: λ = 0 is bit-identical to SB3, the teacher term trains,
save → load → continue with a teacher, load without one, and the documented TensorBoard output."""

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch

import rlimm.envs as E
from rlimm.agents.a2c import A2C
from rlimm.agents.ppo import PPO
from rlimm.agents.teachers import TabularTeacher, pomdp_teacher
from rlimm.errors import RlimmError

KWARGS = {
    PPO: {"n_steps": 64, "batch_size": 16, "n_epochs": 2, "learning_rate": 3e-3},
    A2C: {"n_steps": 16, "learning_rate": 3e-3},
}
BASE = {PPO: sb3.PPO, A2C: sb3.A2C}


@pytest.fixture(scope="module")
def setting():
    env = gym.make(E.GRID_ID, max_episode_steps=50)
    restriction = E.FactoredRestriction.for_env(env, ["x"])
    return restriction, pomdp_teacher(env, restriction, "fib")


def env():
    return gym.make(E.GRID_ID, max_episode_steps=50)


def params(model):
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()])


@pytest.mark.parametrize("algo", [PPO, A2C])
@pytest.mark.parametrize("variant", ["none", "imm_lambda0", "naive_lambda0"])
def test_lambda_zero_is_bit_identical_to_sb3(setting, algo, variant):
    restriction, teacher = setting
    plain = BASE[algo]("MlpPolicy", env(), seed=11, **KWARGS[algo])
    plain.learn(256)
    if variant == "none":
        ours = algo("MlpPolicy", env(), seed=11, **KWARGS[algo])
    else:
        kind = variant.split("_")[0]
        ours = algo(
            "MlpPolicy",
            env(),
            seed=11,
            regularizer=kind,
            teacher=teacher,
            restriction=restriction,
            teacher_coef=0.0,
            **KWARGS[algo],
        )
    ours.learn(256)
    assert torch.equal(params(plain), params(ours))


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_teacher_term_changes_training_and_lowers_imm_kl(setting, algo):
    restriction, teacher = setting
    plain = algo("MlpPolicy", env(), seed=2, **KWARGS[algo])
    plain.learn(512)
    imm = algo(
        "MlpPolicy",
        env(),
        seed=2,
        regularizer="imm",
        teacher=teacher,
        restriction=restriction,
        teacher_coef=5.0,
        **KWARGS[algo],
    )
    imm.learn(512)
    assert not torch.equal(params(plain), params(imm))
    contexts = torch.arange(11)
    with torch.no_grad():
        kl = {}
        for name, model in [("plain", plain), ("imm", imm)]:
            probs = model.policy.get_distribution(torch.arange(121.0)).distribution.probs.numpy()
            induced = probs.reshape(11, 11, 4).mean(axis=0)
            p = teacher.table[contexts.numpy()]
            kl[name] = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - np.log(induced)), 0).sum(1).mean()
    assert kl["imm"] < kl["plain"]


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_save_load_continue_and_load_without_teacher(setting, algo, tmp_path):
    restriction, teacher = setting
    model = algo(
        "MlpPolicy",
        env(),
        seed=0,
        regularizer="naive",
        teacher=teacher,
        restriction=restriction,
        teacher_coef=0.5,
        **KWARGS[algo],
    )
    model.learn(128)
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = algo.load(path, env=env(), teacher=teacher)
    assert torch.equal(params(loaded), params(model))
    assert loaded.regularizer.kind == "naive" and loaded.regularizer.teacher is teacher
    loaded.learn(128, reset_num_timesteps=False)
    assert not torch.equal(params(loaded), params(model))

    bare = algo.load(path, env=env())
    action, _ = bare.predict(np.array(17), deterministic=True)
    assert 0 <= int(action) < 4
    with pytest.raises(RlimmError, match="no teacher"):
        bare.learn(128)


def test_tensorboard_keys_hparams_and_run_name(setting, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    restriction, teacher = setting
    model = PPO(
        "MlpPolicy",
        env(),
        seed=0,
        regularizer="imm",
        teacher=teacher,
        restriction=restriction,
        teacher_coef=0.3,
        tensorboard_log=str(tmp_path),
        **KWARGS[PPO],
    )
    model.learn(64 * 3)  # three iterations: train/ values of the first two are dumped (SB3's lag)
    (run,) = tmp_path.iterdir()
    assert run.name == "PPO_imm_1"
    acc = EventAccumulator(str(run))
    acc.Reload()
    keys = set(acc.Tags()["scalars"])
    for key in [
        "train/regularizer_loss",
        "train/lambda",
        "train/imm_kl",
        "train/naive_kl",
        "train/policy_gradient_loss",
        "train/value_loss",
        "train/entropy_loss",
        "rollout/ep_rew_mean",
    ]:
        assert key in keys, sorted(keys)
    assert acc.Scalars("train/lambda")[-1].value == pytest.approx(0.3)
    plugins = {
        v.metadata.plugin_data.plugin_name
        for f in run.iterdir()
        for event in EventFileLoader(str(f)).Load()
        for v in event.summary.value
    }
    assert "hparams" in plugins


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_mismatched_teacher_refused_at_construction(setting, algo):
    restriction, _ = setting
    bad = TabularTeacher(np.full((11, 3), 1 / 3), "three-actions")
    with pytest.raises(RlimmError, match="3 actions but the environment has 4"):
        algo("MlpPolicy", env(), regularizer="imm", teacher=bad, restriction=restriction)
