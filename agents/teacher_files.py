"""Teacher files: a restricted teacher saved by ``rlimm teacher`` for reuse by ``train`` and ``compare``.

A teacher file is a NumPy ``.npz`` archive with the ``(contexts, actions)`` policy table and a JSON
description of what it was built for (environment, visible fields, solver), so that a teacher built
for another restriction is refused rather than silently misused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlimm.agents.teachers import TabularTeacher
from rlimm.common.files import atomic_write
from rlimm.errors import RlimmError

SUFFIX = ".npz"


@dataclass(frozen=True)
class TeacherFile:
    """A loaded teacher file.

    :param teacher: the policy table.
    :param meta: what it was built for: ``env_id``, ``env_kwargs``, ``visible`` and the teacher
        settings (``solver``, ``policy`` …).
    """

    teacher: TabularTeacher
    meta: dict[str, Any] = field(default_factory=dict)

    def check_visible(self, visible: list[str]) -> None:
        """Raise unless the file was built for the same visible fields."""
        built_for = self.meta.get("visible")
        if built_for is not None and list(built_for) != list(visible):
            raise RlimmError(
                f"the teacher file was built for visible fields {built_for}, but the restriction "
                f"shows {list(visible)}"
            )


def save_teacher(teacher: TabularTeacher, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``teacher`` and its description to ``path`` (``.npz``), atomically."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise RlimmError(f"a teacher file must end in {SUFFIX}, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    description = json.dumps({**meta, "name": teacher.name})
    return atomic_write(path, lambda tmp: np.savez(tmp, table=teacher.table, meta=np.array(description)))


def load_teacher(path: str | Path) -> TeacherFile:
    """Read a teacher file written by :func:`save_teacher`."""
    path = Path(path)
    if not path.is_file():
        raise RlimmError(f"teacher file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            table = archive["table"]
            meta = json.loads(str(archive["meta"]))
    except (OSError, ValueError, KeyError) as err:
        raise RlimmError(f"{path} is not a teacher file written by `rlimm teacher` ({err})") from None
    return TeacherFile(TabularTeacher(table, meta.get("name", path.stem)), meta)
