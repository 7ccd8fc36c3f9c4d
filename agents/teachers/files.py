"""Teacher files: a restricted teacher saved by ``rlimm teacher`` for reuse by ``train`` and ``compare``.

- A :class:`~rlimm.agents.teachers.tabular.TabularTeacher` is a NumPy ``.npz`` archive with the
  ``(contexts, actions)`` policy table.
- A :class:`~rlimm.agents.teachers.policy.PolicyTeacher` with discrete actions (a trained visible policy
  or an induced expert) is a ``.pt`` file (``torch.save`` of the pickled teacher).
- A :class:`~rlimm.agents.teachers.policy.PolicyTeacher` with Box actions (a Gaussian) is a ``.pt`` file
  of a plain dict (:func:`save_gaussian_teacher`): the network's state dict, what rebuilds it, and what
  the teacher was built for.

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

#: What ``format`` a Gaussian teacher file records, and its layout version.
FILE_FORMAT = "rlimm-gaussian-teacher"
FILE_VERSION = 1

_GAUSSIAN = (ActionFamily.GAUSSIAN, ActionFamily.SQUASHED_GAUSSIAN)


def suffix_for(teacher: Teacher) -> str:
    """``.npz`` for a table, ``.pt`` for a policy on the visible part."""
    return ".npz" if isinstance(teacher, TabularTeacher) else ".pt"


@dataclass(frozen=True)
class TeacherFile:
    """A loaded teacher file.

    :param teacher: the teacher.
    :param meta: what it was built for: ``env_id``, ``env_kwargs``, ``visible`` and the teacher
        settings (``solver``, ``policy`` …); a Gaussian file also ``restriction`` (its ``describe()``)
        and ``name``.
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
    path.parent.mkdir(parents=True, exist_ok=True)
    about = getattr(teacher, "about", None)
    if about:  # an induced teacher: its expert's score and budget, the hidden part's information
        meta = {**meta, "about": about}
    if teacher.family in _GAUSSIAN:  # state dicts, not a pickled teacher
        return save_gaussian_teacher(teacher, path, meta.get("env_id"), str(meta.get("visible")), meta)
    description = json.dumps({**meta, "name": teacher.name})
    if isinstance(teacher, TabularTeacher):
        return atomic_write(path, lambda tmp: np.savez(tmp, table=teacher.table, meta=np.array(description)))
    return atomic_write(path, lambda tmp: th.save({"teacher": teacher, "meta": description}, tmp))


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
        try:
            data = th.load(path, weights_only=False, pickle_module=_renamed_classes)
            if isinstance(data, dict) and data.get("format") == FILE_FORMAT:
                return load_gaussian_teacher(path)
            return TeacherFile(data["teacher"], json.loads(data["meta"]))
        except RlimmError:
            raise
        except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line message
            raise RlimmError(f"{path} is not a teacher file written by `rlimm teacher` ({err})") from None
    try:
        with np.load(path, allow_pickle=False) as archive:
            table = archive["table"]
            meta = json.loads(str(archive["meta"]))
    except (OSError, ValueError, KeyError) as err:
        raise RlimmError(f"{path} is not a teacher file written by `rlimm teacher` ({err})") from None
    return TeacherFile(TabularTeacher(table, meta.get("name", path.stem)), meta)


# --------------------------------------------------------------------------- pickles of older versions


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


def _gaussian_state(teacher: PolicyTeacher) -> dict[str, Any]:
    """What rebuilds a Gaussian teacher's policy: an SB3 policy's class, constructor arguments and
    state dict, or a :class:`VisibleMLP`'s sizes and state dict."""
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
            "net": {
                "n_inputs": policy.n_inputs,
                "action_dim": policy.n_outputs // 2,
                "hidden": policy.hidden,
            },
            "state_dict": policy.state_dict(),
            "fit_kl": teacher.fit_kl,
        }
    raise RlimmError(
        f"Gaussian teacher '{teacher.name}' is a {type(policy).__name__}: only SB3 policies and "
        "VisibleMLP networks can be saved"
    )


def _sb3_policy_teacher(data: dict[str, Any], name: str) -> PolicyTeacher:
    module, _, qualname = data["policy_class"].partition(":")
    policy_class = importlib.import_module(module)
    for part in qualname.split("."):
        policy_class = getattr(policy_class, part)
    if not (isinstance(policy_class, type) and issubclass(policy_class, BasePolicy)):
        raise RlimmError(f"{data['policy_class']} is not an SB3 policy class")
    policy = policy_class(**data["constructor"])
    policy.load_state_dict(data["state_dict"])
    return PolicyTeacher(policy, policy.observation_space, policy.action_space, name=name)


def _mlp_teacher(data: dict[str, Any], name: str) -> PolicyTeacher:
    sizes = data["net"]
    net = VisibleMLP(sizes["n_inputs"], 2 * sizes["action_dim"], sizes["hidden"])
    net.load_state_dict(data["state_dict"])
    box = spaces.Box(np.asarray(data["low"], np.float32), np.asarray(data["high"], np.float32))
    visible: gym.Space = data["visible_space"]
    return PolicyTeacher(net, visible, box, name=name, squashed=data["squashed"], fit_kl=data.get("fit_kl"))


_KINDS = {"sb3_policy": _sb3_policy_teacher, "mlp": _mlp_teacher}


def save_gaussian_teacher(
    teacher: PolicyTeacher,
    path: str | Path,
    env_id: str | None,
    restriction_description: str | Any,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a Gaussian ``teacher`` to a ``.pt`` file, atomically: ``torch.save`` of a plain dict with the
    network's state dict and what rebuilds it, ``kind``, ``action_dim``, ``squashed``, ``low``, ``high``,
    the visible-space layout, and a JSON ``meta`` (``env_id``, ``restriction``, ``name``, plus ``meta``).

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
    data = {
        "format": FILE_FORMAT,
        "version": FILE_VERSION,
        "action_dim": teacher.action_dim,
        "squashed": teacher.squashed,
        "low": teacher.low.tolist(),
        "high": teacher.high.tolist(),
        "visible_shape": space_layout(teacher.visible_space),
        "visible_space": teacher.visible_space,
        "meta": json.dumps(record),
        **_gaussian_state(teacher),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: th.save(data, tmp))


def load_gaussian_teacher(
    path: str | Path, env_id: str | None = None, restriction: Any = None
) -> TeacherFile:
    """Read a file written by :func:`save_gaussian_teacher`; with ``env_id`` or ``restriction``, refuse
    it (:class:`RlimmError`) if it was built for another (:meth:`TeacherFile.check_built_for`)."""
    path = Path(path)
    if not path.is_file():
        raise RlimmError(f"teacher file not found: {path}")
    try:
        data = th.load(path, map_location="cpu", weights_only=False)
        if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
            raise ValueError("no Gaussian teacher in it")
        if data.get("version") != FILE_VERSION or data.get("kind") not in _KINDS:
            raise ValueError(f"version {data.get('version')}, kind {data.get('kind')!r}")
        meta = json.loads(data["meta"])
        teacher = _KINDS[data["kind"]](data, meta.get("name", path.stem))
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line message
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise RlimmError(f"{path} is not a Gaussian teacher file written by rlimm ({reason})") from None
    loaded = TeacherFile(teacher, meta)
    loaded.check_built_for(env_id, restriction)
    return loaded
