"""Policy teacher files: every policy teacher is a state dict, and the files of older versions (discrete
teachers pickled whole, version-1 Gaussian files, the induced expert's old network) still load and give
the same numbers. Also: a policy's action family comes from its SB3 class, not its attributes."""

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.dqn.policies import DQNPolicy
from stable_baselines3.sac.policies import SACPolicy

import rlimm.agents.teachers as teachers
from rlimm.agents.common.policies import DistributionReturningPolicy
from rlimm.agents.sac.policies import ParamsReturningSACPolicy
from rlimm.agents.teachers import (
    FILE_FORMAT,
    FILE_VERSION,
    ActionFamily,
    PolicyTeacher,
    VisibleMLP,
    gaussian_policy_teacher,
    load_gaussian_teacher,
    load_teacher,
    policy_utilities,
    save_teacher,
)
from rlimm.errors import RlimmError

VISIBLE = spaces.Box(-1.0, 1.0, (2,), np.float32)
BOX = spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
META = {"env_id": "Some-v0", "visible": ["a", "b"], "solver": "test"}


def _sb3(policy_class, action_space, seed=0):
    torch.manual_seed(seed)
    return policy_class(VISIBLE, action_space, lambda _: 1e-3)


def _discrete(kind):
    """A discrete policy teacher of each kind, built without training (weights from a fixed seed)."""
    if kind == "ppo":
        return PolicyTeacher(_sb3(ActorCriticPolicy, spaces.Discrete(3)), VISIBLE, 3, name="ppo")
    if kind == "argmax":
        return PolicyTeacher(_sb3(ActorCriticPolicy, spaces.Discrete(3)), VISIBLE, 3, "argmax", name="greedy")
    if kind == "multi":
        policy = _sb3(ActorCriticPolicy, spaces.MultiDiscrete([2, 3]))
        return PolicyTeacher(policy, VISIBLE, 5, name="m", nvec=[2, 3])
    if kind == "dqn":
        return PolicyTeacher(_sb3(DQNPolicy, spaces.Discrete(3)), VISIBLE, 3, "argmax", name="dqn")
    torch.manual_seed(1)
    return PolicyTeacher(VisibleMLP(2, 3, hidden=8), VISIBLE, 3, "softmax", 0.5, "net", fit_kl=0.125)


DISCRETE = ["ppo", "argmax", "multi", "dqn", "net"]


def _visible(n=6):
    return np.random.default_rng(5).uniform(-1, 1, (n, 2)).astype(np.float32)


def _same_numbers(loaded, teacher):
    visible = _visible()
    assert loaded.family is teacher.family and loaded.n_params == teacher.n_params
    np.testing.assert_array_equal(loaded.params(visible), teacher.params(visible))
    for deterministic in (False, True):
        np.testing.assert_array_equal(
            loaded.act(visible, np.random.default_rng(3), deterministic),
            teacher.act(visible, np.random.default_rng(3), deterministic),
        )


# --------------------------------------------------------------------------- state dicts


@pytest.mark.parametrize("kind", [*DISCRETE, "gaussian", "squashed"])
def test_every_policy_teacher_is_saved_as_a_state_dict(kind, tmp_path):
    if kind == "gaussian":
        teacher = gaussian_policy_teacher(_sb3(DistributionReturningPolicy, BOX), name="ppo-gaussian")
    elif kind == "squashed":
        teacher = gaussian_policy_teacher(_sb3(ParamsReturningSACPolicy, BOX), name="sac-gaussian")
    else:
        teacher = _discrete(kind)
    path = save_teacher(teacher, tmp_path / "t.pt", META)
    data = torch.load(path, weights_only=False)
    assert (data["format"], data["version"], data["family"]) == (
        FILE_FORMAT,
        FILE_VERSION,
        teacher.family.value,
    )
    assert "teacher" not in data and not any(
        isinstance(v, PolicyTeacher | torch.nn.Module) for v in data.values()
    )
    assert set(data["state_dict"]) == set(teacher.policy.state_dict())
    assert json.loads(data["meta"]) == {**META, "name": teacher.name}
    rng = torch.get_rng_state()
    loaded = load_teacher(path)
    assert torch.equal(torch.get_rng_state(), rng)  # rebuilding the network draws nothing
    assert type(loaded.teacher.policy) is type(teacher.policy) and loaded.meta == {
        **META,
        "name": teacher.name,
    }
    assert (loaded.teacher.mode, loaded.teacher.temperature) == (teacher.mode, teacher.temperature)
    assert (loaded.teacher.nvec, loaded.teacher.fit_kl) == (teacher.nvec, teacher.fit_kl)
    _same_numbers(loaded.teacher, teacher)


