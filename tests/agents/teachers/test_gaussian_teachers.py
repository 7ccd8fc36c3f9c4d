"""Restricted teachers for continuous actions: SB3 Gaussian policies on the visible part, the induced
expert, and their files."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch
from gymnasium import spaces

from rlimm.agents.teachers import (
    ActionFamily,
    PolicyTeacher,
    Teacher,
    VisibleMLP,
    fit_induced_expert,
    gaussian_policy_teacher,
    load_gaussian_teacher,
    load_teacher,
    save_gaussian_teacher,
    save_teacher,
    train_restricted_gaussian_teacher,
)
from rlimm.envs import VisibleObservation
from rlimm.envs.restrictions import restriction_for
from rlimm.errors import RlimmError

PPO_KWARGS = {"n_steps": 64, "batch_size": 32, "n_epochs": 1, "policy_kwargs": {"log_std_init": -0.3}}
SAC_KWARGS = {"learning_starts": 32, "batch_size": 32, "buffer_size": 1_000}


@pytest.fixture(scope="module")
def pendulum():
    """Pendulum-v1 with the angular velocity hidden, and a batch of visible parts of random states."""
    env = gym.make("Pendulum-v1")
    restriction = restriction_for(env, [0, 1])
    env.observation_space.seed(0)
    full = np.stack([env.observation_space.sample() for _ in range(16)])
    return env, restriction, restriction.visible(full)


@pytest.fixture(scope="module")
def ppo_teacher(pendulum):
    env, restriction, _ = pendulum
    return train_restricted_gaussian_teacher(env, restriction, "ppo", 128, seed=0, algo_kwargs=PPO_KWARGS)


@pytest.fixture(scope="module")
def sac_teacher(pendulum):
    env, restriction, _ = pendulum
    return train_restricted_gaussian_teacher(env, restriction, "sac", 64, seed=0, algo_kwargs=SAC_KWARGS)


def test_ppo_teacher_gives_the_policys_own_gaussian(pendulum, ppo_teacher):
    env, restriction, visible = pendulum
    teacher, model = ppo_teacher
    assert isinstance(teacher, Teacher) and teacher.family is ActionFamily.GAUSSIAN
    assert model.observation_space.shape == (2,)  # trained on cos θ, sin θ only
    assert (teacher.action_dim, teacher.squashed) == (1, False)
    np.testing.assert_array_equal(teacher.low, [-2.0])
    np.testing.assert_array_equal(teacher.high, [2.0])
    mean, log_std = teacher.gaussian(visible)
    assert mean.shape == log_std.shape == (16, 1) and mean.dtype == log_std.dtype == np.float32
    with torch.no_grad():
        dist = model.policy.get_distribution(torch.as_tensor(visible)).distribution
    np.testing.assert_allclose(mean, dist.loc.numpy(), atol=1e-6)
    np.testing.assert_allclose(log_std, dist.scale.log().numpy(), atol=1e-6)
    assert np.ptp(mean) > 0  # a mean per state, not a constant
    # acting clips the raw Gaussian, as SB3's predict does
    np.testing.assert_allclose(
        teacher.act(visible, np.random.default_rng(0), deterministic=True),
        model.predict(visible, deterministic=True)[0],
        atol=1e-6,
    )
    teacher.check_compatible(restriction, env.action_space)


def test_a2c_teacher_gives_the_policys_own_gaussian(pendulum):
    env, restriction, visible = pendulum
    teacher, model = train_restricted_gaussian_teacher(
        env, restriction, "a2c", 16, algo_kwargs={"n_steps": 8}
    )
    with torch.no_grad():
        dist = model.policy.get_distribution(torch.as_tensor(visible)).distribution
    mean, log_std = teacher.gaussian(visible)
    np.testing.assert_allclose(mean, dist.loc.numpy(), atol=1e-6)
    np.testing.assert_allclose(log_std, dist.scale.log().numpy(), atol=1e-6)
    assert not teacher.squashed


def test_sac_teacher_gives_the_actors_pre_squash_gaussian(pendulum, sac_teacher):
    env, restriction, visible = pendulum
    teacher, model = sac_teacher
    assert teacher.squashed and teacher.action_dim == 1
    assert teacher.family is ActionFamily.SQUASHED_GAUSSIAN
    mean, log_std = teacher.gaussian(visible)
    with torch.no_grad():
        own_mean, own_log_std, _ = model.policy.actor.get_action_dist_params(torch.as_tensor(visible))
    np.testing.assert_allclose(mean, own_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(log_std, own_log_std.numpy(), atol=1e-6)
    assert np.ptp(log_std) > 0  # SAC's log σ depends on the state
    # acting squashes: low + (tanh μ + 1)(high − low)/2 is SAC's deterministic action
    np.testing.assert_allclose(
        teacher.act(visible, np.random.default_rng(0), deterministic=True),
        model.predict(visible, deterministic=True)[0],
        atol=1e-5,
    )
    teacher.check_compatible(restriction, env.action_space)


def test_the_teacher_is_a_frozen_copy(pendulum):
    env, restriction, visible = pendulum
    teacher, model = train_restricted_gaussian_teacher(env, restriction, "ppo", 64, algo_kwargs=PPO_KWARGS)
    before = teacher.gaussian(visible)
    model.learn(128)  # the source model moves on ...
    with torch.no_grad():
        now = model.policy.get_distribution(torch.as_tensor(visible)).distribution.loc.numpy()
    assert not np.allclose(now, before[0])
    after = teacher.gaussian(visible)  # ... the teacher does not
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert teacher.policy is not model.policy
    assert not any(p.requires_grad for p in teacher.policy.parameters())
    assert not teacher.policy.training and teacher.policy.optimizer is None
    # it pickles to worker processes, after use too
    again = pickle.loads(pickle.dumps(teacher))
    np.testing.assert_array_equal(again.gaussian(visible)[0], before[0])


@pytest.mark.parametrize(
    ("action_space", "match"),
    [
        (spaces.Box(-2.0, 2.0, (2,), np.float32), r"has 1 action dimension\(s\) but the environment has 2"),
        (
            spaces.Box(-1.0, 1.0, (1,), np.float32),
            r"bounds low \[-2\], high \[2\], but the environment has low \[-1\]",
        ),
        (spaces.Discrete(3), r"needs a Box action space, got Discrete\(3\)"),
    ],
)
def test_check_compatible_refuses_other_actions(pendulum, ppo_teacher, action_space, match):
    _, restriction, _ = pendulum
    with pytest.raises(RlimmError, match=match) as err:
        ppo_teacher[0].check_compatible(restriction, action_space)
    assert "\n" not in str(err.value)


def test_check_compatible_refuses_another_visible_part(pendulum, ppo_teacher):
    env, _, _ = pendulum
    everything = restriction_for(env, None)
    with pytest.raises(RlimmError, match=r"observes Box\(2,\) but the restriction shows Box\(3,\)") as err:
        ppo_teacher[0].check_compatible(everything, env.action_space)
    assert "\n" not in str(err.value)
    full_state = sb3.PPO("MlpPolicy", env, n_steps=64, seed=0)
    with pytest.raises(RlimmError, match=r"observes Box\(3,\)"):
        gaussian_policy_teacher(full_state, restriction_for(env, [0, 1]))


def test_policies_without_a_gaussian_per_state_are_refused(pendulum):
    env, restriction, _ = pendulum
    partial = VisibleObservation(env, restriction)
    with pytest.raises(RlimmError, match="gSDE"):
        gaussian_policy_teacher(sb3.PPO("MlpPolicy", partial, use_sde=True, n_steps=64))
    with pytest.raises(RlimmError, match="gSDE"):
        gaussian_policy_teacher(sb3.SAC("MlpPolicy", partial, use_sde=True, buffer_size=100))
    with pytest.raises(RlimmError, match="gSDE"):
        train_restricted_gaussian_teacher(env, restriction, "ppo", 64, algo_kwargs={"use_sde": True})
    with pytest.raises(RlimmError, match="no Gaussian action distribution"):
        gaussian_policy_teacher(sb3.TD3("MlpPolicy", partial, buffer_size=100))
    with pytest.raises(RlimmError, match=r"Box action space, got Discrete\(2\)"):
        gaussian_policy_teacher(sb3.PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=64))
    with pytest.raises(RlimmError, match="accepted: ppo, sac, a2c"):
        train_restricted_gaussian_teacher(env, restriction, "dqn", 64)


# --------------------------------------------------------------------------- the induced expert


class CoinEnv(gym.Env):
    """obs = [v, h]: a fair coin v ∈ {0, 1} (visible) and h ~ U(−1, 1) (hidden), drawn afresh at every
    step; actions in [−1, 1]² change nothing. Episodes of 10 steps."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        assert self.action_space.contains(action)
        self.t += 1
        return self._obs(), 0.0, False, self.t >= 10, {}

    def _obs(self):
        return np.array([self.np_random.integers(2), self.np_random.uniform(-1, 1)], dtype=np.float32)


