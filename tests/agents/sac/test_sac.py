"""SAC with the teacher regulariser, on Pendulum-v1 with the angular velocity hidden: λ = 0 is plain SB3
SAC bit for bit, the teacher term is λ times the KL on the actor's pre-squash Gaussian with the right sign,
sampled induction draws its hidden parts from the sampled minibatch, the teacher's view is recorded from
raw observations and follows each sampled transition, save → load → continue, TensorBoard, refusals."""

import copy
import inspect
import warnings

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
from stable_baselines3.her import HerReplayBuffer

from rlimm.agents.common.replay_buffers import (
    NStepTeacherReplayBuffer,
    TeacherReplayBuffer,
    TeacherReplayBufferSamples,
)
from rlimm.agents.sac import SAC
from rlimm.agents.teachers import gaussian_policy_teacher
from rlimm.coefficients import Linear
from rlimm.envs import VisibleObservation
from rlimm.envs.restrictions import restriction_for
from rlimm.errors import RlimmError

ENV = "Pendulum-v1"
#: learning starts after 50 steps; 150 steps are then 100 gradient steps on minibatches of 32.
SMALL = {"learning_starts": 50, "batch_size": 32, "buffer_size": 1_000}
TEACHER_ARGS = ("regularizer", "teacher", "restriction", "teacher_coef", "induction", "imm_batch_size")


@pytest.fixture(scope="module")
def restriction():
    return restriction_for(gym.make(ENV), [0, 1])  # cos θ, sin θ visible; θ̇ hidden


@pytest.fixture(scope="module")
def teacher(restriction):
    """A SAC policy on the visible part (untrained: its own seed makes it differ from the learner)."""
    visible = VisibleObservation(gym.make(ENV), restriction)
    model = sb3.SAC("MlpPolicy", visible, seed=1, buffer_size=10)
    return gaussian_policy_teacher(model, restriction, gym.make(ENV).action_space, "sac-visible")


def build(teacher, restriction, regularizer="imm", coef=0.25, seed=0, env=None, **kw):
    kwargs = {**SMALL, **kw}
    env = env if env is not None else gym.make(ENV)
    if regularizer == "none" and teacher is None:
        return SAC("MlpPolicy", env, seed=seed, **kwargs)
    return SAC(
        "MlpPolicy",
        env,
        seed=seed,
        regularizer=regularizer,
        teacher=teacher,
        restriction=restriction,
        teacher_coef=coef,
        **kwargs,
    )


def state(model):
    """Every learned number: actor, critics, target critics, and the entropy coefficient."""
    tensors = [p.detach().flatten() for p in model.policy.state_dict().values()]
    if model.log_ent_coef is not None:
        tensors.append(model.log_ent_coef.detach().flatten())
    return torch.cat([t.float() for t in tensors])


def actor_params(actor):
    return torch.cat([p.detach().flatten() for p in actor.parameters()])


def record_samples(model):
    """Keep every minibatch the replay buffer hands out."""
    seen = []
    original = model.replay_buffer.sample

    def sample(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out)
        return out

    model.replay_buffer.sample = sample
    return seen


# --- the constructor ---------------------------------------------------------------------------------


def test_constructor_lists_sb3s_arguments_in_order_with_sb3s_defaults():
    ours = inspect.signature(SAC.__init__).parameters
    theirs = inspect.signature(sb3.SAC.__init__).parameters
    assert [n for n in ours if n not in TEACHER_ARGS] == list(theirs)
    for name, parameter in theirs.items():
        assert ours[name].default == parameter.default, name
    assert all(name in (SAC.__doc__ or "") for name in ours if name != "self")


# --- λ = 0 is plain SB3, bit for bit ------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_sac():
    plain = sb3.SAC("MlpPolicy", gym.make(ENV), seed=11, **SMALL)
    plain.learn(150)
    return state(plain)


@pytest.mark.parametrize("variant", ["none", "none_with_teacher", "imm_lambda0", "naive_lambda0"])
def test_lambda_zero_is_bit_identical_to_plain_sac(variant, plain_sac, teacher, restriction):
    if variant == "none":
        ours = build(None, None, "none", seed=11)
    elif variant == "none_with_teacher":  # the diagnostics are computed, the loss is unchanged
        ours = build(teacher, restriction, "none", coef=0.5, seed=11)
    else:
        ours = build(teacher, restriction, variant.split("_")[0], coef=0.0, seed=11)
    ours.learn(150)
    assert torch.equal(plain_sac, state(ours))
    if variant != "none":
        assert isinstance(ours.replay_buffer, TeacherReplayBuffer)
        assert ours.logger.name_to_value["train/naive_kl"] > 0  # the regulariser did run


