"""The network a teacher fitted on the visible part is (:mod:`rlimm.agents.teachers.expert`)."""

from __future__ import annotations

from typing import Any

import torch as th


class VisibleMLP(th.nn.Module):
    """Flat visible features ``(n, f)`` (:func:`~rlimm.agents.teachers.base.visible_features`) → head
    outputs ``(n, n_outputs)``: a two-layer tanh trunk ``body`` on standardised inputs
    (``(x − shift) / scale``, buffers saved with the weights; zero and one unless the fit sets them),
    then a linear ``head``.

    The head is read as action logits (:meth:`logits`, a categorical head of ``n`` actions) or as a
    diagonal Gaussian (:meth:`gaussian`, ``n_outputs = 2d``: ``mean ‖ log_std``).
    """

    def __init__(self, n_inputs: int, n_outputs: int, hidden: int = 64) -> None:
        super().__init__()
        self.n_inputs, self.n_outputs, self.hidden = int(n_inputs), int(n_outputs), int(hidden)
        self.register_buffer("shift", th.zeros(self.n_inputs))
        self.register_buffer("scale", th.ones(self.n_inputs))
        self.body = th.nn.Sequential(
            th.nn.Linear(self.n_inputs, self.hidden),
            th.nn.Tanh(),
            th.nn.Linear(self.hidden, self.hidden),
            th.nn.Tanh(),
        )
        self.head = th.nn.Linear(self.hidden, self.n_outputs)

    def forward(self, x: th.Tensor) -> th.Tensor:
        return self.head(self.body((x - self.shift) / self.scale))

    def logits(self, x: th.Tensor) -> th.Tensor:
        """Action logits ``(n, n_outputs)``."""
        return self(x)

    def gaussian(self, x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """``(mean, log_std)``, each ``(n, n_outputs / 2)``."""
        mean, log_std = self(x).split(self.n_outputs // 2, dim=-1)
        return mean, log_std

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Induced experts pickled before this class (rlimm.agents.teachers._VisibleMLP, see
        # rlimm.agents.teachers.files) hold one Sequential `net` = body + head, without standardisation.
        modules = state["_modules"]
        if "net" in modules:
            net = modules.pop("net")
            first, head = net[0], net[4]
            body = th.nn.Sequential(*list(net)[:4])
            body.train(net.training)
            modules["body"], modules["head"] = body, head
            state["_buffers"]["shift"] = th.zeros(first.in_features)
            state["_buffers"]["scale"] = th.ones(first.in_features)
            state.update(n_inputs=first.in_features, n_outputs=head.out_features, hidden=first.out_features)
        super().__setstate__(state)