class RecordingExpert:
    """A full-state Gaussian expert given by formulas of (v, h), which records the states it is asked
    about (those the expert visits). Not an SB3 model: its fit is told ``squashed``."""

    squashed = True  # never read: only an SB3 expert's policy class says whether it is squashed

    def __init__(self, mean, log_std):
        self.mean, self.log_std, self.seen = mean, log_std, []

    def gaussian(self, obs):
        obs = np.asarray(obs, dtype=np.float32)
        self.seen.append(obs.copy())
        v, h = obs[:, :1], obs[:, 1:]
        return self.mean(v, h).astype(np.float32), self.log_std(v, h).astype(np.float32)


@pytest.fixture()
def coin():
    env = CoinEnv()
    return env, restriction_for(env, [0])


def _at_both_sides(teacher):
    return teacher.gaussian(np.array([[0.0], [1.0]], dtype=np.float32))


def test_induced_expert_recovers_an_expert_blind_to_the_hidden_part(coin):
    env, restriction = coin
    expert = RecordingExpert(
        mean=lambda v, h: np.concatenate([0.5 - v, 0.3 * v], axis=1),
        log_std=lambda v, h: np.concatenate([-0.5 + 0.4 * v, -1.0 + 0 * v], axis=1),
    )
    teacher = fit_induced_expert(expert, env, restriction, samples=400, seed=0, epochs=300, squashed=False)
    assert isinstance(teacher, PolicyTeacher) and isinstance(teacher.policy, VisibleMLP)
    assert isinstance(teacher, Teacher) and teacher.family is ActionFamily.GAUSSIAN
    assert not teacher.squashed and teacher.action_dim == 2
    mean, log_std = _at_both_sides(teacher)
    np.testing.assert_allclose(mean, [[0.5, 0.0], [-0.5, 0.3]], atol=1e-3)
    np.testing.assert_allclose(log_std, [[-0.5, -1.0], [-0.1, -1.0]], atol=1e-3)
    assert teacher.fit_kl < 1e-5  # nothing is lost by hiding h
    teacher.check_compatible(restriction, env.action_space)