def test_two_envs_keep_sb3s_random_stream(teacher, restriction):
    """With several environments the buffer draws each sample's environment as SB3 does (and keeps
    it with the samples): the random stream, hence training, is SB3's."""
    plain = sb3.SAC("MlpPolicy", make_vec_env(ENV, n_envs=2, seed=3), seed=3, **SMALL)
    plain.learn(100)
    ours = build(teacher, restriction, "imm", coef=0.0, seed=3, env=make_vec_env(ENV, n_envs=2, seed=3))
    ours.learn(100)
    assert torch.equal(state(plain), state(ours))


# --- the teacher term: sign and scale ----------------------------------------------------------------


def hand_kl(actor, batch, kind):
    """KL(teacher ‖ policy) written out, independently of rlimm's code: the actor's Gaussian before its
    tanh; for imm the induced mixture over every hidden part of the minibatch (knn with k = batch size),
    with Gaussian kernel weights on standardised visible distances (bandwidth: the largest), moment
    matched to one Gaussian."""
    obs = batch.observations
    t_mean, t_log_std = batch.teacher_params[:, :1], batch.teacher_params[:, 1:]
    if kind == "naive":
        mean, log_std, _ = actor.get_action_dist_params(obs)
        var = torch.exp(2 * log_std)
    else:
        b = obs.shape[0]
        visible = obs[:, :2]
        z = (visible - visible.mean(0)) / visible.std(0)
        dist = torch.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))  # (b, b)
        w = torch.exp(-0.5 * (dist / dist.max(dim=1, keepdim=True).values) ** 2)
        w = (w / w.sum(1, keepdim=True)).unsqueeze(-1)  # (b, b, 1)
        synthetic = torch.cat(
            [visible[:, None, :].expand(b, b, 2), obs[None, :, 2:].expand(b, b, 1)], dim=-1
        )  # state i's visible part with state j's hidden part
        means, log_stds, _ = actor.get_action_dist_params(synthetic.reshape(b * b, 3))
        means, log_stds = means.reshape(b, b, 1), log_stds.reshape(b, b, 1)
        mean = (w * means).sum(1)
        var = (w * (torch.exp(2 * log_stds) + (means - mean[:, None, :]) ** 2)).sum(1)
        log_std = 0.5 * torch.log(var)
    kl = log_std - t_log_std + (torch.exp(2 * t_log_std) + (t_mean - mean) ** 2) / (2 * var) - 0.5
    return kl.sum(-1).mean()


