"""Evaluation during training: learning curves, and the scores of shorter budgets read off one run.

:class:`EvaluationCallback` evaluates the policy being trained, as SB3's ``EvalCallback`` does, on a
separate evaluation env with its own seeds, and without touching the training's random streams:
``model.predict`` samples with torch's global generator, so the states of torch's (CPU and CUDA),
numpy's global and python's ``random`` generators are saved before each evaluation and restored
after it (:func:`preserved_random_state`). A run with evaluations therefore trains bit-identically
to one without.

It evaluates at two kinds of moments:

- every ``every`` environment steps (a point of the learning curve), after the step that reached it;
- at each budget checkpoint ``b``: the model state that ``learn(b)`` would have ended with. SB3's
  on-policy and off-policy ``learn`` stop after the first update at which ``num_timesteps ≥ b``, so
  that state is the one at the start of the next rollout collection (``_on_rollout_start``) once
  ``num_timesteps ≥ b``; the caller evaluates the remaining budgets after ``learn``
  (:meth:`EvaluationCallback.finish`). The random state there is the one a separate run for ``b``
  evaluates with, so the score is bit-identical to that run's.

A budget checkpoint is scored with the final evaluation's protocol (``score``); a curve point may be
scored with a cheaper one (``curve_score``: :func:`evaluate_side_by_side`, whose episodes run in
parallel with one seed each).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    SquashedDiagGaussianDistribution,
)
from stable_baselines3.common.logger import TensorBoardOutputFormat
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, Actor, SACPolicy

from rlimm.agents.reinforce import ActorOnlyPolicy


@contextmanager
def preserved_random_state() -> Iterator[None]:
    """Run the body, then put torch's (CPU and initialised CUDA devices), numpy's global and python's
    ``random`` generators back in the state they had before it."""
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        np.random.set_state(numpy_state)
        random.setstate(python_state)


#: The columns of ``curves.csv`` (``rlimm compare`` and ``rlimm train``), one row per evaluation
#: during training: ``method`` (``rlimm train``: its regulariser); ``budget`` the budget the run was
#: trained for, in the config's unit (one run for several budgets: the longest; ``rlimm train``: its
#: ``n_timesteps``); ``step`` the environment steps done; ``score`` the mean return of the
#: evaluation episodes; ``eval_steps`` the step cap of an evaluation episode.
CURVE_COLUMNS = [
    "method",
    "algo",
    "teacher",
    "budget",
    "lambda_ratio",
    "lambda_schedule",
    "seed",
    "step",
    "score",
    "eval_steps",
]


@contextmanager
def unchecked_distributions() -> Iterator[None]:
    """Run the body without torch.distributions' argument validation: the same values and random
    draws, at about half the cost of each ``predict`` (building a validated distribution per step
    dominates a small policy's forward pass)."""
    validate = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(validate)


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation during training: the mean and spread of the episode returns after ``step``
    environment steps."""

    step: int
    score: float
    score_std: float


@dataclass(frozen=True)
class Checkpoint:
    """The evaluation of the model state a run for ``timesteps`` steps ends with."""

    timesteps: int
    returns: np.ndarray
    #: Seconds from the start of the run to this state, evaluations during training excluded.
    train_seconds: float


#: ``score(model) -> returns``: the evaluation protocol (fresh evaluation env, its seeds, episodes).
Score = Callable[[BaseAlgorithm], np.ndarray]


def evaluate_side_by_side(
    model: BaseAlgorithm,
    make_env: Callable[[], gym.Env],
    episodes: int,
    steps: int,
    seed: int,
    deterministic: bool,
) -> np.ndarray:
    """Undiscounted return of each of ``episodes`` episodes played side by side, for a learning
    curve's point: episode ``i`` on its own env from ``make_env()``, reset with seed ``seed + i``,
    each to its env's own end and for at most ``steps`` steps; each step is one forward pass of
    ``model``'s policy (eval mode, no grad) for all unfinished episodes, on the observations
    normalised as in training when it runs under ``VecNormalize``, with the Box actions clipped or
    unscaled as SB3's ``predict`` does. The common policies' actions come from their actor network
    run in numpy (:func:`_direct_actions`: deterministic, the same actions as ``_predict``), the
    others' from ``obs_to_tensor`` and ``_predict``. ``make_env`` may leave out gymnasium's checking
    wrappers (``PassiveEnvChecker``, ``OrderEnforcing``: they change no step of a correct loop).

    How it differs from the final evaluation (:func:`rlimm.rl.environments.evaluate`, results.csv and the
    budget checkpoints): there the episodes run one after another on one env seeded once, each step a
    ``model.predict`` of one observation, and its episodes after the first start from that env's
    continuing random stream; here every episode has its own seed, so they can run in parallel. Why:
    ``predict``'s fixed cost per call (hundreds of µs for a small policy) times every step of every
    episode made evaluations during training cost several times the training itself; one batched
    call per step divides that by about ``episodes``, and the numpy network divides the rest by
    about five, leaving the env's own steps as most of the cost. Same policy, step cap and return, so the two
    estimate the same score; only episode 0 starts from the same state.
    """
    policy = model.policy
    policy.set_training_mode(False)
    act = _direct_actions(policy, deterministic) or _predicted_actions(policy, deterministic)
    normalizer = model.get_vec_normalize_env()
    envs = [make_env() for _ in range(episodes)]
    discrete = isinstance(envs[0].action_space, gym.spaces.Discrete)
    box = isinstance(policy.action_space, gym.spaces.Box)
    observations = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    # Array observations live in one array, so that a batch is one fancy index, not a stack.
    table = np.stack(observations) if isinstance(observations[0], np.ndarray) else None
    returns = np.zeros(episodes)
    running = np.arange(episodes)
    for _ in range(steps):
        if not len(running):
            break
        batch = table[running] if table is not None else _stack([observations[i] for i in running])
        if normalizer is not None:
            batch = normalizer.normalize_obs(batch)
        actions = np.asarray(act(batch)).reshape((-1, *policy.action_space.shape))
        if box:
            if policy.squash_output:
                actions = policy.unscale_action(actions)
            else:
                actions = np.clip(actions, policy.action_space.low, policy.action_space.high)
        going = np.ones(len(running), dtype=bool)
        for j, (i, action) in enumerate(zip(running.tolist(), actions, strict=True)):
            # Toy-text envs index their tables with the action itself (as in the final evaluation).
            obs, reward, terminated, truncated, _ = envs[i].step(int(action) if discrete else action)
            returns[i] += float(reward)
            if terminated or truncated:
                going[j] = False
            elif table is not None:
                table[i] = obs
            else:
                observations[i] = obs
        running = running[going]
    for env in envs:
        env.close()
    return returns


#: A batch of observations (normalised as in training) -> the policy's actions for them, as
#: ``policy._predict`` returns them (before Box actions are clipped or unscaled).
Act = Callable[[np.ndarray | dict[str, np.ndarray]], np.ndarray]


def _predicted_actions(policy: BasePolicy, deterministic: bool) -> Act:
    """The actions from SB3's own path, ``obs_to_tensor`` and ``_predict``: any policy."""

    def act(batch: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        obs_tensor, _ = policy.obs_to_tensor(batch)
        with torch.no_grad():
            return policy._predict(obs_tensor, deterministic=deterministic).cpu().numpy()

    return act


def _direct_actions(policy: BasePolicy, deterministic: bool) -> Act | None:
    """The actions computed by the actor network in numpy, for the common policies: an SB3
    ``ActorCriticPolicy`` (PPO, A2C, REINFORCE) with a categorical or diagonal Gaussian distribution,
    and SAC's actor without gSDE, each on a flat Box or Discrete observation, with an MLP of
    ``Linear``, ``Tanh`` and ``ReLU`` layers (SB3's default ``net_arch`` and activations). ``None``
    for anything else (Dict, MultiDiscrete or image observations, other extractors, layers or
    distributions): those take :func:`_predicted_actions`. The modules must be of exactly those classes
    (a subclass may compute something else in its ``forward``), and the policy must compute its action
    distribution as SB3's does (no override of the methods the numpy path stands in for).

    The weights are copied out once per evaluation (they do not change during it). Why numpy: for
    the few rows of an evaluation batch, each torch call's fixed cost (module dispatch, autograd
    bookkeeping, building SB3's and torch's distribution objects) is several times the arithmetic;
    the same layers in numpy cost about a fifth of ``predict``. The same network outputs up to float
    rounding (numpy's and torch's float32 matmuls may differ in the last bits), so the deterministic
    actions are ``_predict``'s (the arg max of the logits, a Gaussian's mean, SAC's ``tanh`` of the
    mean). Stochastic actions are drawn from the same distribution with numpy's global generator
    (categorical: the Gumbel-max trick; Gaussian: standard normals); an evaluation runs inside
    :func:`preserved_random_state`, so the training's streams are untouched either way.
    """
    space = policy.observation_space
    flat = isinstance(space, gym.spaces.Discrete) or (
        isinstance(space, gym.spaces.Box) and not is_image_space(space)
    )
    if not flat:
        return None
    # REINFORCE's policy samples its categorical by inverse CDF instead of torch's Categorical: the same
    # distribution, so it may take the numpy path as it is (its subclasses may not).
    same_actions = type(policy) is ActorOnlyPolicy or _unchanged(
        type(policy), ActorCriticPolicy, ("_predict",)
    )
    if (
        isinstance(policy, ActorCriticPolicy)
        and same_actions
        and _unchanged(type(policy), ActorCriticPolicy, ("get_distribution", "extract_features"))
        and type(policy.pi_features_extractor) is FlattenExtractor
        and type(policy.mlp_extractor) is MlpExtractor
    ):
        return _actor_critic_actions(policy, deterministic)
    if (
        isinstance(policy, SACPolicy)
        and _unchanged(type(policy), SACPolicy, ("_predict",))
        and type(policy.actor) is Actor
        and type(policy.actor.features_extractor) is FlattenExtractor
    ):
        return _sac_actions(policy.actor, deterministic)
    return None


def _unchanged(cls: type, base: type, methods: Sequence[str]) -> bool:
    """Whether ``cls`` inherits ``methods`` from ``base`` as they are (no subclass overrides them)."""
    return all(getattr(cls, name) is getattr(base, name) for name in methods)


#: ``x -> y`` for one layer, in numpy.
Layer = Callable[[np.ndarray], np.ndarray]


def _numpy_layers(modules: list[torch.nn.Module]) -> list[Layer] | None:
    """The modules as numpy functions (``Linear``, ``Tanh``, ``ReLU``; a ``Sequential`` of them), or
    ``None`` if one is anything else."""
    layers: list[Layer] = []
    for module in modules:
        # Exact classes: a subclass's forward may compute something else.
        kind = type(module)
        if kind is torch.nn.Sequential:
            inner = _numpy_layers(list(module))
            if inner is None:
                return None
            layers += inner
        elif kind is torch.nn.Linear:
            weight = module.weight.detach().cpu().numpy().T.copy()
            bias = None if module.bias is None else module.bias.detach().cpu().numpy().copy()
            layers.append(lambda x, w=weight, b=bias: x @ w if b is None else x @ w + b)
        elif kind is torch.nn.Tanh:
            layers.append(np.tanh)
        elif kind is torch.nn.ReLU:
            layers.append(lambda x: np.maximum(x, 0))
        else:
            return None
    return layers


def _features(space: gym.Space) -> Layer:
    """SB3's ``preprocess_obs`` and ``FlattenExtractor`` for a flat Box (a float32 copy) or a
    Discrete (one-hot) observation."""
    if isinstance(space, gym.spaces.Discrete):
        eye = np.eye(int(space.n), dtype=np.float32)
        return lambda obs: eye[np.asarray(obs, dtype=np.int64).reshape(-1)]
    return lambda obs: np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)


def _run(layers: list[Layer], x: np.ndarray) -> np.ndarray:
    for layer in layers:
        x = layer(x)
    return x


def _actor_critic_actions(policy: ActorCriticPolicy, deterministic: bool) -> Act | None:
    """``ActorCriticPolicy.get_distribution``'s forward pass (features -> latent -> logits or mean),
    then the action without the distribution object."""
    categorical = type(policy.action_dist) is CategoricalDistribution
    if not (categorical or type(policy.action_dist) is DiagGaussianDistribution):
        return None
    layers = _numpy_layers([policy.mlp_extractor.policy_net, policy.action_net])
    if layers is None:
        return None
    features = _features(policy.observation_space)
    std = None if categorical else np.exp(policy.log_std.detach().cpu().numpy())

    def act(batch: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        out = _run(layers, features(batch))
        if categorical:
            return _categorical(out, deterministic)
        if deterministic:
            return out
        # SB3's DiagGaussianDistribution: scale = exp(log_std), one per action dimension.
        return out + np.random.standard_normal(out.shape).astype(np.float32) * std

    return act


def _sac_actions(actor: Actor, deterministic: bool) -> Act | None:
    """SAC's ``Actor.get_action_dist_params`` (features -> latent -> mean, log std), then the
    squashed Gaussian's action without the distribution object."""
    if actor.use_sde or type(actor.action_dist) is not SquashedDiagGaussianDistribution:
        return None
    latent, mu, log_std = (_numpy_layers([m]) for m in (actor.latent_pi, actor.mu, actor.log_std))
    if latent is None or mu is None or log_std is None:
        return None
    features = _features(actor.observation_space)

    def act(batch: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        hidden = _run(latent, features(batch))
        mean = _run(mu, hidden)
        if deterministic:
            return np.tanh(mean)
        std = np.exp(np.clip(_run(log_std, hidden), LOG_STD_MIN, LOG_STD_MAX))
        return np.tanh(mean + np.random.standard_normal(mean.shape).astype(np.float32) * std)

    return act


def _categorical(logits: np.ndarray, deterministic: bool) -> np.ndarray:
    """The most likely action of each row of ``logits``, or one drawn from its softmax with the
    Gumbel-max trick (the arg max of ``logits + Gumbel noise``)."""
    if deterministic:
        return logits.argmax(axis=-1)
    uniform = np.random.random(logits.shape)
    return (logits - np.log(-np.log(uniform))).argmax(axis=-1)


def _stack(observations: list) -> np.ndarray | dict[str, np.ndarray]:
    """One batch of single observations (arrays, numbers, or dicts of them)."""
    if isinstance(observations[0], dict):
        return {k: np.stack([np.asarray(o[k]) for o in observations]) for k in observations[0]}
    return np.stack([np.asarray(o) for o in observations])


class EvaluationCallback(BaseCallback):
    """Evaluates with ``curve_score`` (default: ``score``) every ``every`` environment steps
    (``None``: never) into :attr:`curve`, and with ``score`` at each of ``checkpoints`` (environment
    steps) into :attr:`checkpoints`, leaving the training's random streams untouched.

    :param started: ``time.perf_counter()`` at the start of the run (for each checkpoint's
        ``train_seconds``).
    :param on_checkpoint: called with the budget's timesteps and the model before a checkpoint is
        evaluated (tests compare parameters with it).
    :param curve_score: the protocol of the curve's points, e.g. :func:`evaluate_side_by_side`.
    """

    def __init__(
        self,
        score: Score,
        every: int | None = None,
        checkpoints: Sequence[int] = (),
        started: float | None = None,
        on_checkpoint: Callable[[int, BaseAlgorithm], None] | None = None,
        curve_score: Score | None = None,
    ) -> None:
        super().__init__()
        self.score = score
        self.curve_score = score if curve_score is None else curve_score
        self.every = every
        self.pending = sorted(set(checkpoints))
        self.started = time.perf_counter() if started is None else started
        self.on_checkpoint = on_checkpoint
        self.curve: list[CurvePoint] = []
        self.checkpoints: list[Checkpoint] = []
        self.next_eval = every
        self.eval_seconds = 0.0

    def _evaluate(self, score: Score, model: BaseAlgorithm) -> np.ndarray:
        start = time.perf_counter()
        with preserved_random_state(), unchecked_distributions():
            returns = score(model)
        self.eval_seconds += time.perf_counter() - start
        return returns

    def _on_step(self) -> bool:
        if self.next_eval is None or self.num_timesteps < self.next_eval:
            return True
        while self.next_eval <= self.num_timesteps:  # several envs may step past more than one mark
            self.next_eval += self.every
        returns = self._evaluate(self.curve_score, self.model)
        point = CurvePoint(int(self.num_timesteps), float(returns.mean()), float(returns.std()))
        self.curve.append(point)
        if any(isinstance(f, TensorBoardOutputFormat) for f in self.logger.output_formats):
            self.logger.record("eval/mean_reward", point.score)
            self.logger.dump(self.num_timesteps)
        return True

    def _on_rollout_start(self) -> None:
        self._checkpoints(self.model, self.model.num_timesteps)

    def finish(self, model: BaseAlgorithm) -> list[Checkpoint]:
        """After ``learn``: evaluate every checkpoint not yet evaluated (the longest budget's is the
        model as trained); returns all checkpoints, shortest first."""
        self._checkpoints(model, None)
        return self.checkpoints

    def _checkpoints(self, model: BaseAlgorithm, reached: int | None) -> None:
        while self.pending and (reached is None or reached >= self.pending[0]):
            timesteps = self.pending.pop(0)
            seconds = time.perf_counter() - self.started - self.eval_seconds
            if self.on_checkpoint is not None:
                self.on_checkpoint(timesteps, model)
            self.checkpoints.append(Checkpoint(timesteps, self._evaluate(self.score, model), seconds))
