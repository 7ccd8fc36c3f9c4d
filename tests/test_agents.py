"""Every rlimm algorithm (REINFORCE, PPO, A2C) by behaviour, one test parametrised over all of them
(as sb3-contrib's tests/test_save_load.py): the teacher term has the right sign and scale, λ = 0 is
plain SB3 bit for bit, save → load → continue with a teacher, the documented TensorBoard output,
mismatched teachers refused, determinism, and learning itself."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch

import rlimm.envs as E
from rlimm.agents.a2c import A2C
from rlimm.agents.ppo import PPO
from rlimm.agents.reinforce import REINFORCE
from rlimm.agents.teachers import TabularTeacher, pomdp_teacher
from rlimm.coefficients import Linear
from rlimm.envs.restriction import PartitionRestriction
from rlimm.errors import RlimmError

MODEL_LIST = [REINFORCE, PPO, A2C]
KWARGS = {
    REINFORCE: {"n_steps": 50},
    PPO: {"n_steps": 64, "batch_size": 16, "n_epochs": 2, "learning_rate": 3e-3},
    A2C: {"n_steps": 16, "learning_rate": 3e-3},
}
#: One gradient step on the whole rollout per update, plain SGD, no clipping: an update is then
#: θ ← θ − lr · ∇(algorithm loss + λ · R), which lets the tests read the teacher term off the step.
ONE_SGD_STEP = {
    REINFORCE: {"n_steps": 50},
    PPO: {"n_steps": 64, "batch_size": 64, "n_epochs": 1, "max_grad_norm": 1e9},
    A2C: {"n_steps": 64, "max_grad_norm": 1e9},
}
PLAIN = {REINFORCE: REINFORCE, PPO: sb3.PPO, A2C: sb3.A2C}
GRID, WIDTH = 121, 11


@pytest.fixture(scope="module")
def teacher():
    env = gym.make(E.GRID_ID, max_episode_steps=50)
    return pomdp_teacher(env, E.FactoredRestriction.for_env(env, ["x"]), "fib")


@pytest.fixture(scope="module")
def restriction():
    return E.FactoredRestriction.for_env(gym.make(E.GRID_ID), ["x"])


def env():
    return gym.make(E.GRID_ID, max_episode_steps=50)


def params(model):
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()])


def build(algo, teacher, restriction, regularizer="imm", coef=0.25, seed=0, **kw):
    kwargs = {**KWARGS[algo], **kw}
    if regularizer == "none" and teacher is None:
        return algo("MlpPolicy", env(), seed=seed, **kwargs)
    return algo(
        "MlpPolicy",
        env(),
        seed=seed,
        regularizer=regularizer,
        teacher=teacher,
        restriction=restriction,
        teacher_coef=coef,
        **kwargs,
    )


# --- the teacher term: sign, scale, belief ------------------------------------------------------------

#: An unequal belief over the hidden row: π(y | x) ∝ 1 + y.
ROW_WEIGHTS = 1.0 + np.arange(GRID) // WIDTH


def hand_regularizer(policy, kind, teacher_table, observations, lam):
    """λ · KL written out from the paper's definition, independently of rlimm's code: the induced
    policy of column x is Σ_y w(y, x) π(·|y, x) / Σ_y w(y, x), averaged *before* the log."""
    probs = policy.get_distribution(torch.arange(float(GRID))).distribution.probs  # (121, 4)
    obs = torch.as_tensor(observations, dtype=torch.long)
    p = torch.as_tensor(teacher_table[obs.numpy() % WIDTH], dtype=torch.float32)
    if kind == "imm":
        w = torch.as_tensor(ROW_WEIGHTS, dtype=torch.float32).reshape(WIDTH, WIDTH, 1)  # (y, x, 1)
        induced = (w * probs.reshape(WIDTH, WIDTH, -1)).sum(0) / w.sum(0)  # (x, a)
        q = induced[obs % WIDTH]
    else:
        q = probs[obs]
    safe_p = torch.where(p > 0, p, torch.ones_like(p))
    kl = torch.where(p > 0, p * (torch.log(safe_p) - torch.log(q)), torch.zeros_like(p)).sum(-1)
    return lam * kl.mean()


@pytest.mark.parametrize("algo", MODEL_LIST)
@pytest.mark.parametrize("kind", ["imm", "naive"])
def test_teacher_term_is_lambda_times_the_kl_with_the_right_sign(algo, kind, teacher):
    """One SGD step with λ = 0.37 minus the same step with λ = 0, from the same seed and rollout,
    is exactly −lr · ∇(λ · KL), with the KL computed by hand under an unequal belief; the logged
    ``train/regularizer_loss`` is λ · KL. Catches a flipped sign, a dropped λ, a dropped belief, an
    average taken after the log, or the teacher term on the wrong states."""
    lam, lr = 0.37, 0.5
    weighted = PartitionRestriction(np.arange(GRID) % WIDTH, belief=ROW_WEIGHTS)
    kw = {**ONE_SGD_STEP[algo], "learning_rate": lr, "policy_kwargs": {"optimizer_class": torch.optim.SGD}}
    n = kw["n_steps"]
    # SB3 seeds torch's global RNG at construction: build and train one model at a time.
    before = build(algo, teacher, weighted, kind, coef=lam, seed=4, **kw)
    initial = copy.deepcopy(before.policy)
    before.learn(n)  # one rollout, one update
    zero = build(algo, teacher, weighted, kind, coef=0.0, seed=4, **kw)
    zero.learn(n)
    # The same seed gives the same rollout: the teacher term acts only in the update.
    np.testing.assert_array_equal(before.rollout_buffer.observations, zero.rollout_buffer.observations)
    observations = before.rollout_buffer.observations.reshape(-1)
    expected = hand_regularizer(initial, kind, teacher.table, observations, lam)
    grads = torch.autograd.grad(expected, list(initial.parameters()), allow_unused=True)
    step = torch.cat(
        [
            (-lr * g if g is not None else torch.zeros_like(p)).flatten()
            for g, p in zip(grads, initial.parameters(), strict=True)
        ]
    )
    torch.testing.assert_close(params(before) - params(zero), step, atol=2e-6, rtol=1e-4)
    assert step.abs().max() > 1e-3  # the term is not vanishingly small here
    logged = before.logger.name_to_value["train/regularizer_loss"]
    assert logged == pytest.approx(expected.item(), rel=1e-5)
    assert before.logger.name_to_value["train/lambda"] == pytest.approx(lam)


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_lambda_pulls_the_induced_policy_towards_the_teacher(algo, teacher, restriction):
    def induced_kl(model):
        with torch.no_grad():
            probs = model.policy.get_distribution(torch.arange(float(GRID))).distribution.probs.numpy()
        induced = probs.reshape(WIDTH, WIDTH, 4).mean(axis=0)
        p = teacher.table
        return np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - np.log(induced)), 0).sum(1).mean()

    zero = build(algo, teacher, restriction, "imm", coef=0.0, seed=2)
    zero.learn(512)
    pulled = build(algo, teacher, restriction, "imm", coef=5.0, seed=2)
    pulled.learn(512)
    assert induced_kl(pulled) < 0.75 * induced_kl(zero)


# --- λ = 0 is plain SB3, bit for bit ------------------------------------------------------------------


@pytest.mark.parametrize("algo", MODEL_LIST)
@pytest.mark.parametrize("variant", ["none", "none_with_teacher", "imm_lambda0", "naive_lambda0"])
def test_lambda_zero_is_bit_identical_to_the_plain_algorithm(algo, variant, teacher, restriction):
    plain = PLAIN[algo]("MlpPolicy", env(), seed=11, **KWARGS[algo])
    plain.learn(256)
    if variant == "none":
        ours = build(algo, None, None, "none", seed=11)
    elif variant == "none_with_teacher":  # the diagnostics are computed, the loss is unchanged
        ours = build(algo, teacher, restriction, "none", coef=0.5, seed=11)
    else:
        ours = build(algo, teacher, restriction, variant.split("_")[0], coef=0.0, seed=11)
    ours.learn(256)
    assert torch.equal(params(plain), params(ours))


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_same_seed_same_parameters(algo, teacher, restriction):
    # SB3 seeds torch's global RNG at construction: build and train one model at a time.
    a = build(algo, teacher, restriction, seed=7)
    a.learn(256)
    b = build(algo, teacher, restriction, seed=7)
    b.learn(256)
    assert torch.equal(params(a), params(b))
    c = build(algo, teacher, restriction, seed=8)
    c.learn(256)
    assert not torch.equal(params(a), params(c))


# --- λ schedules --------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_schedule_follows_sb3_progress_remaining(algo, teacher, restriction):
    n = KWARGS[algo]["n_steps"]
    seen = []

    model = build(algo, teacher, restriction, coef=Linear(0.0, 2.0))  # λ: 0 at the start → 2 at the end
    original = model.regularizer.compute

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out.lam)
        return out

    model.regularizer.compute = spy
    model.learn(4 * n)  # four updates; SB3 measures progress after each rollout, as for lr schedules
    assert sorted(set(seen)) == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert model.logger.name_to_value["train/lambda"] == pytest.approx(2.0)

    seen.clear()
    model = build(algo, teacher, restriction, coef=lambda progress_remaining: 3.0 * progress_remaining)
    original = model.regularizer.compute
    model.regularizer.compute = spy
    model.learn(2 * n)
    assert sorted(set(seen)) == pytest.approx([0.0, 1.5])


# --- save and load ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_save_load_continue_and_load_without_teacher(algo, teacher, restriction, tmp_path):
    from stable_baselines3.common.save_util import load_from_zip_file

    model = build(algo, teacher, restriction, "naive", coef=0.5)
    model.learn(128)
    path = tmp_path / "model.zip"
    model.save(path)
    data, _, _ = load_from_zip_file(path)
    assert "teacher" not in data and "regularizer" not in data
    assert data["regularizer_kind"] == "naive"

    loaded = algo.load(path, env=env(), teacher=teacher)
    assert torch.equal(params(loaded), params(model))
    assert loaded.regularizer.kind == "naive" and loaded.regularizer.teacher is teacher
    loaded.learn(128, reset_num_timesteps=False)  # training continues with the teacher
    assert not torch.equal(params(loaded), params(model))

    bare = algo.load(path, env=env())  # no teacher: predicts, but refuses to train
    action, _ = bare.predict(np.array(17), deterministic=True)
    assert 0 <= int(action) < 4
    with pytest.raises(RlimmError, match="no teacher"):
        bare.learn(128)


# --- TensorBoard --------------------------------------------------------------------------------------

ALGO_KEYS = {
    REINFORCE: ["train/policy_gradient_loss", "train/loss"],
    PPO: ["train/policy_gradient_loss", "train/value_loss", "train/entropy_loss"],
    A2C: ["train/policy_loss", "train/value_loss", "train/entropy_loss"],
}


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_tensorboard_keys_hparams_and_run_name(algo, teacher, restriction, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    model = build(algo, teacher, restriction, "imm", coef=0.3, tensorboard_log=str(tmp_path))
    # Several iterations, and several log intervals: train/ values appear one dump later (SB3's lag).
    model.learn(KWARGS[algo]["n_steps"] * 12, log_interval=2)
    (run,) = tmp_path.iterdir()
    assert run.name == f"{algo.__name__}_imm_1"
    acc = EventAccumulator(str(run))
    acc.Reload()
    keys = set(acc.Tags()["scalars"])
    for key in [
        "train/regularizer_loss",
        "train/lambda",
        "train/imm_kl",
        "train/naive_kl",
        *ALGO_KEYS[algo],
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


# --- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_mismatched_teacher_refused_at_construction(algo, restriction):
    three_actions = TabularTeacher(np.full((11, 3), 1 / 3), "three")
    with pytest.raises(RlimmError, match="3 actions but the environment has 4"):
        build(algo, three_actions, restriction)
    five_contexts = TabularTeacher(np.full((5, 4), 0.25), "five")
    with pytest.raises(RlimmError, match="5 visible contexts"):
        build(algo, five_contexts, restriction)


@pytest.mark.parametrize("algo", MODEL_LIST)
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"regularizer": "kl"}, "unknown regularizer 'kl'"),
        ({"regularizer": "imm"}, "needs a teacher"),
        ({"regularizer": "none", "teacher_coef": -1.0}, "lambda must be"),
        ({"regularizer": "none", "teacher_coef": "0.5"}, "teacher_coef must be"),
    ],
)
def test_bad_arguments(algo, restriction, kwargs, match):
    with pytest.raises(RlimmError, match=match):
        algo("MlpPolicy", env(), restriction=restriction, **kwargs)


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_a_policy_without_distributions_is_refused(algo):
    from stable_baselines3.common.policies import ActorCriticPolicy

    with pytest.raises(RlimmError, match="cannot return its action distribution"):
        algo(ActorCriticPolicy, env())


# --- learning -----------------------------------------------------------------------------------------

#: The grid configs' settings (configs/grid_*.yaml) and a budget at which each learns alone.
LEARN = {
    REINFORCE: ({"n_steps": 50, "learning_rate": 1e-2, "gamma": 0.9}, 10_000),
    PPO: ({"n_steps": 250, "batch_size": 50, "n_epochs": 4, "learning_rate": 3e-3, "gamma": 0.9}, 4_000),
    A2C: ({"n_steps": 50, "learning_rate": 3e-3, "gamma": 0.9, "gae_lambda": 0.95}, 5_000),
}


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_it_learns_the_grid(algo):
    """Without a teacher, the score rises far above the untrained policy's (≈ 1–3; the optimum is
    ≈ 21.4, see the design brief): a flipped policy-gradient sign or a broken update fails this."""
    from rlimm.rl.runs import evaluate

    kwargs, budget = LEARN[algo]
    model = algo("MlpPolicy", env(), seed=0, **kwargs)
    untrained = evaluate(model, gym.make(E.GRID_ID), 20, 22, seed=1_000_003, deterministic=False).mean()
    model.learn(budget)
    trained = evaluate(model, gym.make(E.GRID_ID), 20, 22, seed=1_000_003, deterministic=False).mean()
    assert untrained < 5.0
    assert trained > untrained + 8.0, (untrained, trained)


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_save_with_tensorboard_keeps_only_the_user_buffer_kwargs(algo, teacher, restriction, tmp_path):
    from stable_baselines3.common.save_util import load_from_zip_file

    model = build(algo, teacher, restriction, "imm", tensorboard_log=str(tmp_path / "tb"))
    model.learn(KWARGS[algo]["n_steps"] * 2)
    model.save(tmp_path / "m.zip")  # the logger's file handles must not be pickled
    data, _, _ = load_from_zip_file(tmp_path / "m.zip")
    assert data["rollout_buffer_kwargs"] == {}  # the teacher's view is not saved with the model
    loaded = algo.load(tmp_path / "m.zip", env=env(), teacher=teacher)
    loaded.learn(KWARGS[algo]["n_steps"], reset_num_timesteps=False)
