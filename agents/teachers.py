"""Restricted teachers: policies over visible contexts.

A teacher answers one question: for a batch of visible contexts, what distribution over actions does
the restricted model give? :class:`TabularTeacher` holds it as a ``(C, A)`` table, which covers the
exact POMDP solutions and the induced-optimal oracle; the table is built once and the training loop
indexes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm

from rlimm.agents.pomdp import TabularPOMDP, fib, q_value_iteration, qmdp
from rlimm.envs.restriction import PartitionRestriction
from rlimm.errors import RlimmError

POLICY_MODES = ("argmax", "softmax")
SOLVERS = ("fib", "qmdp", "induced_optimal")


@dataclass(frozen=True)
class TabularTeacher:
    """A restricted policy given as a table.

    :param table: ``(C, A)`` action probabilities for each visible context (rows sum to one).
    :param name: a short description, logged with the run.
    """

    table: np.ndarray
    name: str = "tabular"

    def __post_init__(self) -> None:
        t = np.asarray(self.table, dtype=np.float64)
        if t.ndim != 2 or (t < 0).any() or not np.allclose(t.sum(axis=1), 1.0):
            raise RlimmError("a teacher table must be (contexts, actions) with rows summing to one")
        object.__setattr__(self, "table", t)

    @property
    def n_contexts(self) -> int:
        return self.table.shape[0]

    @property
    def n_actions(self) -> int:
        return self.table.shape[1]

    def probs(self, contexts: np.ndarray) -> np.ndarray:
        """Action probabilities ``(batch, A)`` for a batch of context indices."""
        return self.table[np.asarray(contexts, dtype=np.int64)]

    def check_compatible(self, restriction: PartitionRestriction, action_space: gym.Space) -> None:
        """Raise unless this teacher fits the restriction's contexts and the action space."""
        if not isinstance(action_space, spaces.Discrete):
            raise RlimmError(f"teachers need a Discrete action space, got {action_space}")
        if self.n_actions != int(action_space.n):
            raise RlimmError(
                f"teacher '{self.name}' has {self.n_actions} actions but the environment has "
                f"{int(action_space.n)}"
            )
        if self.n_contexts != restriction.n_contexts:
            raise RlimmError(
                f"teacher '{self.name}' covers {self.n_contexts} visible contexts but the "
                f"restriction has {restriction.n_contexts}"
            )


def utilities_to_policy(
    utilities: np.ndarray, mode: str = "argmax", temperature: float = 1.0, tie_tol: float = 1e-9
) -> np.ndarray:
    """Turn ``(C, A)`` utilities into action probabilities.

    ``argmax`` is one-hot on the best action; exact ties (within ``tie_tol``, relative) share the
    mass equally rather than going to whichever action floating-point noise favours.
    ``softmax`` is ``softmax(u / temperature)``.
    """
    if mode == "argmax":
        best = utilities.max(axis=1, keepdims=True)
        winners = utilities >= best - tie_tol * np.maximum(np.abs(best), 1.0)
        return winners / winners.sum(axis=1, keepdims=True)
    if mode == "softmax":
        if not temperature > 0:
            raise RlimmError(f"softmax temperature must be > 0, got {temperature}")
        z = utilities / temperature
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
    raise RlimmError(f"unknown teacher policy '{mode}'; accepted: {', '.join(POLICY_MODES)}")


def alpha_teacher(
    alphas: np.ndarray,
    restriction: PartitionRestriction,
    mode: str = "argmax",
    temperature: float = 1.0,
    name: str = "alphas",
) -> TabularTeacher:
    """Teacher from ``(S, A)`` α-vectors: utilities ``b(c)·α`` with the restriction's belief ``b``."""
    if alphas.shape[0] != restriction.n_observations:
        raise RlimmError(
            f"alpha-vectors cover {alphas.shape[0]} states but the restriction has "
            f"{restriction.n_observations}"
        )
    utilities = restriction.state_belief() @ alphas
    return TabularTeacher(utilities_to_policy(utilities, mode, temperature), name)