def test_induced_expert_is_the_moment_projection_where_the_expert_sees_the_hidden_part(coin):
    env, restriction = coin
    expert = RecordingExpert(
        mean=lambda v, h: np.concatenate([v + 2 * h, -v + h**2], axis=1),
        log_std=lambda v, h: np.concatenate([-0.5 + 0.5 * h, -1.0 + 0.2 * v + 0 * h], axis=1),
    )
    teacher = fit_induced_expert(expert, env, restriction, samples=400, seed=1, epochs=300, squashed=False)
    visited = np.concatenate(expert.seen)
    assert len(visited) == 400
    means, log_stds = expert.gaussian(visited)
    coin_side = visited[:, 0]
    fitted_mean, fitted_log_std = _at_both_sides(teacher)
    for side in (0, 1):
        mu, var = means[coin_side == side], np.exp(2 * log_stds[coin_side == side])
        visit_average = mu.mean(axis=0)
        # the mean is the visit-average of the expert's means, the variance the mixture's
        np.testing.assert_allclose(fitted_mean[side], visit_average, atol=1e-3)
        mixture_var = var.mean(axis=0) + mu.var(axis=0)
        np.testing.assert_allclose(fitted_log_std[side], 0.5 * np.log(mixture_var), atol=1e-3)
    assert teacher.fit_kl > 0.1  # hiding h loses information


def test_induced_expert_is_deterministic_given_the_seed(coin):
    env, restriction = coin

    def fit(seed):
        expert = RecordingExpert(
            mean=lambda v, h: np.concatenate([v + h, h], axis=1), log_std=lambda v, h: np.zeros((len(v), 2))
        )
        return _at_both_sides(
            fit_induced_expert(expert, env, restriction, 100, seed, epochs=5, squashed=False)
        )

    first, again, other = fit(3), fit(3), fit(4)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_induced_expert_of_sb3_experts_keeps_their_convention(pendulum):
    env, restriction, visible = pendulum
    sac = sb3.SAC("MlpPolicy", env, buffer_size=100, seed=0)  # an expert on the full state
    teacher = fit_induced_expert(sac, env, restriction, samples=32, epochs=2)
    assert teacher.squashed
    assert teacher.gaussian(visible)[0].shape == (16, 1)
    teacher.check_compatible(restriction, env.action_space)
    ppo = sb3.PPO("MlpPolicy", env, n_steps=64, seed=0)
    assert not fit_induced_expert(ppo, env, restriction, samples=32, epochs=2).squashed
    with pytest.raises(RlimmError, match="contradicts the expert"):
        fit_induced_expert(sac, env, restriction, samples=32, epochs=2, squashed=False)
    partial = sb3.PPO("MlpPolicy", VisibleObservation(env, restriction), n_steps=64)
    with pytest.raises(
        RlimmError, match=r"the expert observes Box\(2,\) but the environment observes Box\(3,\)"
    ):
        fit_induced_expert(partial, env, restriction, samples=32, epochs=2)


def test_an_expert_that_is_not_an_sb3_model_must_say_whether_it_is_squashed(coin):
    env, restriction = coin
    expert = RecordingExpert(lambda v, h: np.hstack([v, h]), lambda v, h: np.hstack([-v, h]))
    with pytest.raises(
        RlimmError, match=r"\(RecordingExpert, not an SB3 model\) does not say whether its Gaussian"
    ) as err:
        fit_induced_expert(expert, env, restriction, samples=10, epochs=1)  # its `squashed` is not read
    assert "\n" not in str(err.value)
    assert not fit_induced_expert(expert, env, restriction, samples=10, epochs=1, squashed=False).squashed


