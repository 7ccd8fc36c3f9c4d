"""Every rlimm algorithm (REINFORCE, PPO, A2C) by behaviour, one test parametrised over all of them
(as sb3-contrib's tests/test_save_load.py): the teacher term has the right sign and scale, λ = 0 is
plain SB3 bit for bit, save → load → continue with a teacher, the documented TensorBoard output,
mismatched teachers refused, determinism, and learning itself. Then each update of A2C and PPO step
by step against the loss written out by hand (hand_losses.py; REINFORCE's is in test_reinforce.py).

``model._n_updates`` is SB3's own name for the update counter (it logs it as ``train/n_updates``)."""

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch
from hand_losses import GRID, SGD, WIDTH, Recorder, check_steps, grid, grid_model, logged, policy_at

import rlimm.envs as E
from rlimm.agents.a2c import A2C
from rlimm.agents.ppo import PPO
from rlimm.agents.reinforce import REINFORCE
from rlimm.agents.teachers import TabularTeacher
from rlimm.coefficients import Linear
from rlimm.envs.restrictions import PartitionRestriction
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


def params(model):
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()])


def build(algo, teacher, restriction, regularizer="imm", coef=0.25, seed=0, **kw):
    kwargs = {**KWARGS[algo], **kw}
    if regularizer == "none" and teacher is None:
        return algo("MlpPolicy", grid(), seed=seed, **kwargs)
    return algo(
        "MlpPolicy",
        grid(),
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
def test_teacher_term_is_lambda_times_the_kl_with_the_right_sign(algo, kind, grid_teacher):
    """One SGD step with λ = 0.37 minus the same step with λ = 0, from the same seed and rollout,
    is exactly −lr · ∇(λ · KL), with the KL computed by hand under an unequal belief; the logged
    ``train/regularizer_loss`` is λ · KL. Catches a flipped sign, a dropped λ, a dropped belief, an
    average taken after the log, or the teacher term on the wrong states."""
    lam, lr = 0.37, 0.5
    weighted = PartitionRestriction(np.arange(GRID) % WIDTH, belief=ROW_WEIGHTS)
    kw = {**ONE_SGD_STEP[algo], "learning_rate": lr, "policy_kwargs": {"optimizer_class": torch.optim.SGD}}
    n = kw["n_steps"]
    # SB3 seeds torch's global RNG at construction: build and train one model at a time.
    before = build(algo, grid_teacher, weighted, kind, coef=lam, seed=4, **kw)
    initial = copy.deepcopy(before.policy)
    before.learn(n)  # one rollout, one update
    zero = build(algo, grid_teacher, weighted, kind, coef=0.0, seed=4, **kw)
    zero.learn(n)
    # The same seed gives the same rollout: the teacher term acts only in the update.
    np.testing.assert_array_equal(before.rollout_buffer.observations, zero.rollout_buffer.observations)
    observations = before.rollout_buffer.observations.reshape(-1)
    expected = hand_regularizer(initial, kind, grid_teacher.table, observations, lam)
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
    assert before.logger.name_to_value["train/teacher_coef"] == pytest.approx(lam)


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_lambda_pulls_the_induced_policy_towards_the_teacher(algo, grid_teacher, grid_restriction):
    def induced_kl(model):
        with torch.no_grad():
            probs = model.policy.get_distribution(torch.arange(float(GRID))).distribution.probs.numpy()
        induced = probs.reshape(WIDTH, WIDTH, 4).mean(axis=0)
        p = grid_teacher.table
        return np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - np.log(induced)), 0).sum(1).mean()

    zero = build(algo, grid_teacher, grid_restriction, "imm", coef=0.0, seed=2)
    zero.learn(512)
    pulled = build(algo, grid_teacher, grid_restriction, "imm", coef=5.0, seed=2)
    pulled.learn(512)
    assert induced_kl(pulled) < 0.75 * induced_kl(zero)


# --- λ = 0 is plain SB3, bit for bit ------------------------------------------------------------------


