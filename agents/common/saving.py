"""What an rlimm model's zip holds, so that stock stable-baselines3 loads it.

SB3's ``save`` pickles the model's attributes by reference: an rlimm class (the distribution-returning
policy, the rollout buffer that keeps the teacher's view) or an rlimm object (the restriction, the
induction settings, a λ schedule) would make ``stable_baselines3.PPO.load`` import rlimm, or fail
where rlimm is not installed. So a saved rlimm model holds:

- SB3's own classes where rlimm's subclass them (:func:`stock_class`): ``policy_class`` is
  ``ActorCriticPolicy`` for :class:`~rlimm.agents.common.policies.DistributionReturningPolicy` (same
  parameters), ``rollout_buffer_class`` is ``RolloutBuffer`` for the teacher-view buffer;
- rlimm's extras as plain JSON under the data key :data:`SAVED_KEY` (:func:`saved_extras`): the rlimm
  classes by import path, the induction settings as a mapping, λ as a number, and the objects that have
  no plain form (the restriction, a λ schedule) as base64 cloudpickle *strings*, which stock SB3 keeps
  as text and never unpickles.

``rlimm.agents.X.load`` reads the extras back (:func:`read_extras`, :func:`restored_attributes`) and
hands them to SB3's ``load`` as attributes, so its own classes and teacher settings are restored.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import pathlib
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

import cloudpickle
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.type_aliases import GymEnv

from rlimm.agents.imm.settings import InductionSettings

#: The key of a saved model's data that holds rlimm's extras (plain JSON).
SAVED_KEY = "rlimm"

#: Attributes holding a class that may be rlimm's subclass of an SB3 class.
CLASS_ATTRIBUTES = ("policy_class", "rollout_buffer_class", "replay_buffer_class")

#: rlimm's settings kept out of SB3's data (pickled objects) and saved as extras instead.
SETTINGS = ("restriction", "teacher_coef", "induction")


def class_path(cls: type) -> str:
    """``module:QualName`` of ``cls``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def import_class(path: str) -> type:
    """The class named by :func:`class_path`."""
    module, _, qualname = path.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def is_stock(cls: type) -> bool:
    """Whether ``cls`` is defined by stable-baselines3 (or torch, gymnasium: anything not rlimm's)."""
    return not cls.__module__.startswith("rlimm")


def stock_class(cls: type) -> type:
    """The first class of ``cls``'s MRO that is not rlimm's: the SB3 class it extends."""
    return next(base for base in cls.__mro__ if is_stock(base))


def _pickled(value: Any) -> str:
    return base64.b64encode(cloudpickle.dumps(value)).decode("ascii")


def _unpickled(text: str) -> Any:
    return cloudpickle.loads(base64.b64decode(text.encode("ascii")))


def saved_extras(attributes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the zip holds in place of a model's attributes: the stock classes to save instead of rlimm's
    (attribute → class) and the extras (plain JSON) that restore rlimm's classes and settings."""
    stock: dict[str, Any] = {}
    classes: dict[str, str] = {}
    for name in CLASS_ATTRIBUTES:
        cls = attributes.get(name)
        if isinstance(cls, type) and not is_stock(cls):
            stock[name] = stock_class(cls)
            classes[name] = class_path(cls)
    coef = attributes.get("teacher_coef", 0.0)
    number = isinstance(coef, (int, float)) and not isinstance(coef, bool)
    restriction = attributes.get("restriction")
    induction = attributes.get("induction")
    extras = {
        "classes": classes,
        "teacher_coef": {"value": float(coef)} if number else {"pickle": _pickled(coef)},
        "induction": induction.as_dict() if isinstance(induction, InductionSettings) else None,
        "restriction": None if restriction is None else {"pickle": _pickled(restriction)},
    }
    return stock, extras


def read_extras(path: str | Path | io.BufferedIOBase) -> dict[str, Any] | None:
    """rlimm's extras in a saved model's zip (``None`` for a model saved by SB3 itself)."""
    if isinstance(path, (str, Path)):
        path = Path(path)
        if not path.exists() and path.with_suffix(".zip").exists():  # as SB3's load, "model" is model.zip
            path = path.with_suffix(".zip")
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    else:
        position = path.tell()
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
        path.seek(position)
    extras = data.get(SAVED_KEY)
    return extras if isinstance(extras, dict) else None


def restored_attributes(extras: dict[str, Any]) -> dict[str, Any]:
    """The model attributes the extras restore (rlimm's classes, restriction, λ, induction)."""
    out: dict[str, Any] = {name: import_class(path) for name, path in extras["classes"].items()}
    coef = extras["teacher_coef"]
    out["teacher_coef"] = coef["value"] if "value" in coef else _unpickled(coef["pickle"])
    out["induction"] = InductionSettings.of(extras["induction"])
    restriction = extras["restriction"]
    out["restriction"] = None if restriction is None else _unpickled(restriction["pickle"])
    return out


class SavedWithoutTeacher(BaseAlgorithm):
    """SB3's ``save``/``load`` for rlimm's algorithms (a base of
    :class:`~rlimm.agents.common.mixin.RegularizedMixin`): the teacher never enters the zip, rlimm's
    classes and settings are saved as the extras above, and ``load(…, teacher=t)`` re-attaches one."""

    def _excluded_save_params(self) -> list[str]:
        # The teacher can be large or live elsewhere (another model): never pickled with the agent.
        # rlimm's settings are saved as plain extras instead (see save()).
        return [
            *super()._excluded_save_params(),
            "teacher",
            "teacher_regularizer",
            "_raw_last_obs",
            "_diagnosed_at",
            "_pools",
            "_trust_evidence",
            "_kept_output",
            "_hidden_generator",
            *SETTINGS,
        ]

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        """SB3's ``save``, in a form stock SB3 loads (``stable_baselines3.PPO.load``): SB3's own policy
        and buffer classes in place of rlimm's, and rlimm's classes and settings (restriction, λ,
        induction) as plain data under the ``rlimm`` key (:mod:`rlimm.agents.common.saving`), which
        :meth:`load` restores."""
        stock, extras = saved_extras(self.__dict__)
        own = {name: self.__dict__[name] for name in stock}
        # SB3's save copies the model's attributes: they hold the stock classes and the extras while it
        # runs, and rlimm's again afterwards.
        self.__dict__.update(stock)
        self.__dict__[SAVED_KEY] = extras
        try:
            super().save(path, exclude, include)
        finally:
            self.__dict__.update(own)
            del self.__dict__[SAVED_KEY]

    @classmethod
    def load(
        cls,
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> Self:
        """SB3's ``load``, restoring rlimm's policy and buffer classes and the regulariser's settings
        saved by :meth:`save`; ``teacher=`` re-attaches a teacher (it is never saved), and other
        keyword arguments override saved attributes, as in SB3."""
        extras = read_extras(path)
        restored = restored_attributes(extras) if extras is not None else {}
        return super().load(
            path, env, device, custom_objects, print_system_info, force_reset, **{**restored, **kwargs}
        )