@pytest.mark.parametrize("kind", ["naive", "imm"])
def test_teacher_term_is_lambda_times_the_kl_with_the_right_sign(kind, teacher, restriction):
    """One SGD step of the actor with λ = 0.37 minus the same step with λ = 0, from the same seed and
    minibatch, is exactly −lr · ∇(λ · KL), the KL computed by hand from the minibatch's recorded teacher
    Gaussian and the actor's pre-squash Gaussian. Catches a flipped sign, a dropped λ, the KL after the
    squash, the teacher's view of other transitions, or hidden parts drawn from elsewhere."""
    lam, lr, b = 0.37, 0.5, 32
    kw = {"learning_rate": lr, "policy_kwargs": {"optimizer_class": torch.optim.SGD}}
    if kind == "imm":
        # Every row of the minibatch is a neighbour (no exclusion of the own episode's steps).
        kw |= {"induction": {"method": "knn", "k": b, "estimator": "moment", "exclude": None}}
    before = build(teacher, restriction, kind, coef=lam, seed=4, **kw)
    initial = copy.deepcopy(before.actor)
    batches = record_samples(before)
    computed = []
    original = before.regularizer_output

    def spy(batch, distribution, pool=None, diagnostics=True, optimise=True):
        computed.append((batch, pool))
        return original(batch, distribution, pool, diagnostics, optimise)

    before.regularizer_output = spy
    before.learn(SMALL["learning_starts"] + 1)  # one gradient step
    zero = build(teacher, restriction, kind, coef=0.0, seed=4, **kw)
    zero.learn(SMALL["learning_starts"] + 1)

    (batch,) = batches
    assert isinstance(batch, TeacherReplayBufferSamples)
    # The recorded view is the teacher's Gaussian at each sampled transition's visible part.
    mean, log_std = teacher.gaussian(restriction.visible(batch.observations.numpy()))
    np.testing.assert_allclose(batch.teacher_params.numpy(), np.concatenate([mean, log_std], 1), atol=1e-6)
    # The pool of hidden parts is the minibatch itself.
    ((seen, pool),) = computed
    assert seen is batch
    if kind == "imm":
        assert pool.observations is batch.observations and pool.rows == b
        assert torch.equal(batch.indices, torch.arange(b))

    expected = lam * hand_kl(initial, batch, kind)
    grads = torch.autograd.grad(expected, list(initial.parameters()), allow_unused=True)
    step = torch.cat(
        [
            (-lr * g if g is not None else torch.zeros_like(p)).flatten()
            for g, p in zip(grads, initial.parameters(), strict=True)
        ]
    )
    torch.testing.assert_close(
        actor_params(before.actor) - actor_params(zero.actor), step, atol=2e-6, rtol=1e-4
    )
    assert step.abs().max() > 1e-3  # the term is not vanishingly small here
    # Only the actor is regularised: the critics took the same step.
    critic = [p.detach().flatten() for p in before.critic.parameters()]
    assert torch.equal(torch.cat(critic), torch.cat([p.detach().flatten() for p in zero.critic.parameters()]))
    logged = before.logger.name_to_value["train/regularizer_loss"]
    assert logged == pytest.approx(expected.item(), rel=1e-4)
    assert before.logger.name_to_value["train/teacher_coef"] == pytest.approx(lam)


def test_knn_draws_hidden_parts_from_the_sampled_batch_and_lambda_follows_progress(teacher, restriction):
    """Every synthetic state the actor is evaluated at is a sampled state's visible part with the hidden
    part of a state of the same minibatch; λ follows SB3's ``progress_remaining``."""
    schedule = lambda progress_remaining: 3.0 * progress_remaining  # noqa: E731
    model = build(teacher, restriction, "imm", coef=schedule, induction={"method": "knn", "k": 4})
    evaluated, lams = [], []
    at, compute = model.action_params, model.regularizer_output

    def spy_at(obs):
        evaluated.append(obs.detach().clone())
        return at(obs)

    def spy_compute(batch, distribution, pool=None, diagnostics=True, optimise=True):
        evaluated.clear()
        out = compute(batch, distribution, pool, diagnostics, optimise)
        # _current_progress_remaining: SB3's own name for the progress its schedules are read at.
        lam = model.current_teacher_coef()
        lams.append((lam, model._current_progress_remaining))
        assert optimise == (lam > 0)
        if not optimise and not diagnostics:  # nothing to optimise, nothing to diagnose: no forward
            assert not evaluated
            return out
        (synthetic,) = evaluated
        observations = batch.observations
        for row in synthetic:
            assert torch.isclose(row[2], observations[:, 2]).any()  # a hidden part of the minibatch
        visible_rows = synthetic[:, :2].reshape(observations.shape[0], -1, 2)
        assert torch.equal(visible_rows, observations[:, None, :2].expand_as(visible_rows))
        return out

    model.action_params, model.regularizer_output = spy_at, spy_compute
    model.learn(60)
    assert len(lams) == 10
    for lam, progress in lams:
        assert lam == pytest.approx(3.0 * progress)
    assert lams[0][0] == pytest.approx(3.0 * (1 - 51 / 60)) and lams[-1][0] == 0.0  # progress after the step
    values = model.logger.name_to_value
    assert 1.0 <= values["train/induction_ess"] <= 4.0 and values["train/neighbour_distance"] > 0

    scheduled = build(teacher, restriction, "naive", coef=Linear(0.0, 2.0))
    scheduled.learn(60)
    assert scheduled.logger.name_to_value["train/teacher_coef"] == pytest.approx(2.0)  # λ at progress 0


