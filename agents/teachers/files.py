"""Teacher files: a restricted teacher saved by ``rlimm teacher`` for reuse by ``train`` and ``compare``.

- A :class:`~rlimm.agents.teachers.tabular.TabularTeacher` is a NumPy ``.npz`` archive with the
  ``(contexts, actions)`` policy table.
- A :class:`~rlimm.agents.teachers.policy.PolicyTeacher` (a trained visible policy, a loaded model or an
  induced expert; any action family) is a ``.pt`` file of a plain dict (:func:`save_policy_teacher`):
  the network's state dict, what rebuilds it, what the teacher's actions are, and what the teacher
  was built for. Older files still load: Gaussian teachers' (format ``rlimm-gaussian-teacher``,
  version 1) and discrete policy teachers pickled whole (``{"teacher": …, "meta": …}``).

Each holds a JSON description of what the teacher was built for (environment, visible parts, solver),
so that a teacher built for another restriction is refused rather than silently misused. Load ``.pt``
files only from sources you trust (pickle; the SB3 constructor arguments hold gymnasium spaces and
classes).
"""

from __future__ import annotations

import importlib
import json
import pickle
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy

from rlimm.agents.teachers.base import ActionFamily, Teacher, space_layout, with_about
from rlimm.agents.teachers.networks import VisibleMLP
from rlimm.agents.teachers.policy import PolicyTeacher
from rlimm.agents.teachers.tabular import TabularTeacher
from rlimm.common.files import atomic_write
from rlimm.errors import RlimmError

#: What ``format`` a policy teacher file records, and its layout version.
FILE_FORMAT = "rlimm-policy-teacher"
FILE_VERSION = 2
#: The format and version of the Gaussian teacher files written before every policy teacher had one.
GAUSSIAN_FORMAT_V1 = ("rlimm-gaussian-teacher", 1)

_GAUSSIAN = (ActionFamily.GAUSSIAN, ActionFamily.SQUASHED_GAUSSIAN)


def suffix_for(teacher: Teacher) -> str:
    """``.npz`` for a table, ``.pt`` for a policy on the visible part."""
    return ".npz" if isinstance(teacher, TabularTeacher) else ".pt"


@dataclass(frozen=True)
class TeacherFile:
    """A loaded teacher file.

    :param teacher: the teacher.
    :param meta: what it was built for: ``env_id``, ``env_kwargs``, ``visible`` and the teacher
        settings (``solver``, ``policy`` …), ``name``; a file written by :func:`save_gaussian_teacher`
        also ``restriction`` (its ``describe()``).
    """

    teacher: Teacher
    meta: dict[str, Any] = field(default_factory=dict)

    def check_visible(self, visible: list[str]) -> None:
        """Raise unless the file was built for the same visible fields."""
        built_for = self.meta.get("visible")
        if built_for is not None and list(built_for) != list(visible):
            raise RlimmError(
                f"the teacher file was built for visible fields {built_for}, but the restriction "
                f"shows {list(visible)}"
            )

    def check_built_for(self, env_id: str | None = None, restriction: Any = None) -> None:
        """Raise :class:`RlimmError` if the file was built for another environment or restriction (as
        recorded, and, for a policy, its input against the restriction's visible part)."""
        built_env = self.meta.get("env_id")
        if env_id is not None and built_env is not None and built_env != env_id:
            raise RlimmError(
                f"the teacher file was built for environment {built_env}, but the environment is {env_id}"
            )
        if restriction is None:
            return
        built = self.meta.get("restriction")
        shown = restriction.describe()
        if built is not None and built != shown:
            raise RlimmError(
                f"the teacher file was built for the restriction '{built}', but the restriction is '{shown}'"
            )
        if isinstance(self.teacher, PolicyTeacher):
            self.teacher.check_visible(restriction)


