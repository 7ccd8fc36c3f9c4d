"""Teacher files: a restricted teacher saved by ``rlimm teacher`` for reuse by ``train`` and ``compare``.

A tabular teacher is a NumPy ``.npz`` archive with the ``(contexts, actions)`` policy table; a policy
on the visible part (a :class:`~rlimm.agents.teachers.PolicyTeacher`: a trained visible policy or an
induced expert) is a ``.pt`` file (``torch.save``); a Gaussian teacher (Box actions) is a ``.pt`` file
in :mod:`rlimm.agents.gaussian_teachers`' format. Both hold a JSON description of what the teacher
was built for (environment, visible parts, solver), so that a teacher built for another restriction
is refused rather than silently misused. Load ``.pt`` files only from sources you trust (pickle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlimm.agents.teachers import TabularTeacher, Teacher
from rlimm.common.files import atomic_write
from rlimm.errors import RlimmError


def suffix_for(teacher: Teacher) -> str:
    """``.npz`` for a table, ``.pt`` for a policy on the visible part."""
    return ".npz" if isinstance(teacher, TabularTeacher) else ".pt"


@dataclass(frozen=True)
class TeacherFile:
    """A loaded teacher file.

    :param teacher: the policy table.
    :param meta: what it was built for: ``env_id``, ``env_kwargs``, ``visible`` and the teacher
        settings (``solver``, ``policy`` …).
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


def save_teacher(teacher: Teacher, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``teacher`` and its description to ``path`` (``.npz`` for a table, ``.pt`` otherwise),
    atomically."""
    path = Path(path)
    expected = suffix_for(teacher)
    if path.suffix != expected:
        raise RlimmError(f"a {type(teacher).__name__} is saved as a {expected} file, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(teacher, "gaussian"):  # Box actions: the Gaussian teachers' own format (state dicts)
        from rlimm.agents.gaussian_teachers import save_gaussian_teacher

        return save_gaussian_teacher(teacher, path, meta.get("env_id"), str(meta.get("visible")), meta)
    description = json.dumps({**meta, "name": teacher.name})
    if isinstance(teacher, TabularTeacher):
        return atomic_write(path, lambda tmp: np.savez(tmp, table=teacher.table, meta=np.array(description)))
    import torch

    return atomic_write(path, lambda tmp: torch.save({"teacher": teacher, "meta": description}, tmp))


def load_teacher(path: str | Path) -> TeacherFile:
    """Read a teacher file written by :func:`save_teacher`."""
    path = Path(path)
    if not path.is_file():
        raise RlimmError(f"teacher file not found: {path}")
    if path.suffix == ".pt":
        import torch

        from rlimm.agents.gaussian_teachers import FILE_FORMAT, load_gaussian_teacher

        try:
            data = torch.load(path, weights_only=False)
            if isinstance(data, dict) and data.get("format") == FILE_FORMAT:
                gaussian = load_gaussian_teacher(path)
                return TeacherFile(gaussian.teacher, gaussian.meta)
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