def test_a_module_that_is_neither_an_sb3_policy_nor_a_visible_mlp_is_not_saved(tmp_path):
    teacher = PolicyTeacher(torch.nn.Linear(2, 3), VISIBLE, 3, name="linear")
    with pytest.raises(RlimmError, match="is a Linear: only SB3 policies and VisibleMLP networks") as err:
        save_teacher(teacher, tmp_path / "t.pt", META)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- files of older versions


def _save_the_old_way(teacher, path, meta, *, attributes=("nvec", "fit_kl")):
    """Exactly what save_teacher wrote for a discrete policy teacher before state dicts: the PolicyTeacher
    pickled whole, with the attributes its constructor set then, in that order (``attributes``: those of
    ``nvec`` and ``fit_kl`` its version had)."""
    old = object.__new__(PolicyTeacher)
    state = {
        "name": teacher.name,
        "visible_space": teacher.visible_space,
        "mode": teacher.mode,
        "temperature": teacher.temperature,
        "_n_actions": teacher.n_actions,
        "nvec": teacher.nvec,
        "fit_kl": teacher.fit_kl,
        "policy": teacher.policy,
    }
    old.__dict__.update({k: v for k, v in state.items() if k not in {"nvec", "fit_kl"} or k in attributes})
    torch.save({"teacher": old, "meta": json.dumps({**meta, "name": teacher.name})}, path)
    return path


@pytest.mark.parametrize("kind", DISCRETE)
def test_discrete_teachers_pickled_by_older_versions_still_load(kind, tmp_path):
    teacher = _discrete(kind)
    path = _save_the_old_way(teacher, tmp_path / "old.pt", META)
    loaded = load_teacher(path)
    assert isinstance(loaded.teacher, PolicyTeacher) and loaded.meta == {**META, "name": teacher.name}
    assert (loaded.teacher.name, loaded.teacher.nvec, loaded.teacher.fit_kl) == (
        teacher.name,
        teacher.nvec,
        teacher.fit_kl,
    )
    _same_numbers(loaded.teacher, teacher)
    loaded.teacher.check_compatible(
        None, spaces.MultiDiscrete([2, 3]) if kind == "multi" else spaces.Discrete(3)
    )
    # Saved again, it is a state dict with the same numbers.
    again = load_teacher(save_teacher(loaded.teacher, tmp_path / "new.pt", META))
    assert "teacher" not in torch.load(tmp_path / "new.pt", weights_only=False)
    _same_numbers(again.teacher, teacher)


def test_the_oldest_pickles_without_nvec_or_fit_kl_still_load(tmp_path):
    teacher = _discrete("ppo")
    path = _save_the_old_way(teacher, tmp_path / "old.pt", META, attributes=())
    loaded = load_teacher(path).teacher
    assert loaded.nvec is None and loaded.fit_kl is None
    _same_numbers(loaded, teacher)


def test_an_old_induced_teacher_keeps_what_it_was_made_from(tmp_path):
    teacher = _discrete("net")
    about = {"expert": {"algo": "ppo", "score": 500.0}, "hidden_kl": 0.25}
    path = _save_the_old_way(teacher, tmp_path / "old.pt", {**META, "about": about})
    assert load_teacher(path).teacher.about == about


def test_files_of_the_old_induced_expert_network_still_load(tmp_path, monkeypatch):
    """An induced expert pickled when its network was rlimm.agents.teachers._VisibleMLP (one Sequential
    ``net``, no standardisation) loads as a VisibleMLP that gives the same probabilities."""

    class OldVisibleMLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(4)
            self.net = torch.nn.Sequential(
                torch.nn.Linear(2, 8),
                torch.nn.Tanh(),
                torch.nn.Linear(8, 8),
                torch.nn.Tanh(),
                torch.nn.Linear(8, 3),
            )

        def forward(self, visible):
            x = torch.as_tensor(visible).float()
            return self.net(x.reshape(x.shape[0], -1))

    OldVisibleMLP.__module__, OldVisibleMLP.__qualname__ = "rlimm.agents.teachers", "_VisibleMLP"
    monkeypatch.setattr(teachers, "_VisibleMLP", OldVisibleMLP, raising=False)
    old = PolicyTeacher(OldVisibleMLP(), VISIBLE, 3, name="old-induced")
    path = _save_the_old_way(old, tmp_path / "old.pt", {"visible": ["a", "b"]})
    visible = _visible()
    expected = old.probs(visible)
    monkeypatch.delattr(teachers, "_VisibleMLP")  # the class is gone, as in the new code
    loaded = load_teacher(path).teacher
    assert isinstance(loaded.policy, VisibleMLP) and not loaded.policy.training
    np.testing.assert_array_equal(loaded.probs(visible), expected)


