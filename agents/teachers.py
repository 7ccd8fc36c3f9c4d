"""Restricted teachers: policies over visible contexts.

A teacher answers one question: for a batch of visible contexts, what distribution over actions does
the restricted model give? :class:`TabularTeacher` holds it as a ``(C, A)`` table, which covers the
exact POMDP solutions and the induced-optimal oracle; the table is built once and the training loop
indexes it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm

from rlimm.agents.pomdp import TabularPOMDP, fib, q_value_iteration, qmdp
from rlimm.envs.restriction import PartitionRestriction
from rlimm.errors import RlimmError

POLICY_MODES = ("argmax", "softmax")


@runtime_checkable
class Teacher(Protocol):
    """What every restricted teacher offers: action probabilities for a batch of visible parts (what
    ``restriction.visible`` returns: context indices for a partition, visible coordinates for a Box
    restriction, visible keys for a Dict one), and a check that it fits a restriction and an action
    space."""

    name: str

    @property
    def n_actions(self) -> int: ...

    def probs(self, visible: Any) -> np.ndarray: ...

    def check_compatible(self, restriction: Any, action_space: gym.Space) -> None: ...


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
            raise RlimmError(_discrete_only(self.name, action_space))
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


def _discrete_only(name: str, action_space: gym.Space) -> str:
    if isinstance(action_space, spaces.MultiDiscrete):
        return (
            f"teacher '{name}' is a table over Discrete actions but the environment's actions are "
            f"{action_space}: a MultiDiscrete action space needs a policy teacher (solver 'trained' or "
            "'model')"
        )
    return (
        f"teacher '{name}' gives probabilities over Discrete actions but the environment's actions are "
        f"{action_space}: a Box action space needs a Gaussian teacher (rlimm.agents.gaussian_teachers)"
    )


def action_sizes(action_space: gym.Space) -> list[int]:
    """The number of actions of each dimension: ``[n]`` for ``Discrete(n)``, ``nvec`` for a 1-D
    ``MultiDiscrete``."""
    if isinstance(action_space, spaces.Discrete):
        return [int(action_space.n)]
    if isinstance(action_space, spaces.MultiDiscrete) and np.ndim(action_space.nvec) == 1:
        return [int(n) for n in action_space.nvec]
    raise RlimmError(f"teachers need a Discrete or 1-D MultiDiscrete action space, got {action_space}")


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
    """``(transitions (A, S, S), rewards (S, A))`` of a tabular environment, for exact solvers.

    Uses ``env.unwrapped.tabular_model()`` when the environment offers it (the grid); otherwise reads
    gymnasium's toy-text table ``env.unwrapped.P[s][a] = [(p, s', r, terminated), …]`` (Taxi,
    FrozenLake, CliffWalking): ``rewards`` is the expected immediate reward ``Σ p·r``, and a transition
    that ends the episode keeps its reward but loses its mass in ``transitions``, whose row then sums
    to less than one (see :mod:`rlimm.agents.pomdp`).
    """
    base = env.unwrapped
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
    restriction: Any = None,
    mode: str = "softmax",
    temperature: float = 1.0,
    name: str | None = None,
) -> TabularTeacher | PolicyTeacher:
    """Teacher from an SB3 model that acts on the *visible part* (e.g. trained on
    :class:`~rlimm.envs.VisibleObservation`): for ``Discrete(C)`` observations its policy at every
    context, as a table; otherwise a :class:`PolicyTeacher` that evaluates the policy.

    Utilities are the model's action log-probabilities (Q-values for DQN): ``softmax`` with
    temperature 1 is the model's own policy, ``argmax`` its greedy policy.

    :param restriction: if given, the model's observation space must be its visible part.
    """
    space = model.observation_space
    sizes = action_sizes(model.action_space)
    name = name or f"{type(model).__name__.lower()}-{mode}"
    # A table holds one distribution per context; MultiDiscrete actions keep the policy (per dimension).
    multi = isinstance(model.action_space, spaces.MultiDiscrete)
    if not isinstance(space, spaces.Discrete) or multi:
        teacher = PolicyTeacher(model.policy, space, sum(sizes), mode, temperature, name, nvec=sizes)
        if restriction is not None:
            expected = restriction.visible_space
            if _space_shape(expected) != _space_shape(space):
                raise RlimmError(
                    f"the teacher model observes {space} but the restriction shows {expected} "
                    "(a teacher acts on the visible part only)"
                )
        return teacher
    n = int(space.n)
    if restriction is not None and n != restriction.n_contexts:
        raise RlimmError(
            f"the teacher model observes Discrete({n}) but the restriction has {restriction.n_contexts} "
            "visible contexts"
        )
    utilities = policy_utilities(model.policy, th.arange(n, dtype=th.float32, device=model.device))
    table = utilities_to_policy(utilities.cpu().double().numpy(), mode, temperature)
    return TabularTeacher(table, name)


@th.no_grad()
def policy_utilities(policy: th.nn.Module, obs: Any) -> th.Tensor:
    """What an SB3 policy prefers at a batch of (unpreprocessed) observations: its action logits
    (actor-critic policies) or its Q-values (DQN)."""
    if hasattr(policy, "get_distribution"):
        distribution = policy.get_distribution(obs).distribution
        if isinstance(distribution, list):  # MultiDiscrete: one categorical per dimension, concatenated
            return th.cat([d.logits for d in distribution], dim=-1)
        return distribution.logits
    if hasattr(policy, "q_net"):
        return policy.q_net(obs)  # QNetwork.forward preprocesses the observation itself
    raise RlimmError(f"cannot read a policy from {type(policy).__name__}")


def frozen_copy(policy: th.nn.Module) -> th.nn.Module:
    """A CPU, eval-mode, gradient-free deep copy of a policy without optimizers, that pickles to
    worker processes. SB3 keeps the last distribution (SAC also its last pre-squash draw) with its
    autograd graph, which neither deepcopy nor pickle accepts: it is left out of the copy, and the
    source keeps its own."""
    holders = [getattr(m, "action_dist", None) for m in (policy, getattr(policy, "actor", None))]
    saved = [
        (h, attr, getattr(h, attr))
        for h in holders
        if h is not None
        for attr in ("distribution", "gaussian_actions")
        if getattr(h, attr, None) is not None
    ]
    for h, attr, _ in saved:
        setattr(h, attr, None)
    try:
        frozen = copy.deepcopy(policy)
    finally:
        for h, attr, value in saved:
            setattr(h, attr, value)
    frozen = frozen.to("cpu").eval()  # eval() is SB3's set_training_mode(False)
    for module in frozen.modules():
        if hasattr(module, "optimizer"):
            module.optimizer = None  # a teacher is never trained
    return frozen.requires_grad_(False)


class PolicyTeacher:
    """A teacher that is a policy on the visible part: an SB3 policy (or any torch module mapping a
    batch of visible observations to action logits) trained on the env as the restricted model sees
    it (:class:`~rlimm.envs.VisibleObservation`), or an induced expert (:func:`fit_induced_expert`).

    Its probabilities are computed at collection time from the raw visible part and stored with the
    rollout, so the learner's ``VecNormalize`` never changes what it sees.

    :param policy: an SB3 policy (``get_distribution``; DQN's ``q_net``) or a module ``visible → logits``.
    :param visible_space: the observation space the policy acts on.
    :param n_actions: number of (discrete) actions; for MultiDiscrete actions ``sum(nvec)``.
    :param mode: ``softmax`` (the policy's own probabilities at ``temperature`` 1) or ``argmax``.
    :param nvec: MultiDiscrete actions: the actions of each dimension. Probabilities (and logits) are
        then per dimension, concatenated, each dimension's summing to one (SB3's layout).
    """

    def __init__(
        self,
        policy: th.nn.Module,
        visible_space: gym.Space,
        n_actions: int,
        mode: str = "softmax",
        temperature: float = 1.0,
        name: str = "policy",
        nvec: list[int] | None = None,
    ) -> None:
        if mode not in POLICY_MODES:
            raise RlimmError(f"unknown teacher policy '{mode}'; accepted: {', '.join(POLICY_MODES)}")
        if nvec is not None and sum(nvec) != int(n_actions):
            raise RlimmError(f"n_actions ({n_actions}) must be the sum of nvec {list(nvec)}")
        self.policy = frozen_copy(policy)
        self.visible_space = visible_space
        self._n_actions = int(n_actions)
        self.nvec = None if nvec is None or len(nvec) == 1 else [int(n) for n in nvec]
        self.mode, self.temperature, self.name = mode, float(temperature), name

    @property
    def n_actions(self) -> int:
        return self._n_actions

    @th.no_grad()
    def logits(self, visible: Any) -> th.Tensor:
        obs = (
            {k: th.as_tensor(np.asarray(v)) for k, v in visible.items()}
            if isinstance(visible, dict)
            else th.as_tensor(np.asarray(visible))
        )
        if hasattr(self.policy, "get_distribution") or hasattr(self.policy, "q_net"):
            return policy_utilities(self.policy, obs)
        return self.policy(obs.float())

    def probs(self, visible: Any) -> np.ndarray:
        """Action probabilities ``(batch, A)`` for a batch of visible parts."""
        utilities = self.logits(visible).double().numpy()
        if getattr(self, "nvec", None) is None:  # (files saved before nvec existed have none)
            return utilities_to_policy(utilities, self.mode, self.temperature)
        parts = np.split(utilities, np.cumsum(self.nvec)[:-1], axis=-1)
        return np.concatenate([utilities_to_policy(u, self.mode, self.temperature) for u in parts], axis=-1)

    def check_compatible(self, restriction: Any, action_space: gym.Space) -> None:
        """Raise unless the policy's input is the restriction's visible part and its actions the env's."""
        if not isinstance(action_space, spaces.Discrete | spaces.MultiDiscrete):
            raise RlimmError(_discrete_only(self.name, action_space))
        sizes = action_sizes(action_space)
        mine = getattr(self, "nvec", None) or [self.n_actions]
        if mine != sizes:
            env = sizes[0] if isinstance(action_space, spaces.Discrete) else action_space
            ours = mine[0] if len(mine) == 1 else f"MultiDiscrete({mine})"
            raise RlimmError(f"teacher '{self.name}' has {ours} actions but the environment has {env}")
        expected = getattr(restriction, "visible_space", None)
        if expected is not None and _space_shape(expected) != _space_shape(self.visible_space):
            raise RlimmError(
                f"teacher '{self.name}' observes {self.visible_space} but the restriction shows {expected}"
            )


def _space_shape(space: gym.Space) -> Any:
    if isinstance(space, spaces.Dict):
        return {k: _space_shape(v) for k, v in space.spaces.items()}
    if isinstance(space, spaces.Discrete):
        return ("discrete", int(space.n))
    return tuple(space.shape or ())


def load_model(path: str | Path) -> BaseAlgorithm:
    """Load any saved SB3 model whose policy gives actions (on-policy algorithms, REINFORCE, DQN)."""
    path = Path(path)
    if not path.is_file():
        raise RlimmError(f"teacher model file not found: {path}")
    from stable_baselines3 import DQN, PPO, SAC

    errors = []
    # PPO's loader rebuilds any actor-critic policy (A2C's, REINFORCE's): only the policy is used.
    for cls in (PPO, DQN, SAC):
        try:
            return cls.load(path, device="cpu")
        except Exception as err:  # noqa: BLE001 - try the next loader, report all if none fits
            errors.append(f"{cls.__name__}: {type(err).__name__}")
    raise RlimmError(f"cannot load {path} as an SB3 model ({'; '.join(errors)})")


def _sb3_class(algo: str, what: str) -> type[BaseAlgorithm]:
    """The plain SB3 algorithm a teacher or an expert is trained with."""
    from stable_baselines3 import A2C, DQN, PPO, SAC

    classes = {"ppo": PPO, "a2c": A2C, "dqn": DQN, "sac": SAC}
    if algo not in classes:
        raise RlimmError(f"unknown {what} algorithm '{algo}'; accepted: {', '.join(classes)}")
    return classes[algo]


def train_restricted_teacher(
    env: gym.Env,
    restriction: Any,
    algo: str = "ppo",
    total_timesteps: int = 20_000,
    seed: int = 0,
    mode: str = "softmax",
    temperature: float = 1.0,
    algo_kwargs: dict | None = None,
) -> tuple[TabularTeacher | PolicyTeacher, BaseAlgorithm]:
    """Train an SB3 policy on the restricted view of ``env`` (only the visible part observed) and
    return it as a teacher, with the trained model.

    :param algo: ``ppo``, ``a2c`` or ``dqn`` (plain SB3 algorithms).
    """
    from rlimm.envs.wrappers import VisibleObservation

    model = _sb3_class(algo, "teacher")(
        "MlpPolicy", VisibleObservation(env, restriction), seed=seed, **(algo_kwargs or {})
    )
    model.learn(total_timesteps)
    return policy_teacher(model, restriction, mode, temperature, f"trained-{algo}-{mode}"), model


def train_full_expert(
    env: gym.Env,
    algo: str = "ppo",
    total_timesteps: int = 50_000,
    seed: int = 0,
    algo_kwargs: dict | None = None,
) -> BaseAlgorithm:
    """An SB3 policy trained on the *full* observation: the expert an induced expert is made from."""
    model = _sb3_class(algo, "expert")("MlpPolicy", env, seed=seed, **(algo_kwargs or {}))
    model.learn(total_timesteps)
    return model


class _VisibleMLP(th.nn.Module):
    """visible part (an array, or a dict of arrays flattened in key order) → action logits."""

    def __init__(self, n_inputs: int, n_actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = th.nn.Sequential(
            th.nn.Linear(n_inputs, hidden),
            th.nn.Tanh(),
            th.nn.Linear(hidden, hidden),
            th.nn.Tanh(),
            th.nn.Linear(hidden, n_actions),
        )

    def forward(self, visible: Any) -> th.Tensor:
        if isinstance(visible, dict):
            parts = [th.as_tensor(visible[k]).float().reshape(len(visible[k]), -1) for k in sorted(visible)]
            visible = th.cat(parts, dim=1)
        x = th.as_tensor(visible).float()
        return self.net(x.reshape(x.shape[0], -1))


def _expert_probs(expert: BaseAlgorithm, obs: Any) -> np.ndarray:
    obs_t, _ = expert.policy.obs_to_tensor(obs)
    if hasattr(expert.policy, "get_distribution"):  # the expert's own action probabilities
        with th.no_grad():
            return expert.policy.get_distribution(obs_t).distribution.probs.cpu().double().numpy()
    # DQN: greedy on its Q-values.
    return utilities_to_policy(policy_utilities(expert.policy, obs_t).cpu().double().numpy(), "argmax")


def fit_induced_expert(
    expert: BaseAlgorithm,
    env: gym.Env,
    restriction: Any,
    samples: int = 20_000,
    seed: int = 0,
    epochs: int = 200,
    name: str = "induced-expert",
) -> TabularTeacher | PolicyTeacher:
    """The *induced expert*: a full-state expert's action distribution regressed onto the visible part
    over the states the expert itself visits — E[π_expert(·|x) | x̄], the restricted model IMM's
    consistency argument assumes (the Box analogue of ``induced_optimal``).

    For a partition restriction the average is exact per context (visit-weighted); otherwise a small
    MLP on the visible part is fitted by minimising KL(expert ‖ MLP) over the visited states.

    :param expert: an SB3 model acting on the full observation.
    :param samples: environment steps the expert is run for.
    """
    if not isinstance(env.action_space, spaces.Discrete):
        raise RlimmError(f"teachers need a Discrete action space, got {env.action_space}")
    n_actions = int(env.action_space.n)
    rng_obs, probs_list = [], []
    obs, _ = env.reset(seed=seed)
    for _ in range(samples):
        rng_obs.append(obs)
        p = _expert_probs(expert, obs)[0]
        probs_list.append(p)
        action, _ = expert.predict(obs, deterministic=False)
        obs, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            obs, _ = env.reset()
    probs = np.asarray(probs_list)
    if isinstance(rng_obs[0], dict):
        batch: Any = {k: np.stack([o[k] for o in rng_obs]) for k in rng_obs[0]}
    else:
        batch = np.stack([np.asarray(o) for o in rng_obs])
    visible = restriction.visible(batch)
    if hasattr(restriction, "n_contexts"):  # exact per context, visit-weighted
        table = np.full((restriction.n_contexts, n_actions), 1.0 / n_actions)
        contexts = np.asarray(visible, dtype=np.int64).reshape(-1)
        sums = np.zeros_like(table)
        np.add.at(sums, contexts, probs)
        counts = np.bincount(contexts, minlength=restriction.n_contexts)
        seen = counts > 0
        table[seen] = sums[seen] / counts[seen, None]
        return TabularTeacher(table / table.sum(axis=1, keepdims=True), name)
    generator = th.Generator().manual_seed(seed)
    features = restriction.visible_features(batch)
    with th.random.fork_rng():
        th.manual_seed(seed)
        net = _VisibleMLP(int(np.asarray(features).shape[1]), n_actions)
    x = visible if isinstance(visible, dict) else th.as_tensor(np.asarray(visible), dtype=th.float32)
    target = th.as_tensor(probs, dtype=th.float32)
    optimizer = th.optim.Adam(net.parameters(), lr=3e-3)
    n = len(target)
    for _ in range(epochs):
        order = th.randperm(n, generator=generator)
        for start in range(0, n, 1024):
            idx = order[start : start + 1024]
            xb = {k: v[idx.numpy()] for k, v in x.items()} if isinstance(x, dict) else x[idx]
            log_q = th.log_softmax(net(xb), dim=-1)
            loss = -(target[idx] * log_q).sum(dim=1).mean()  # KL(expert ‖ net) up to a constant
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return PolicyTeacher(net, restriction.visible_space, n_actions, "softmax", 1.0, name)


def paper_alpha_teacher(path: str | Path, restriction: Any) -> TabularTeacher:
    """The IMM paper's own grid teacher: the authors' FIB α-vectors (``grid_fib_alphas.csv``, 121 × 4,
    state y·11 + x, columns UP, DOWN, LEFT, RIGHT), utilities b(x)·α with the uniform column belief,
    argmax with the paper's tie-breaking — the *first* maximal action (``np.argmax``: UP in the centre
    column), where :func:`alpha_teacher` shares exact ties."""
    path = Path(path)
    if not path.is_file():
        raise RlimmError(
            f"the paper's alpha-vectors were not found at {path}; set teacher.path or RLIMM_DATA_DIR "
            "(the file is imm_reference/grid_fib_alphas.csv)"
        )
    alphas = np.loadtxt(path, delimiter=",", comments="#")
    if alphas.shape != (restriction.n_observations, 4):
        raise RlimmError(
            f"{path} holds alpha-vectors of shape {alphas.shape}; the restriction needs "
            f"({restriction.n_observations}, 4)"
        )
    utilities = restriction.state_belief() @ alphas
    table = np.zeros_like(utilities)
    table[np.arange(len(utilities)), utilities.argmax(axis=1)] = 1.0
    return TabularTeacher(table, "paper-fib-argmax")
