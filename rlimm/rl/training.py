"""One training run of ``rlimm train``: build everything from a :class:`TrainConfig`, train with SB3's
evaluation and checkpoint callbacks, and save the model, its teacher and what produced them.

A run folder (RL Zoo style, ``<log-folder>/<algo>/<env>-<regularizer>_<n>``) holds:

- ``model.zip`` — the trained model (the teacher is not in it; pass ``teacher=`` to ``load``);
- ``teacher.npz`` (a table) or ``teacher.pt`` (a policy on the visible part) — the teacher it was
  trained with (a teacher file, see ``rlimm teacher``);
- ``config.yaml`` — the resolved configuration; ``command.txt`` — the command line;
- ``result.json`` — the final evaluation (and the learning curve, if any); with ``evaluation.every``:
  ``curves.csv`` (evaluations during training that leave training bit-identical,
  :mod:`rlimm.rl.evaluation`); with ``eval_freq``: ``evaluations.npz`` and ``best_model.zip``
  (SB3's ``EvalCallback``); with ``save_freq``: ``checkpoints/``.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from rlimm.agents.teachers import TabularTeacher, save_teacher, suffix_for
from rlimm.common.device import as_device
from rlimm.common.files import atomic_write_csv, atomic_write_text
from rlimm.rl.checks import check_against_env
from rlimm.rl.config import TrainConfig
from rlimm.rl.environments import (
    EVAL_SEED_OFFSET,
    acting,
    curve_scorer,
    evaluate,
    evaluation_steps,
    make_env,
    make_training_env,
)
from rlimm.rl.evaluation import CURVE_COLUMNS, CurvePoint, EvaluationCallback
from rlimm.rl.hidden_part import measure_run
from rlimm.rl.runs import build_agent
from rlimm.rl.teacher_builder import make_teacher, teacher_description, teacher_label, teacher_training_return


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or interrupted) run produced."""

    run_dir: str
    timesteps: int
    mean_return: float
    std_return: float
    train_seconds: float
    interrupted: bool
    #: The step cap of an evaluation episode.
    eval_steps: int
    #: Evaluations during training (``evaluation.every``): ``{step, score, score_std}`` each.
    curve: list[dict]
    #: With a teacher: the learner's induced policy against it and the hidden part left, on states
    #: it visits at the end (:mod:`rlimm.rl.hidden_part`: induced_kl, pointwise_kl, hidden_left, states).
    hidden_part: dict | None = None


@dataclass
class PreparedRun:
    """Everything built and checked before anything is written."""

    config: TrainConfig
    model: BaseAlgorithm
    teacher: TabularTeacher | None


def prepare(
    config: TrainConfig, tensorboard_log: str | None = None, device: torch.device | None = None
) -> PreparedRun:
    """Build env, restriction, teacher and model; any bad input raises here, before files exist.

    :param device: the agent's torch device (``None``: the config's ``device``, resolved here).
    """
    restriction = check_against_env(config)  # before the teacher, which may train for minutes
    teacher = make_teacher(config) if config.regularizer != "none" else None
    # lambda_schedule trust: the teacher's score in training-episode units, unless the config gives it.
    measure = config.lambda_schedule == "trust" and teacher is not None and config.trust.teacher_score is None
    score = teacher_training_return(config, teacher) if measure else None
    model = build_agent(
        config.algo,
        make_training_env(config, config.seed),
        config.regularizer,
        teacher,
        restriction,
        config.scheduled_teacher_coef(score),
        config.seed,
        tensorboard_log,
        as_device(config.device if device is None else device),
        config.induction,
    )
    return PreparedRun(config, model, teacher)


def new_run_dir(log_folder: str | Path, config: TrainConfig) -> Path:
    """``<log_folder>/<algo>/<env>-<regularizer>_<n>`` with ``n`` one more than any existing run."""
    env_slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", config.env.id).strip("-")
    parent = Path(log_folder) / config.algo.name
    stem = f"{env_slug}-{config.regularizer}"
    taken = [
        int(m.group(1)) for p in parent.glob(f"{stem}_*") if (m := re.fullmatch(rf"{stem}_(\d+)", p.name))
    ]
    return parent / f"{stem}_{max(taken, default=0) + 1}"


def _callbacks(config: TrainConfig, run_dir: Path) -> list[BaseCallback]:
    callbacks: list[BaseCallback] = []
    if config.eval_freq:
        ev = config.evaluation
        steps = evaluation_steps(make_env(config.env), ev.steps)
        eval_env: VecEnv = DummyVecEnv([lambda: Monitor(make_env(config.env, steps))])
        eval_env.seed(config.seed + EVAL_SEED_OFFSET)
        if config.algo.normalize is not False:  # EvalCallback copies the training env's statistics to it
            eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
        callbacks.append(
            EvalCallback(
                eval_env,
                n_eval_episodes=ev.episodes,
                eval_freq=config.eval_freq,
                log_path=str(run_dir),
                best_model_save_path=str(run_dir),
                deterministic=ev.deterministic,
                verbose=0,
            )
        )
    if config.save_freq:
        callbacks.append(
            CheckpointCallback(config.save_freq, str(run_dir / "checkpoints"), name_prefix="model")
        )
    return callbacks


