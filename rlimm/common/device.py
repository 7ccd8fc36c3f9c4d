"""Where torch computes: ``--device auto|cpu|cuda[:N]`` and the ``device`` key of configs.

Every command validates the device once, here (:func:`resolve_device`), before anything is written: a
malformed value, or a CUDA device on a machine without CUDA, is one line ``rlimm: error: …`` and exit
code 2. ``auto`` is CUDA (the current device) when torch sees one, else the CPU.

On the CPU nothing changes whatever the value: the same seeds give bit-identical results.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator

from rlimm.errors import RlimmError

if TYPE_CHECKING:  # torch is imported only when a device is resolved
    import torch

#: What ``--device`` and the ``device`` key accept, as the error messages say it.
ACCEPTED = "auto, cpu, cuda[:N]"
_SYNTAX = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(text: object) -> str:
    """``text`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; else :class:`RlimmError`.

    Only the spelling is checked (no torch import): for config validators and for a driver that sends
    work to other machines, where ``auto`` and ``cuda`` are resolved on each worker.
    """
    if not isinstance(text, str) or not _SYNTAX.fullmatch(text.strip().lower()):
        raise RlimmError(f"device '{text}' is not understood; accepted: {ACCEPTED}")
    return text.strip().lower()


def _valid_device(value: str) -> str:
    try:
        return check_device(value)
    except RlimmError as err:  # pydantic reports ValueErrors with the key's name
        raise ValueError(str(err)) from None


#: A config value naming a device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (spelling checked on load;
#: whether this machine has it, when the command resolves it).
DeviceName = Annotated[str, AfterValidator(_valid_device)]


def resolve_device(text: str | None) -> torch.device:
    """The torch device of ``text`` (``None`` = ``auto``), checked against this machine.

    :raises RlimmError: a malformed value, CUDA requested where torch has no CUDA, or a CUDA index
        beyond the devices present.
    """
    import torch

    text = check_device("auto" if text is None else text)
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RlimmError(f"device '{text}' requested but CUDA is not available; accepted: {ACCEPTED}")
    device = torch.device(text)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise RlimmError(
            f"device '{text}' requested but this machine has {count} CUDA device(s) "
            f"(cuda:0 … cuda:{count - 1}); accepted: {ACCEPTED}"
        )
    return device


def as_device(device: torch.device | str | None) -> torch.device:
    """``device`` if it is a :class:`torch.device` already, else :func:`resolve_device` of it."""
    import torch

    return device if isinstance(device, torch.device) else resolve_device(device)


def add_device_option(parser: argparse.ArgumentParser, default: str) -> None:
    """``--device auto|cpu|cuda[:N]``; ``None`` when not given (the config's ``device`` key then holds,
    whose default is ``default``)."""
    parser.add_argument(
        "--device",
        metavar="DEVICE",
        help=f"torch device: auto (CUDA when available), cpu, cuda or cuda:N (default: the config's "
        f"'device' key, else {default})",
    )


def describe(device: torch.device) -> str:
    """``cpu``, or ``cuda:0 (NVIDIA …)`` for a CUDA device: for the line a command prints at start."""
    import torch

    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