def tabular_model(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """``(transitions, rewards)`` of an environment that offers ``tabular_model()``."""
    base = env.unwrapped
    if not hasattr(base, "tabular_model"):
        raise RlimmError(
            f"{type(base).__name__} offers no tabular_model(), so exact teachers cannot be "
            "computed for it; use a teacher trained on the partial view instead"
        )
    return base.tabular_model()


def pomdp_teacher(
    env: gym.Env,
    restriction: PartitionRestriction,
    solver: str = "fib",
    mode: str = "argmax",
    temperature: float = 1.0,
    discount: float = 0.9,
) -> TabularTeacher:
    """Solve the restricted POMDP of ``env`` exactly and return its policy per visible context.

    :param solver: ``fib`` (Fast Informed Bound), ``qmdp``, or ``induced_optimal`` (the optimal
        full-state policy averaged over hidden values with the restriction's belief: the restricted
        model IMM's consistency argument assumes).
    :param mode: ``argmax`` (one-hot, ties shared) or ``softmax`` with ``temperature``.
    :param discount: discount of the POMDP/MDP that is solved.
    """
    restriction.check_space(env.observation_space)
    transitions, rewards = tabular_model(env)
    name = f"{solver}-{mode}" + (f"-T{temperature:g}" if mode == "softmax" else "")
    if solver == "induced_optimal":
        q = q_value_iteration(transitions, rewards, discount)
        optimal = utilities_to_policy(q, mode, temperature)  # (S, A) full-state policy
        return TabularTeacher(restriction.state_belief() @ optimal, name)
    if solver not in ("fib", "qmdp"):
        raise RlimmError(f"unknown teacher solver '{solver}'; accepted: {', '.join(SOLVERS)}")
    pomdp = TabularPOMDP.from_restriction(transitions, rewards, restriction.context_of, discount)
    alphas = fib(pomdp) if solver == "fib" else qmdp(pomdp)
    return alpha_teacher(alphas, restriction, mode, temperature, name)


def policy_teacher(
    model: BaseAlgorithm,
    restriction: PartitionRestriction | None = None,
    mode: str = "softmax",
    temperature: float = 1.0,
    name: str | None = None,
) -> TabularTeacher:
    """Teacher from an SB3 model that acts on the *visible part* (``Discrete(C)`` observations, e.g.
    trained on :class:`~rlimm.envs.VisibleObservation`): its policy at every context, as a table.

    Utilities are the model's action log-probabilities (Q-values for DQN): ``softmax`` with
    temperature 1 is the model's own policy, ``argmax`` its greedy policy.

    :param restriction: if given, the model's observation space must have one value per context.
    """
    space = model.observation_space
    if not isinstance(space, spaces.Discrete):
        raise RlimmError(f"a policy teacher must observe the visible part as Discrete(contexts), got {space}")
    n = int(space.n)
    if restriction is not None and n != restriction.n_contexts:
        raise RlimmError(
            f"the teacher model observes Discrete({n}) but the restriction has {restriction.n_contexts} "
            "visible contexts"
        )
    obs = th.arange(n, dtype=th.float32, device=model.device)
    with th.no_grad():
        if hasattr(model.policy, "get_distribution"):
            utilities = model.policy.get_distribution(obs).distribution.logits
        elif hasattr(model.policy, "q_net"):
            utilities = model.policy.q_net(obs)
        else:
            raise RlimmError(f"cannot read a policy from {type(model).__name__}")
    table = utilities_to_policy(utilities.cpu().double().numpy(), mode, temperature)
    return TabularTeacher(table, name or f"{type(model).__name__.lower()}-{mode}")


def load_model(path: str | Path) -> BaseAlgorithm:
    """Load any saved SB3 model whose policy gives actions (on-policy algorithms, REINFORCE, DQN)."""
    path = Path(path)
    if not path.is_file():
        raise RlimmError(f"teacher model file not found: {path}")
    from stable_baselines3 import DQN, PPO

    errors = []
    # PPO's loader rebuilds any actor-critic policy (A2C's, REINFORCE's): only the policy is used.
    for cls in (PPO, DQN):
        try:
            return cls.load(path, device="cpu")
        except Exception as err:  # noqa: BLE001 - try the next loader, report all if none fits
            errors.append(f"{cls.__name__}: {type(err).__name__}")
    raise RlimmError(f"cannot load {path} as an SB3 model ({'; '.join(errors)})")


def train_restricted_teacher(
    env: gym.Env,
    restriction: PartitionRestriction,
    algo: str = "ppo",
    total_timesteps: int = 20_000,
    seed: int = 0,
    mode: str = "softmax",
    temperature: float = 1.0,
    algo_kwargs: dict | None = None,
) -> tuple[TabularTeacher, BaseAlgorithm]:
    """Train an SB3 policy on the restricted view of ``env`` (only the visible part observed) and
    return it as a teacher, with the trained model.

    :param algo: ``ppo``, ``a2c`` or ``dqn`` (plain SB3 algorithms).
    """
    from stable_baselines3 import A2C, DQN, PPO

    from rlimm.envs.wrappers import VisibleObservation

    classes = {"ppo": PPO, "a2c": A2C, "dqn": DQN}
    if algo not in classes:
        raise RlimmError(f"unknown teacher algorithm '{algo}'; accepted: {', '.join(classes)}")
    model = classes[algo]("MlpPolicy", VisibleObservation(env, restriction), seed=seed, **(algo_kwargs or {}))
    model.learn(total_timesteps)
    return policy_teacher(model, restriction, mode, temperature, f"trained-{algo}-{mode}"), model