@pytest.mark.parametrize("algo", MODEL_LIST)
@pytest.mark.parametrize("variant", ["none", "none_with_teacher", "imm_lambda0", "naive_lambda0"])
def test_lambda_zero_is_bit_identical_to_the_plain_algorithm(algo, variant, grid_teacher, grid_restriction):
    plain = PLAIN[algo]("MlpPolicy", grid(), seed=11, **KWARGS[algo])
    plain.learn(256)
    if variant == "none":
        ours = build(algo, None, None, "none", seed=11)
    elif variant == "none_with_teacher":  # the diagnostics are computed, the loss is unchanged
        ours = build(algo, grid_teacher, grid_restriction, "none", coef=0.5, seed=11)
    else:
        ours = build(algo, grid_teacher, grid_restriction, variant.split("_")[0], coef=0.0, seed=11)
    ours.learn(256)
    assert torch.equal(params(plain), params(ours))


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_same_seed_same_parameters(algo, grid_teacher, grid_restriction):
    # SB3 seeds torch's global RNG at construction: build and train one model at a time.
    a = build(algo, grid_teacher, grid_restriction, seed=7)
    a.learn(256)
    b = build(algo, grid_teacher, grid_restriction, seed=7)
    b.learn(256)
    assert torch.equal(params(a), params(b))
    c = build(algo, grid_teacher, grid_restriction, seed=8)
    c.learn(256)
    assert not torch.equal(params(a), params(c))


# --- λ schedules --------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_schedule_follows_sb3_progress_remaining(algo, grid_teacher, grid_restriction):
    n = KWARGS[algo]["n_steps"]
    seen = []

    model = build(
        algo, grid_teacher, grid_restriction, coef=Linear(0.0, 2.0)
    )  # λ: 0 at the start → 2 at the end
    original = model.current_teacher_coef

    def spy():
        seen.append(original())
        return seen[-1]

    model.current_teacher_coef = spy
    model.learn(4 * n)  # four updates; SB3 measures progress after each rollout, as for lr schedules
    assert sorted(set(seen)) == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert model.logger.name_to_value["train/teacher_coef"] == pytest.approx(2.0)

    seen.clear()
    model = build(
        algo, grid_teacher, grid_restriction, coef=lambda progress_remaining: 3.0 * progress_remaining
    )
    original = model.current_teacher_coef
    model.current_teacher_coef = spy
    model.learn(2 * n)
    assert sorted(set(seen)) == pytest.approx([0.0, 1.5])