# --------------------------------------------------------------------------- files


def test_save_load_round_trip_gives_identical_outputs(pendulum, ppo_teacher, sac_teacher, coin, tmp_path):
    env, restriction, visible = pendulum
    squashing = RecordingExpert(lambda v, h: np.hstack([v + h, h]), lambda v, h: np.hstack([-v, h]))
    # the file must keep the convention of a fitted teacher too
    fitted = fit_induced_expert(squashing, *coin, samples=50, epochs=3, squashed=True)
    assert fitted.squashed
    coin_visible = np.array([[0.0], [1.0]], dtype=np.float32)
    cases = [
        (ppo_teacher[0], visible, "Pendulum-v1", restriction),
        (sac_teacher[0], visible, "Pendulum-v1", restriction),
        (fitted, coin_visible, "Coin", coin[1]),
    ]
    for i, (teacher, batch, env_id, built_for) in enumerate(cases):
        path = save_gaussian_teacher(teacher, tmp_path / f"t{i}.pt", env_id, built_for, {"visible": ["x"]})
        loaded = load_gaussian_teacher(path, env_id, built_for)
        assert type(loaded.teacher.policy) is type(teacher.policy) and loaded.teacher.family is teacher.family
        assert loaded.meta["env_id"] == env_id and loaded.meta["restriction"] == built_for.describe()
        assert loaded.meta["name"] == teacher.name == loaded.teacher.name
        assert loaded.teacher.squashed == teacher.squashed
        np.testing.assert_array_equal(loaded.teacher.low, teacher.low)
        np.testing.assert_array_equal(loaded.teacher.high, teacher.high)
        for got, want in zip(loaded.teacher.gaussian(batch), teacher.gaussian(batch), strict=True):
            np.testing.assert_array_equal(got, want)
    assert isinstance(load_gaussian_teacher(tmp_path / "t1.pt").teacher.policy, sb3.sac.policies.SACPolicy)
    assert load_gaussian_teacher(tmp_path / "t2.pt").teacher.fit_kl == fitted.fit_kl


def test_a_file_for_another_env_or_restriction_is_refused(pendulum, ppo_teacher, tmp_path):
    env, restriction, _ = pendulum
    path = save_gaussian_teacher(ppo_teacher[0], tmp_path / "t.pt", "Pendulum-v1", restriction.describe())
    with pytest.raises(
        RlimmError, match="built for environment Pendulum-v1, but the environment is Other-v0"
    ):
        load_gaussian_teacher(path, "Other-v0")
    other = restriction_for(env, [0, 2])  # same shape, other coordinates
    with pytest.raises(RlimmError, match="built for the restriction 'visible cos_theta, sin_theta;"):
        load_gaussian_teacher(path, "Pendulum-v1", other)
    loaded = load_gaussian_teacher(path)
    loaded.check_built_for("Pendulum-v1", restriction)
    with pytest.raises(RlimmError, match="a Gaussian teacher is saved as a .pt file"):
        save_gaussian_teacher(ppo_teacher[0], tmp_path / "t.npz", "Pendulum-v1", restriction)
    with pytest.raises(RlimmError, match="teacher file not found"):
        load_gaussian_teacher(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a teacher")
    torch.save({"teacher": None, "meta": "{}"}, tmp_path / "discrete.pt")  # a discrete teacher file
    for name in ("junk.pt", "discrete.pt"):
        with pytest.raises(RlimmError, match="is not a Gaussian teacher file") as err:
            load_gaussian_teacher(tmp_path / name)
        assert "\n" not in str(err.value)


def test_an_induced_gaussian_teacher_keeps_what_it_was_made_from(coin, tmp_path):
    from rlimm.agents.teachers.base import with_about

    env, restriction = coin
    expert = RecordingExpert(
        mean=lambda v, h: np.concatenate([v + h, 0 * v], axis=1),
        log_std=lambda v, h: np.concatenate([-1.0 + 0 * v, -1.0 + 0 * v], axis=1),
    )
    report = {}
    teacher = fit_induced_expert(
        expert, env, restriction, samples=200, seed=0, epochs=20, report=report, squashed=False
    )
    assert report["hidden_kl"] == teacher.fit_kl > 0.01  # h moves the mean: hiding it costs
    about = {"expert": {"algo": "oracle", "timesteps": 0}, "hidden_kl": report["hidden_kl"]}
    path = save_teacher(with_about(teacher, about), tmp_path / "g.pt", {"visible": [0]})
    assert load_teacher(path).teacher.about == about
