"""Exact teachers: the restricted POMDP of a tabular environment solved (FIB, QMDP) or the optimal
full-state policy induced onto the visible contexts; the environment's model read from
``tabular_model()`` or gymnasium's toy-text transition table."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlimm.agents.teachers.solvers import TabularPOMDP, fib, q_value_iteration, qmdp
from rlimm.agents.teachers.tabular import TabularTeacher, alpha_teacher, utilities_to_policy
from rlimm.envs.restrictions import PartitionRestriction
from rlimm.errors import RlimmError

#: The exact solvers :func:`pomdp_teacher` accepts.
SOLVERS = ("fib", "qmdp", "induced_optimal")


def tabular_model(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """``(transitions (A, S, S), rewards (S, A))`` of a tabular environment, for exact solvers.

    Uses ``env.unwrapped.tabular_model()`` when the environment offers it (the grid); otherwise reads
    gymnasium's toy-text table ``env.unwrapped.P[s][a] = [(p, s', r, terminated), …]`` (Taxi,
    FrozenLake, CliffWalking): ``rewards`` is the expected immediate reward ``Σ p·r``, and a transition
    that ends the episode keeps its reward but loses its mass in ``transitions``, whose row then sums
    to less than one (see :mod:`rlimm.agents.teachers.solvers`).
    """
    base = env.unwrapped
    # Environments are not teachers: what they offer is duck-typed, as gymnasium's toy-text tables are.
    if hasattr(base, "tabular_model"):
        return base.tabular_model()
    if getattr(base, "P", None) is not None:
        return _transition_table_model(base)
    raise RlimmError(
        f"{type(base).__name__} offers neither tabular_model() nor a transition table P, so exact "
        "teachers cannot be computed for it; use a teacher trained on the partial view instead"
    )


def _transition_table_model(base: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """Arrays from a gymnasium toy-text ``P[s][a] = [(p, s', r, terminated), …]`` table."""
    obs_space, act_space = base.observation_space, base.action_space
    if not isinstance(obs_space, spaces.Discrete) or not isinstance(act_space, spaces.Discrete):
        raise RlimmError(
            f"a transition table P needs Discrete observations and actions; {type(base).__name__} has "
            f"{obs_space} and {act_space}"
        )
    if getattr(base, "fickle_passenger", False):
        raise RlimmError(
            "Taxi's fickle passenger changes destination outside the transition table P: exact teachers "
            "need fickle_passenger=False"
        )
    n_states, n_actions = int(obs_space.n), int(act_space.n)
    transitions = np.zeros((n_actions, n_states, n_states))
    rewards = np.zeros((n_states, n_actions))
    for s in range(n_states):
        for a in range(n_actions):
            try:
                outcomes = base.P[s][a]
            except (KeyError, IndexError) as err:
                raise RlimmError(
                    f"the transition table P of {type(base).__name__} has no entry for state {s}, action {a}"
                ) from err
            for outcome in outcomes:
                p, nxt, r, done = outcome[:4]
                rewards[s, a] += p * r
                if not done:
                    transitions[a, s, int(nxt)] += p
    return transitions, rewards


def optimal_policy(
    env: gym.Env,
    mode: str = "argmax",
    temperature: float = 1.0,
    discount: float = 0.9,
) -> np.ndarray:
    """The optimal full-state policy ``(S, A)`` of a tabular ``env`` (Q-value iteration), ``argmax``
    (ties shared) or ``softmax`` of its Q-values."""
    transitions, rewards = tabular_model(env)
    return utilities_to_policy(q_value_iteration(transitions, rewards, discount), mode, temperature)


def pomdp_teacher(
    env: gym.Env,
    restriction: PartitionRestriction,
    solver: str = "fib",
    mode: str = "argmax",
    temperature: float = 1.0,
    discount: float = 0.9,
    optimal: np.ndarray | None = None,
) -> TabularTeacher:
    """Solve the restricted POMDP of ``env`` exactly and return its policy per visible context.

    :param solver: ``fib`` (Fast Informed Bound), ``qmdp``, or ``induced_optimal`` (the optimal
        full-state policy averaged over hidden values with the restriction's belief: the restricted
        model IMM's consistency argument assumes).
    :param mode: ``argmax`` (one-hot, ties shared) or ``softmax`` with ``temperature``.
    :param discount: discount of the POMDP/MDP that is solved.
    :param optimal: ``induced_optimal``: the optimal full-state policy, if the caller has it already
        (:func:`optimal_policy` with the same settings).
    """
    restriction.check_space(env.observation_space)
    name = f"{solver}-{mode}" + (f"-T{temperature:g}" if mode == "softmax" else "")
    if solver == "induced_optimal":
        if optimal is None:
            optimal = optimal_policy(env, mode, temperature, discount)
        return TabularTeacher(restriction.state_belief() @ optimal, name)
    transitions, rewards = tabular_model(env)
    if solver not in ("fib", "qmdp"):
        raise RlimmError(f"unknown teacher solver '{solver}'; accepted: {', '.join(SOLVERS)}")
    pomdp = TabularPOMDP.from_restriction(transitions, rewards, restriction.context_of, discount)
    alphas = fib(pomdp) if solver == "fib" else qmdp(pomdp)
    return alpha_teacher(alphas, restriction, mode, temperature, name)