# --- save and load ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_save_load_continue_and_load_without_teacher(algo, grid_teacher, grid_restriction, tmp_path):
    from stable_baselines3.common.save_util import load_from_zip_file

    model = build(algo, grid_teacher, grid_restriction, "naive", coef=0.5)
    model.learn(128)
    path = tmp_path / "model.zip"
    model.save(path)
    data, _, _ = load_from_zip_file(path)
    assert "teacher" not in data and "teacher_regularizer" not in data
    assert data["regularizer"] == "naive"

    loaded = algo.load(path, env=grid(), teacher=grid_teacher)
    assert torch.equal(params(loaded), params(model))
    assert loaded.teacher_regularizer.kind == "naive" and loaded.teacher is grid_teacher
    loaded.learn(128, reset_num_timesteps=False)  # training continues with the teacher
    assert not torch.equal(params(loaded), params(model))

    bare = algo.load(path, env=grid())  # no teacher: predicts, but refuses to train
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
def test_tensorboard_keys_hparams_and_run_name(algo, grid_teacher, grid_restriction, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    model = build(algo, grid_teacher, grid_restriction, "imm", coef=0.3, tensorboard_log=str(tmp_path))
    # Several iterations, and several log intervals: train/ values appear one dump later (SB3's lag).
    model.learn(KWARGS[algo]["n_steps"] * 12, log_interval=2)
    (run,) = tmp_path.iterdir()
    assert run.name == f"{algo.__name__}_imm_1"
    acc = EventAccumulator(str(run))
    acc.Reload()
    keys = set(acc.Tags()["scalars"])
    for key in [
        "train/regularizer_loss",
        "train/teacher_coef",
        "train/imm_kl",
        "train/naive_kl",
        *ALGO_KEYS[algo],
    ]:
        assert key in keys, sorted(keys)
    assert acc.Scalars("train/teacher_coef")[-1].value == pytest.approx(0.3)
    plugins = {
        v.metadata.plugin_data.plugin_name
        for f in run.iterdir()
        for event in EventFileLoader(str(f)).Load()
        for v in event.summary.value
    }
    assert "hparams" in plugins


# --- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_mismatched_teacher_refused_at_construction(algo, grid_restriction):
    three_actions = TabularTeacher(np.full((11, 3), 1 / 3), "three")
    with pytest.raises(RlimmError, match="3 actions but the environment has 4"):
        build(algo, three_actions, grid_restriction)
    five_contexts = TabularTeacher(np.full((5, 4), 0.25), "five")
    with pytest.raises(RlimmError, match="5 visible contexts"):
        build(algo, five_contexts, grid_restriction)


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
def test_bad_arguments(algo, grid_restriction, kwargs, match):
    with pytest.raises(RlimmError, match=match):
        algo("MlpPolicy", grid(), restriction=grid_restriction, **kwargs)


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_a_policy_without_distributions_is_refused(algo):
    from stable_baselines3.common.policies import ActorCriticPolicy

    with pytest.raises(RlimmError, match="cannot return its action distribution"):
        algo(ActorCriticPolicy, grid())


# --- each update, step by step (found by mutation testing) --------------------------------------------


@pytest.mark.parametrize(("kind", "normalize", "clip"), [("imm", False, 1e9), ("naive", True, 0.05)])
def test_a2c_update_is_the_hand_loss(grid_teacher, grid_restriction, kind, normalize, clip):
    lam = 0.37
    model = grid_model(
        A2C,
        grid_teacher,
        grid_restriction,
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
    (first, second) = check_steps(model, rec, grid_teacher, lam, kind, None if clip > 1 else clip)
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
    grid_teacher, grid_restriction, kind, n_steps, normalize, clip_vf, clip, value_bias
):
    """Two epochs over 8 to 10 transitions in minibatches of 4, 4 and the rest: the ratio moves away
    from one in the later minibatches (the clipping acts); a minibatch of one is not normalised, one
    of two is. The value clip acts upwards from values near zero, downwards from values far above
    the returns (``value_bias``). With exact induction the KL that is not optimised is reported as the
    mean over every minibatch."""
    lam = 0.37
    model = grid_model(
        PPO,
        grid_teacher,
        grid_restriction,
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
    terms = check_steps(model, rec, grid_teacher, lam, kind, None if clip > 1 else clip)
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


def test_ppo_stops_an_update_when_the_kl_passes_one_and_a_half_times_target_kl(
    grid_teacher, grid_restriction, capsys
):
    """Early stopping: the minibatch whose approximate KL first exceeds 1.5 · target_kl is not
    applied, the remaining epochs are skipped, and verbose runs say so."""
    kw = {"n_steps": 16, "batch_size": 4, "n_epochs": 3, "learning_rate": 0.5, "max_grad_norm": 1e9}
    free = grid_model(PPO, grid_teacher, grid_restriction, "imm", 0.0, policy_kwargs=SGD, **kw)
    free_rec = Recorder(free)
    free.learn(16)
    kls = [t["approx_kl"] for t in check_steps(free, free_rec, grid_teacher, 0.0, "imm")]
    assert kls[0] == pytest.approx(0.0, abs=1e-7)  # the first minibatch: the rollout's own policy
    stop = 3  # the last minibatch of the first epoch
    assert max(kls[:stop]) < 0.9 * kls[stop]
    target = 0.99 * kls[stop] / 1.5
    stopped = grid_model(
        PPO, grid_teacher, grid_restriction, "imm", 0.0, policy_kwargs=SGD, target_kl=target, verbose=1, **kw
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
    at_tie = grid_model(
        PPO, grid_teacher, grid_restriction, "imm", 0.0, policy_kwargs=SGD, target_kl=tie, **kw
    )
    rec = Recorder(at_tie)
    at_tie.learn(16)
    assert len(rec.grads) > stop


def test_ppo_counts_as_clipped_only_ratios_strictly_beyond_the_clip_range(grid_teacher, grid_restriction):
    """The first minibatch is scored by the policy that collected it: every ratio is exactly one, and
    none counts as clipped, even with a clip range of zero."""
    model = grid_model(
        PPO, grid_teacher, grid_restriction, "imm", 0.0, n_steps=16, batch_size=16, n_epochs=1, clip_range=0.0
    )
    model.learn(16)
    assert logged(model, "train/clip_fraction") == 0.0


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


def test_the_buffer_records_the_teachers_view_of_every_environment(grid_teacher, grid_restriction):
    """Two environments: each step records the context and the teacher's probabilities of both."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    model = A2C(
        "MlpPolicy",
        DummyVecEnv([grid, grid]),
        n_steps=5,
        regularizer="imm",
        teacher=grid_teacher,
        restriction=grid_restriction,
        teacher_coef=0.5,
        seed=0,
    )
    model.learn(10)
    buf = model.rollout_buffer  # flattened by the update: (n_steps · n_envs, …)
    contexts = grid_restriction.visible(buf.observations.reshape(-1).astype(int))
    assert len(set(contexts.tolist())) > 1
    np.testing.assert_array_equal(buf.view_data["contexts"].reshape(-1), contexts)
    np.testing.assert_array_equal(
        buf.view_data["teacher_params"].reshape(-1, 4), grid_teacher.table[contexts].astype(np.float32)
    )


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
    from rlimm.rl.environments import evaluate

    kwargs, budget = LEARN[algo]
    model = algo("MlpPolicy", grid(), seed=0, **kwargs)
    untrained = evaluate(model, gym.make(E.GRID_ID), 20, 22, seed=1_000_003, deterministic=False).mean()
    model.learn(budget)
    trained = evaluate(model, gym.make(E.GRID_ID), 20, 22, seed=1_000_003, deterministic=False).mean()
    assert untrained < 5.0
    assert trained > untrained + 8.0, (untrained, trained)


@pytest.mark.parametrize("algo", MODEL_LIST)
def test_save_with_tensorboard_keeps_only_the_user_buffer_kwargs(
    algo, grid_teacher, grid_restriction, tmp_path
):
    from stable_baselines3.common.save_util import load_from_zip_file

    model = build(algo, grid_teacher, grid_restriction, "imm", tensorboard_log=str(tmp_path / "tb"))
    model.learn(KWARGS[algo]["n_steps"] * 2)
    model.save(tmp_path / "m.zip")  # the logger's file handles must not be pickled
    data, _, _ = load_from_zip_file(tmp_path / "m.zip")
    assert data["rollout_buffer_kwargs"] == {}  # the teacher's view is not saved with the model
    loaded = algo.load(tmp_path / "m.zip", env=grid(), teacher=grid_teacher)
    loaded.learn(KWARGS[algo]["n_steps"], reset_num_timesteps=False)


def test_the_algorithms_are_exported_by_the_package():
    import rlimm.agents as agents
    from rlimm.agents import A2C as A2C_
    from rlimm.agents import PPO as PPO_
    from rlimm.agents import REINFORCE as REINFORCE_
    from rlimm.agents import SAC
    from rlimm.agents.sac import SAC as SAC_

    assert (A2C_, PPO_, REINFORCE_, SAC) == (A2C, PPO, REINFORCE, SAC_)
    assert {"A2C", "PPO", "REINFORCE", "SAC", "InductionSettings", "TeacherRegularizer"} <= set(
        agents.__all__
    )
