"""The paper's toroidal grid: a continuing task on an H×W torus with a bump-shaped reward.

State (y, x) is observed as the single integer ``y·W + x`` (``Discrete(H·W)``), which SB3 one-hots,
exactly as the reference implementation feeds the policy. Actions UP, DOWN, LEFT, RIGHT move one
cell with wrap-around; the reward after each move is the density of N(0, σ²·I) evaluated at the new
cell's coordinates on ``linspace(-2, 2, ·)``. The task never terminates: training code cuts
trajectories with a time limit.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3
ACTION_NAMES = ("UP", "DOWN", "LEFT", "RIGHT")
# (dy, dx) of each action; y grows downwards as on a screen.
_MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]])


def bump_reward(height: int, width: int, variance: float) -> np.ndarray:
    """Reward grid ``(height, width)``: density of N(0, variance·I) on linspace(-2, 2)²."""
    if variance <= 0:
        raise ValueError(f"reward variance must be > 0, got {variance}")
    ys = np.linspace(-2.0, 2.0, height)
    xs = np.linspace(-2.0, 2.0, width)
    sq = ys[:, None] ** 2 + xs[None, :] ** 2
    return np.exp(-sq / (2.0 * variance)) / (2.0 * np.pi * variance)


class ToroidalGridEnv(gym.Env):
    """Toroidal grid world of the IMM paper's RL experiment.

    :param height: number of rows (the coordinate y).
    :param width: number of columns (the coordinate x).
    :param reward_variance: variance σ² of the isotropic bump (0.1 in the paper's Python
        environment; the authors' Julia POMDP used 0.3).
    :param render_mode: ``"ansi"`` (text), ``"rgb_array"`` (an image: the reward bump in green, the
        agent in red; what SB3's ``make_vec_env`` and video recorders ask for) or ``None``.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    #: Names and sizes of the observation's factors, slowest first (``obs = y·W + x``):
    #: what a :class:`~rlimm.envs.restrictions.FactoredRestriction` may name as visible.
    observation_factors: dict[str, int]
    #: The paper's evaluation protocol: the task never ends, so an evaluation episode is 22 steps.
    evaluation_steps: int = 22

    def __init__(
        self,
        height: int = 11,
        width: int = 11,
        reward_variance: float = 0.1,
        render_mode: str | None = None,
    ) -> None:
        if height < 1 or width < 1:
            raise ValueError(f"grid size must be positive, got height={height}, width={width}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.height, self.width = int(height), int(width)
        self.reward_variance = float(reward_variance)
        self.render_mode = render_mode
        self.observation_factors = {"y": self.height, "x": self.width}
        self.observation_space = spaces.Discrete(self.height * self.width)
        self.action_space = spaces.Discrete(4)
        self.reward_grid = bump_reward(self.height, self.width, self.reward_variance)
        self._y = 0
        self._x = 0

    def _obs(self) -> int:
        return self._y * self.width + self._x

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self._y = int(self.np_random.integers(self.height))
        self._x = int(self.np_random.integers(self.width))
        return self._obs(), {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        dy, dx = _MOVES[int(action)]
        self._y = int((self._y + dy) % self.height)
        self._x = int((self._x + dx) % self.width)
        reward = float(self.reward_grid[self._y, self._x])
        return self._obs(), reward, False, False, {}

    def render(self) -> str | np.ndarray | None:
        if self.render_mode == "rgb_array":
            image = np.zeros((self.height, self.width, 3), dtype=np.uint8)
            image[..., 1] = np.round(255 * self.reward_grid / self.reward_grid.max()).astype(np.uint8)
            image[self._y, self._x] = (255, 0, 0)
            return image
        if self.render_mode != "ansi":
            return None
        rows = []
        for y in range(self.height):
            rows.append(" ".join("A" if (y, x) == (self._y, self._x) else "." for x in range(self.width)))
        return "\n".join(rows)

    def tabular_model(self) -> tuple[np.ndarray, np.ndarray]:
        """The MDP as arrays, for exact solvers.

        :return: ``transitions`` of shape ``(A, S, S)`` (``T[a, s, s']``) and expected immediate
            ``rewards`` of shape ``(S, A)``: the reward this environment pays for taking ``a`` in
            ``s`` (the bump at the cell it moves to).
        """
        n_states = self.height * self.width
        ys, xs = np.divmod(np.arange(n_states), self.width)
        transitions = np.zeros((4, n_states, n_states))
        rewards = np.zeros((n_states, 4))
        for a, (dy, dx) in enumerate(_MOVES):
            nxt = ((ys + dy) % self.height) * self.width + (xs + dx) % self.width
            transitions[a, np.arange(n_states), nxt] = 1.0
            rewards[:, a] = self.reward_grid.reshape(-1)[nxt]
        return transitions, rewards