def test_the_kl_that_is_not_optimised_is_diagnosed_once_per_hundred_gradient_steps(teacher, restriction):
    """SAC updates every step: with sampled induction the diagnostic KL (imm's, for a naive run: a
    batch × k forward) is computed on the first gradient step of each 100, and logged."""
    model = build(teacher, restriction, "naive", induction={"method": "knn", "k": 4})
    flags, compute = [], model.regularizer_output

    def spy_compute(batch, distribution, pool=None, diagnostics=True, optimise=True):
        flags.append(diagnostics)
        return compute(batch, distribution, pool, diagnostics, optimise)

    model.regularizer_output = spy_compute
    model.learn(SMALL["learning_starts"] + 250)
    assert len(flags) == 250
    assert [i for i, f in enumerate(flags) if f] == [0, 100, 200]
    assert model.logger.name_to_value["train/imm_kl"] > 0


def test_imm_is_evaluated_on_the_first_rows_with_hidden_parts_from_the_whole_minibatch(teacher, restriction):
    """``imm_batch_size`` rows carry the IMM term (the teacher's Gaussians and the actor's of those rows);
    their hidden parts are drawn from all ``batch_size`` rows. Naive keeps every row."""
    seen = []

    def spy_on(model, kind):
        compute = model.regularizer_output

        def spy(batch, distribution, pool=None, diagnostics=True, optimise=True):
            mean = distribution.distribution.loc
            pool_rows = len(pool.observations)
            seen.append((kind, len(batch.observations), len(batch.teacher_params), len(mean), pool_rows))
            # the minibatch's head
            assert torch.equal(batch.observations, pool.observations[: len(batch.observations)])
            return compute(batch, distribution, pool, diagnostics, optimise)

        model.regularizer_output = spy

    for kind in ["imm", "naive"]:
        model = build(teacher, restriction, kind, induction={"method": "knn", "k": 4}, imm_batch_size=8)
        spy_on(model, kind)
        model.learn(SMALL["learning_starts"] + 3)
    assert set(seen) == {("imm", 8, 8, 8, 32), ("naive", 32, 32, 32, 32)}
    with pytest.raises(RlimmError, match=r"^imm_batch_size must be a whole number >= 1 or None, got 0$"):
        build(teacher, restriction, "imm", imm_batch_size=0)


# --- what the teacher sees ---------------------------------------------------------------------------


def test_the_view_is_recorded_from_raw_observations_under_vecnormalize(teacher, restriction):
    venv = VecNormalize(make_vec_env(ENV, n_envs=2, seed=0), norm_obs=True, norm_reward=False, training=False)
    # Fixed statistics, so that sampled observations can be unnormalised exactly.
    venv.obs_rms.mean = np.array([0.3, -0.4, 1.0])
    venv.obs_rms.var = np.array([0.04, 0.09, 4.0])
    model = build(teacher, restriction, "imm", env=venv, learning_starts=1_000)
    model.learn(60)  # 30 steps of 2 environments, no update
    buffer = model.replay_buffer
    stored = buffer.observations[: buffer.pos].reshape(-1, 3)
    np.testing.assert_allclose(stored[:, 0] ** 2 + stored[:, 1] ** 2, 1.0, atol=1e-5)  # raw: cos² + sin²
    model.update_teacher_view()  # what train() does first: the view of the new transitions
    batch = buffer.sample(64, env=venv)
    recorded = buffer.view_data["teacher_params"][: buffer.pos].reshape(-1, 2)
    mean, log_std = teacher.gaussian(restriction.visible(stored))
    np.testing.assert_allclose(recorded, np.concatenate([mean, log_std], 1), atol=1e-6)
    # Each sampled transition carries its own view (the environment index is the one SB3 drew).
    normalised = batch.observations.numpy()
    raw = venv.unnormalize_obs(normalised)
    assert np.abs(normalised).max() < venv.clip_obs
    mean, log_std = teacher.gaussian(restriction.visible(raw))
    np.testing.assert_allclose(batch.teacher_params.numpy(), np.concatenate([mean, log_std], 1), atol=1e-4)
    wrong_mean, _ = teacher.gaussian(restriction.visible(normalised))
    assert np.abs(batch.teacher_params.numpy()[:, :1] - wrong_mean).max() > 1e-3