class StopOnInterrupt(BaseCallback):
    """Ctrl-C ends training after the current step, not inside whatever is running: a checkpoint's
    ``torch.save`` interrupted mid-write aborts the process. The first SIGINT sets :attr:`interrupted`
    and training stops at the next step; a second one interrupts at once (the handler is restored).
    Outside the main thread (where no handler can be set) Ctrl-C interrupts as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupted = False
        self._previous = None

    def _on_training_start(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._interrupt)

    def _interrupt(self, signum: int, frame: object) -> None:
        self.interrupted = True
        self.restore()

    def restore(self) -> None:
        """Put back the SIGINT handler training started with (idempotent)."""
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_step(self) -> bool:
        return not self.interrupted

    def _on_training_end(self) -> None:
        self.restore()


def train(
    prepared: PreparedRun,
    run_dir: str | Path,
    argv: list[str] | None = None,
    progress_bar: bool = False,
) -> TrainResult:
    """Train a prepared run into ``run_dir`` and save it. Ctrl-C stops training early; the model
    trained so far is still saved and evaluated (``interrupted`` is set)."""
    config, model = prepared.config, prepared.model
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=False)
    atomic_write_text(
        run_dir / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    )
    if argv is not None:
        atomic_write_text(run_dir / "command.txt", shlex.join(argv) + "\n")
    if prepared.teacher is not None:
        name = "teacher" + suffix_for(prepared.teacher)
        save_teacher(prepared.teacher, run_dir / name, teacher_description(config))

    ev = config.evaluation
    eval_seed = config.seed + EVAL_SEED_OFFSET

    def score(agent: BaseAlgorithm) -> np.ndarray:
        return evaluate(
            acting(agent), make_env(config.env), ev.episodes, ev.steps, eval_seed, ev.deterministic
        )

    curve = (
        EvaluationCallback(score, ev.every, curve_score=curve_scorer(config.env, ev, eval_seed))
        if ev.every
        else None
    )
    start = time.perf_counter()
    stop = StopOnInterrupt()
    interrupted = False
    try:
        # The curve's callback first: its evaluations see the state before SB3's EvalCallback draws.
        callbacks = [stop] + ([curve] if curve else []) + _callbacks(config, run_dir)
        model.learn(config.n_timesteps, callback=callbacks, progress_bar=progress_bar)
    except KeyboardInterrupt:  # a second Ctrl-C
        interrupted = True
    finally:
        stop.restore()
    interrupted = interrupted or stop.interrupted
    train_seconds = time.perf_counter() - start
    model.save(run_dir / "model.zip")
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:  # its statistics, as the RL Zoo saves them (rl_zoo3.enjoy reads them)
        stats = run_dir / config.env.id.replace("/", "-")
        stats.mkdir(exist_ok=True)
        vec_normalize.save(str(stats / "vecnormalize.pkl"))
        # The one setting the Zoo's player reads from its config.yml: to normalise, and how.
        atomic_write_text(stats / "config.yml", yaml.safe_dump({"normalize": config.algo.normalize}))
    model.get_env().close()

    returns = score(model)
    measures = measure_run(
        model,
        prepared.teacher,
        model.restriction,
        model.teacher_regularizer.induction,
        make_env(config.env),
        config.seed,
    )
    eval_steps = evaluation_steps(make_env(config.env), ev.steps)
    points = curve.curve if curve else []
    if curve:
        atomic_write_csv(run_dir / "curves.csv", _curve_rows(prepared, points, eval_steps), CURVE_COLUMNS)
    result = TrainResult(
        run_dir=str(run_dir),
        timesteps=int(model.num_timesteps),
        mean_return=float(returns.mean()),
        std_return=float(returns.std()),
        train_seconds=round(train_seconds, 3),
        interrupted=interrupted,
        eval_steps=eval_steps,
        curve=[asdict(p) for p in points],
        hidden_part=measures,
    )
    atomic_write_text(run_dir / "result.json", json.dumps(asdict(result), indent=2) + "\n")
    return result


def _curve_rows(prepared: PreparedRun, points: list[CurvePoint], eval_steps: int) -> list[dict]:
    config = prepared.config
    return [
        {
            "method": config.regularizer,
            "algo": config.algo.name,
            "teacher": teacher_label(config) if prepared.teacher is not None else "",
            "budget": config.n_timesteps,
            "lambda_ratio": config.lambda_ratio if config.regularizer != "none" else 0.0,
            "lambda_schedule": config.lambda_schedule,
            "seed": config.seed,
            "step": p.step,
            "score": p.score,
            "eval_steps": eval_steps,
        }
        for p in points
    ]