def save_teacher(teacher: Teacher, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``teacher`` and its description to ``path`` (``.npz`` for a table, ``.pt`` otherwise),
    atomically."""
    path = Path(path)
    expected = suffix_for(teacher)
    if path.suffix != expected:
        raise RlimmError(f"a {type(teacher).__name__} is saved as a {expected} file, got {path}")
    about = getattr(teacher, "about", None)
    if about:  # an induced teacher: its expert's score and budget, the hidden part's information
        meta = {**meta, "about": about}
    if isinstance(teacher, PolicyTeacher):
        return save_policy_teacher(teacher, path, {**meta, "name": teacher.name})
    if not isinstance(teacher, TabularTeacher):
        raise RlimmError(
            f"cannot save a {type(teacher).__name__}; accepted: a TabularTeacher or a PolicyTeacher"
        )
    description = json.dumps({**meta, "name": teacher.name})
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: np.savez(tmp, table=teacher.table, meta=np.array(description)))


def load_teacher(path: str | Path) -> TeacherFile:
    """Read a teacher file written by :func:`save_teacher` (an induced teacher gets its ``about`` back)."""
    loaded = _load_teacher(path)
    if loaded.meta.get("about"):
        return TeacherFile(with_about(loaded.teacher, loaded.meta["about"]), loaded.meta)
    return loaded


def _load_teacher(path: str | Path) -> TeacherFile:
    path = Path(path)
    if not path.is_file():
        raise RlimmError(f"teacher file not found: {path}")
    if path.suffix == ".pt":
        return load_policy_teacher(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            table = archive["table"]
            meta = json.loads(str(archive["meta"]))
    except (OSError, ValueError, KeyError) as err:
        raise RlimmError(f"{path} is not a teacher file written by `rlimm teacher` ({err})") from None
    return TeacherFile(TabularTeacher(table, meta.get("name", path.stem)), meta)


# --------------------------------------------------------------------------- policy teachers


def save_policy_teacher(teacher: PolicyTeacher, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write a policy ``teacher`` to a ``.pt`` file, atomically: ``torch.save`` of a plain dict with the
    network's state dict and what rebuilds it (:func:`_policy_state`), the ``family`` and what its
    actions are (``n_actions``, ``nvec``; or ``action_dim``, ``squashed``, ``low``, ``high``), ``mode``,
    ``temperature``, ``fit_kl``, the visible space, and ``meta`` as JSON."""
    path = Path(path)
    if path.suffix != ".pt":
        raise RlimmError(f"a policy teacher is saved as a .pt file, got {path}")
    data = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "family": teacher.family.value,
        **teacher.actions.record(),
        "mode": teacher.mode,
        "temperature": teacher.temperature,
        "fit_kl": teacher.fit_kl,
        "visible_shape": space_layout(teacher.visible_space),
        "visible_space": teacher.visible_space,
        "meta": json.dumps(meta),
        **_policy_state(teacher),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: th.save(data, tmp))


def load_policy_teacher(path: str | Path) -> TeacherFile:
    """Read a ``.pt`` teacher file: written by :func:`save_policy_teacher`, by an older
    :func:`save_gaussian_teacher` (version 1), or a discrete teacher pickled whole by an older
    :func:`save_teacher`."""
    path = _existing(path)
    try:
        return _read_pt(path)
    except RlimmError:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line message
        raise RlimmError(
            f"{path} is not a teacher file written by `rlimm teacher` ({_first_line(err)})"
        ) from None


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise RlimmError(f"teacher file not found: {path}")
    return path


def _first_line(err: Exception) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def _read_pt(path: Path) -> TeacherFile:
    data = th.load(path, map_location="cpu", weights_only=False, pickle_module=_renamed_classes)
    if isinstance(data, dict) and "format" in data:
        meta = json.loads(data["meta"])
        return TeacherFile(_from_state(data, meta.get("name", path.stem)), meta)
    return TeacherFile(_from_pickle(data["teacher"]), json.loads(data["meta"]))


def _policy_state(teacher: PolicyTeacher) -> dict[str, Any]:
    """What rebuilds a teacher's policy: an SB3 policy's class, constructor arguments and state dict,
    or a :class:`VisibleMLP`'s sizes and state dict."""
    policy = teacher.policy
    if isinstance(policy, BasePolicy):
        cls = type(policy)
        return {
            "kind": "sb3_policy",
            "policy_class": f"{cls.__module__}:{cls.__qualname__}",
            # What SB3's own BasePolicy.save records to rebuild the policy.
            "constructor": policy._get_constructor_parameters(),
            "state_dict": policy.state_dict(),
        }
    if isinstance(policy, VisibleMLP):
        return {
            "kind": "mlp",
            "net": {"n_inputs": policy.n_inputs, "n_outputs": policy.n_outputs, "hidden": policy.hidden},
            "state_dict": policy.state_dict(),
        }
    raise RlimmError(
        f"teacher '{teacher.name}' is a {type(policy).__name__}: only SB3 policies and VisibleMLP "
        "networks can be saved"
    )


def _sb3_policy(data: dict[str, Any]) -> BasePolicy:
    module, _, qualname = data["policy_class"].partition(":")
    policy_class = importlib.import_module(module)
    for part in qualname.split("."):
        policy_class = getattr(policy_class, part)
    if not (isinstance(policy_class, type) and issubclass(policy_class, BasePolicy)):
        raise RlimmError(f"{data['policy_class']} is not an SB3 policy class")
    policy = policy_class(**data["constructor"])
    policy.load_state_dict(data["state_dict"])
    return policy


def _mlp(data: dict[str, Any]) -> VisibleMLP:
    sizes = data["net"]
    net = VisibleMLP(sizes["n_inputs"], sizes["n_outputs"], sizes["hidden"])
    net.load_state_dict(data["state_dict"])
    return net


_KINDS = {"sb3_policy": _sb3_policy, "mlp": _mlp}