def _save_version_1(teacher, path, env_id, restriction):
    """Exactly what save_gaussian_teacher wrote before every policy teacher was a state dict (format
    ``rlimm-gaussian-teacher``, version 1)."""
    policy = teacher.policy
    if isinstance(policy, BasePolicy):
        cls = type(policy)
        state = {
            "kind": "sb3_policy",
            "policy_class": f"{cls.__module__}:{cls.__qualname__}",
            "constructor": policy._get_constructor_parameters(),
            "state_dict": policy.state_dict(),
        }
    else:
        state = {
            "kind": "mlp",
            "net": {
                "n_inputs": policy.n_inputs,
                "action_dim": policy.n_outputs // 2,
                "hidden": policy.hidden,
            },
            "state_dict": policy.state_dict(),
            "fit_kl": teacher.fit_kl,
        }
    torch.save(
        {
            "format": "rlimm-gaussian-teacher",
            "version": 1,
            "action_dim": teacher.action_dim,
            "squashed": teacher.squashed,
            "low": teacher.low.tolist(),
            "high": teacher.high.tolist(),
            "visible_shape": ["Box", [2]],
            "visible_space": teacher.visible_space,
            "meta": json.dumps(
                {"visible": ["a", "b"], "env_id": env_id, "restriction": restriction, "name": teacher.name}
            ),
            **state,
        },
        path,
    )
    return path


@pytest.mark.parametrize("kind", ["gaussian", "squashed", "fitted"])
def test_version_1_gaussian_files_still_load(kind, tmp_path):
    if kind == "fitted":
        torch.manual_seed(2)
        teacher = PolicyTeacher(VisibleMLP(2, 4), VISIBLE, BOX, name="fitted", squashed=True, fit_kl=0.25)
    else:
        policy_class = ActorCriticPolicy if kind == "gaussian" else SACPolicy
        teacher = gaussian_policy_teacher(_sb3(policy_class, BOX), name=kind)
    path = _save_version_1(teacher, tmp_path / "v1.pt", "Some-v0", "visible a, b")
    for loaded in (load_teacher(path), load_gaussian_teacher(path, "Some-v0")):
        assert loaded.meta["restriction"] == "visible a, b" and loaded.teacher.name == teacher.name
        assert (loaded.teacher.squashed, loaded.teacher.fit_kl) == (teacher.squashed, teacher.fit_kl)
        np.testing.assert_array_equal(loaded.teacher.low, teacher.low)
        _same_numbers(loaded.teacher, teacher)


def test_a_discrete_teacher_file_is_not_a_gaussian_one(tmp_path):
    path = save_teacher(_discrete("ppo"), tmp_path / "t.pt", META)
    with pytest.raises(
        RlimmError, match=r"is not a Gaussian teacher file written by rlimm \(a categorical teacher\)"
    ):
        load_gaussian_teacher(path)


# --------------------------------------------------------------------------- the family from the class


class _SacLookalike(BasePolicy):
    """Not a SACPolicy, but with everything the old attribute sniffing looked for."""

    def __init__(self):
        super().__init__(VISIBLE, BOX)
        self.actor = torch.nn.Module()
        self.actor.get_action_dist_params = lambda obs: None
        self.use_sde = False

    def _predict(self, observation, deterministic=False):
        raise NotImplementedError


def test_the_action_family_comes_from_the_policy_class():
    assert gaussian_policy_teacher(_sb3(ParamsReturningSACPolicy, BOX)).squashed  # rlimm's subclass of SAC's
    assert not gaussian_policy_teacher(_sb3(DistributionReturningPolicy, BOX)).squashed
    with pytest.raises(RlimmError, match="no Gaussian action distribution; accepted: a PPO/A2C") as err:
        gaussian_policy_teacher(_SacLookalike())
    assert "\n" not in str(err.value)
    with pytest.raises(RlimmError, match="cannot read action preferences from SACPolicy; accepted"):
        policy_utilities(_sb3(SACPolicy, BOX), torch.zeros(1, 2))
    # A network that is not an SB3 policy says nothing itself, even with a `squashed` attribute.
    net = VisibleMLP(2, 4)
    net.squashed = True
    with pytest.raises(RlimmError, match="does not say whether it is squashed: pass squashed"):
        PolicyTeacher(net, VISIBLE, BOX)
    assert PolicyTeacher(net, VISIBLE, BOX, squashed=False).family is ActionFamily.GAUSSIAN


def test_a_discrete_teachers_gaussian_attributes_are_refused():
    teacher = _discrete("ppo")
    assert teacher.box is None and teacher.nvec is None
    for attribute in ("squashed", "low", "action_dim"):
        with pytest.raises(RlimmError, match="teacher 'ppo' has discrete actions"):
            getattr(teacher, attribute)
    gaussian = gaussian_policy_teacher(_sb3(ActorCriticPolicy, BOX), name="g")
    with pytest.raises(RlimmError, match="teacher 'g' has Box actions, not a number of actions"):
        _ = gaussian.n_actions
    with pytest.raises(RlimmError, match="has Box actions, not probabilities"):
        gaussian.probs(_visible())