def test_a_ppo_teacher_is_refused(restriction):
    visible = VisibleObservation(gym.make(ENV), restriction)
    ppo_teacher = gaussian_policy_teacher(sb3.PPO("MlpPolicy", visible, n_steps=64, seed=0), restriction)
    assert not ppo_teacher.squashed
    with pytest.raises(RlimmError, match=r"teacher 'ppo-gaussian' .*squashed=False.* SAC") as err:
        build(ppo_teacher, restriction, "naive")
    assert "\n" not in str(err.value)


def test_replay_buffers_that_cannot_record_the_view_are_refused(teacher, restriction):
    with pytest.raises(RlimmError, match="HerReplayBuffer cannot record what the teacher sees"):
        build(teacher, restriction, replay_buffer_class=HerReplayBuffer)
    with pytest.raises(RlimmError, match="does not support gSDE"):
        build(teacher, restriction, use_sde=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nstep = build(teacher, restriction, n_steps=3, gamma=0.9)
    assert not [w for w in caught if "is ignored" in str(w.message)]  # n_steps is honoured
    assert isinstance(nstep.replay_buffer, NStepTeacherReplayBuffer)
    assert isinstance(nstep.replay_buffer, NStepReplayBuffer)
    assert (nstep.replay_buffer.n_steps, nstep.replay_buffer.gamma) == (3, 0.9)
    assert nstep.replay_buffer_class is None and nstep.replay_buffer_kwargs == {}  # the user's, as saved


# --- save and load ------------------------------------------------------------------------------------


def test_save_load_continue_and_load_without_teacher(teacher, restriction, tmp_path):
    from stable_baselines3.common.save_util import load_from_zip_file

    model = build(teacher, restriction, "imm", coef=0.5)
    model.learn(70)
    path = tmp_path / "model.zip"
    model.save(path)
    data, _, _ = load_from_zip_file(path)
    assert "teacher" not in data and "teacher_regularizer" not in data
    assert data["regularizer"] == "imm" and data["replay_buffer_kwargs"] == {}

    loaded = SAC.load(path, env=gym.make(ENV), teacher=teacher)
    assert torch.equal(state(loaded), state(model))
    assert loaded.teacher_regularizer.kind == "imm" and loaded.teacher is teacher
    loaded.learn(20, reset_num_timesteps=False)  # training continues with the teacher
    assert not torch.equal(state(loaded), state(model))
    assert loaded.logger.name_to_value["train/imm_kl"] > 0

    # A loaded replay buffer's view is computed again with the loading model's teacher.
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    loaded.update_teacher_view()
    batch = loaded.replay_buffer.sample(8)
    mean, log_std = teacher.gaussian(restriction.visible(batch.observations.numpy()))
    np.testing.assert_allclose(batch.teacher_params.numpy(), np.concatenate([mean, log_std], 1), atol=1e-6)

    bare = SAC.load(path, env=gym.make(ENV))  # no teacher: predicts, but refuses to train
    action, _ = bare.predict(np.array([1.0, 0.0, 0.0], dtype=np.float32), deterministic=True)
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0
    with pytest.raises(RlimmError, match="no teacher"):
        bare.learn(SMALL["learning_starts"] + 2)


# --- TensorBoard and the registry ---------------------------------------------------------------------


def test_tensorboard_keys_hparams_and_run_name(teacher, restriction, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    env = gym.make(ENV, max_episode_steps=25)  # SAC writes its logs at the end of episodes
    model = build(teacher, restriction, "imm", coef=0.3, env=env, tensorboard_log=str(tmp_path))
    model.learn(125, log_interval=1)
    (run,) = tmp_path.iterdir()
    assert run.name == "SAC_imm_1"
    acc = EventAccumulator(str(run))
    acc.Reload()
    keys = set(acc.Tags()["scalars"])
    for key in [
        "train/regularizer_loss",
        "train/teacher_coef",
        "train/imm_kl",
        "train/naive_kl",
        "train/induction_ess",
        "train/neighbour_distance",
        "train/actor_loss",
        "train/critic_loss",
        "train/ent_coef",
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
    hparams = model.hparams()
    assert hparams["algorithm"] == "SAC" and hparams["batch_size"] == 32 and hparams["train_freq"] == "1 step"


def test_registry_knows_sac():
    from rlimm.agents.registry import accepted_kwargs, algorithm_class, check_kwargs, steps_per_update

    assert algorithm_class("sac") is SAC
    assert {"buffer_size", "learning_starts", "imm_batch_size"} <= set(accepted_kwargs("sac"))
    assert "induction" not in accepted_kwargs("sac")  # the config's induction section sets it
    check_kwargs("sac", {"batch_size": 64, "tau": 0.01})
    with pytest.raises(RlimmError, match="not an argument of sac"):
        check_kwargs("sac", {"n_epochs": 2})
    assert steps_per_update("sac", {}) == 1
    assert steps_per_update("sac", {"train_freq": 4, "n_steps": 3}) == 4  # n_steps: n-step returns
    assert steps_per_update("sac", {"train_freq": (8, "step")}) == 8
    with pytest.raises(RlimmError, match="train_freq"):
        steps_per_update("sac", {"train_freq": (2, "episode")})
    assert steps_per_update("ppo", {"n_steps": 64}) == 64


@pytest.mark.parametrize("n_steps", [1, 3])
def test_replay_samples_record_the_environment_each_came_from_and_match_sb3s(n_steps):
    """The buffer draws each sample's environment itself (SB3's call, in SB3's order) and keeps it with
    the samples: the samples are SB3's number for number, and each row is its environment's."""
    obs_space = gym.spaces.Box(-10.0, 10.0, (2,))
    act_space = gym.spaces.Box(-1.0, 1.0, (1,))
    ours_class, theirs_class = (
        (TeacherReplayBuffer, ReplayBuffer) if n_steps == 1 else (NStepTeacherReplayBuffer, NStepReplayBuffer)
    )
    extra = {} if n_steps == 1 else {"n_steps": n_steps, "gamma": 0.9}
    ours = ours_class(20, obs_space, act_space, n_envs=3, columns={}, **extra)
    theirs = theirs_class(20, obs_space, act_space, n_envs=3, **extra)
    for step in range(12):
        obs = np.array([[env, step] for env in range(3)], dtype=np.float32)  # each row names its env
        for buffer in (ours, theirs):
            buffer.add(obs, obs + 1, np.zeros((3, 1)), np.ones(3), np.zeros(3), [{}, {}, {}])
    np.random.seed(7)
    mine = ours.sample(16)
    np.random.seed(7)
    sb3s = theirs.sample(16)
    for field in ("observations", "actions", "next_observations", "dones", "rewards"):
        assert torch.equal(getattr(mine, field), getattr(sb3s, field)), field
    assert mine.env_indices.shape == (16,)
    np.testing.assert_array_equal(mine.observations[:, 0].numpy(), mine.env_indices)


def test_a_model_saved_by_stock_sb3_trains_with_the_regulariser_after_loading(teacher, restriction, tmp_path):
    """SAC's policies are SB3's plus ``action_params`` (the actor's pre-squash Gaussian): a zip written by
    stock SB3 (or by rlimm before SAC had its own policies) holds SB3's policy class; loading it gives
    rlimm's, with the same numbers, and it trains with a teacher. A SAC policy without ``action_params``
    is refused with a teacher, accepted without one."""
    from stable_baselines3.sac.policies import SACPolicy

    from rlimm.agents.sac.policies import ParamsReturningSACPolicy

    stock = sb3.SAC("MlpPolicy", ENV, seed=0, **SMALL)
    stock.save(tmp_path / "stock.zip")
    loaded = SAC.load(
        tmp_path / "stock.zip",
        env=gym.make(ENV),
        teacher=teacher,
        restriction=restriction,
        regularizer="naive",
    )
    assert type(loaded.policy) is ParamsReturningSACPolicy
    assert torch.equal(state(loaded), state(stock))
    obs = torch.as_tensor(gym.make(ENV).reset(seed=0)[0])[None]
    mean, log_std = loaded.action_params(obs)
    want_mean, want_log_std, _ = stock.actor.get_action_dist_params(obs)
    assert torch.equal(mean, want_mean) and torch.equal(log_std, want_log_std)
    loaded.learn(SMALL["learning_starts"] + 5)
    assert loaded.logger.name_to_value["train/naive_kl"] > 0

    class Plain(SACPolicy):  # a user's subclass of SB3's policy: no action_params
        pass

    assert type(SAC(Plain, ENV, **SMALL).policy) is Plain
    with pytest.raises(RlimmError, match=r"^policy Plain cannot give the actor's Gaussian to the teacher"):
        SAC(Plain, ENV, regularizer="naive", teacher=teacher, restriction=restriction, **SMALL)