def _from_state(data: dict[str, Any], name: str) -> PolicyTeacher:
    """The teacher a file's dict describes (the current layout, or version 1 of Gaussian files)."""
    if (data.get("format"), data.get("version")) == GAUSSIAN_FORMAT_V1:
        data = _from_gaussian_v1(data)
    elif (data.get("format"), data.get("version")) != (FILE_FORMAT, FILE_VERSION):
        raise ValueError(f"format {data.get('format')!r}, version {data.get('version')}")
    if data.get("kind") not in _KINDS:
        raise ValueError(f"kind {data.get('kind')!r}")
    with th.random.fork_rng():  # the weights come from the file: the caller's RNG is left alone
        policy = _KINDS[data["kind"]](data)
    visible: gym.Space = data["visible_space"]
    family = ActionFamily(data["family"])
    actions: int | spaces.Box
    if family not in _GAUSSIAN:
        actions = int(data["n_actions"])
    elif isinstance(policy, BasePolicy):
        actions = policy.action_space  # the space it was built with
    else:
        actions = spaces.Box(np.asarray(data["low"], np.float32), np.asarray(data["high"], np.float32))
    squashed = data.get("squashed") if family in _GAUSSIAN else None
    return PolicyTeacher(
        policy,
        visible,
        actions,
        data["mode"],
        data["temperature"],
        name,
        data.get("nvec"),
        squashed=squashed,
        fit_kl=data.get("fit_kl"),
    )


def _from_gaussian_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 Gaussian file's dict in the current layout: its family from ``squashed``, a network's
    outputs from ``action_dim``."""
    family = ActionFamily.SQUASHED_GAUSSIAN if data["squashed"] else ActionFamily.GAUSSIAN
    new = {**data, "family": family.value, "mode": "softmax", "temperature": 1.0}
    if data.get("kind") == "mlp":
        net = data["net"]
        new["net"] = {
            "n_inputs": net["n_inputs"],
            "n_outputs": 2 * net["action_dim"],
            "hidden": net["hidden"],
        }
    return new


# --------------------------------------------------------------------------- pickles of older versions


def _from_pickle(old: Any) -> PolicyTeacher:
    """A discrete :class:`PolicyTeacher` pickled whole by rlimm before policy teachers were state dicts,
    rebuilt from the attributes it had then (``policy``, ``visible_space``, ``_n_actions``, ``mode``,
    ``temperature``, ``name``, and from later versions ``nvec`` and ``fit_kl``)."""
    if not isinstance(old, PolicyTeacher):
        raise ValueError(f"no teacher in it (a {type(old).__name__})")
    state = vars(old)
    return PolicyTeacher(
        state["policy"],
        state["visible_space"],
        state["_n_actions"],
        state["mode"],
        state["temperature"],
        state["name"],
        state.get("nvec"),
        fit_kl=state.get("fit_kl"),
    )


class _Unpickler(pickle.Unpickler):
    """Reads ``.pt`` teachers pickled before the teachers became a package: the induced expert's
    network was ``rlimm.agents.teachers._VisibleMLP`` (rebuilt as a :class:`VisibleMLP`); the teacher
    classes themselves are still exported by ``rlimm.agents.teachers``."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("rlimm.agents.teachers", "_VisibleMLP"):
            return VisibleMLP
        return super().find_class(module, name)


# torch.load takes a pickle module: the standard one, with the Unpickler above.
_renamed_classes = types.SimpleNamespace(
    Unpickler=_Unpickler, load=pickle.load, loads=pickle.loads, __name__="pickle"
)


# --------------------------------------------------------------------------- Gaussian teachers


def save_gaussian_teacher(
    teacher: PolicyTeacher,
    path: str | Path,
    env_id: str | None,
    restriction_description: str | Any,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a Gaussian ``teacher`` to a ``.pt`` file (:func:`save_policy_teacher`) whose ``meta`` also
    records ``env_id``, ``restriction`` and ``name``, so that :func:`load_gaussian_teacher` can refuse it
    for another environment or restriction.

    :param restriction_description: ``restriction.describe()``, or the restriction itself.
    """
    path = Path(path)
    if path.suffix != ".pt":
        raise RlimmError(f"a Gaussian teacher is saved as a .pt file, got {path}")
    if teacher.family not in _GAUSSIAN:
        raise RlimmError(f"teacher '{teacher.name}' is {teacher.family.value}, not Gaussian")
    describe = getattr(restriction_description, "describe", None)
    description = describe() if callable(describe) else restriction_description
    record = {**(meta or {}), "env_id": env_id, "restriction": description, "name": teacher.name}
    return save_policy_teacher(teacher, path, record)


def load_gaussian_teacher(
    path: str | Path, env_id: str | None = None, restriction: Any = None
) -> TeacherFile:
    """Read a Gaussian teacher's file (:func:`load_policy_teacher`); with ``env_id`` or ``restriction``,
    refuse it (:class:`RlimmError`) if it was built for another (:meth:`TeacherFile.check_built_for`)."""
    path = _existing(path)
    try:
        loaded = _read_pt(path)
        if loaded.teacher.family not in _GAUSSIAN:
            raise ValueError(f"a {loaded.teacher.family.value} teacher")
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line message
        raise RlimmError(
            f"{path} is not a Gaussian teacher file written by rlimm ({_first_line(err)})"
        ) from None
    loaded.check_built_for(env_id, restriction)
    return loaded
