"""The comparison matrix (``rlimm compare``): run every run of a config in worker processes (or on a
Dask cluster, :mod:`rlimm.rl.cluster`), write results as they finish, resume.

``results.csv`` gets one complete line per finished run, written (and flushed) by the parent process
as soon as a worker returns it, so an interrupted comparison loses no finished run; rerunning the
same command skips every run already in the file and drops a torn last line, if any.
"""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm import tqdm

from rlimm.agents.teachers import Teacher, load_teacher, save_teacher
from rlimm.common.device import describe, resolve_device
from rlimm.common.files import atomic_write_csv, atomic_write_text
from rlimm.errors import RlimmError
from rlimm.rl.checks import check_against_env
from rlimm.rl.config import CompareConfig, InductionConfig
from rlimm.rl.environments import evaluation_steps, make_env
from rlimm.rl.evaluation import CURVE_COLUMNS
from rlimm.rl.hidden_part import MEASURES
from rlimm.rl.matrix import RunSpec
from rlimm.rl.runs import build_agent, run_budgets
from rlimm.rl.teacher_builder import evaluate_teacher, make_teacher, teacher_description, with_trust_score

COLUMNS = [
    "method",
    "algo",
    "budget",
    "seed",
    "lambda_ratio",
    "score",
    "score_std",
    "teacher",
    "updates",
    "timesteps",
    "train_seconds",
]
#: Next to ``results.csv``: the teacher's own score on the full env, one score per seed.
TEACHER_SCORES = "teacher.json"
#: Next to ``results.csv``: each run's learner against the teacher at the end of its longest budget
#: (:mod:`rlimm.rl.hidden_part`), keyed as its results row.
MEASURES_FILE = "measures.csv"
MEASURE_COLUMNS = ["method", "budget", "seed", "lambda_ratio", *MEASURES]
#: Next to ``results.csv`` (with ``evaluation.every``): the learning curves (:data:`CURVE_COLUMNS`).
CURVES = "curves.csv"

# The parts of a config that define what a result means; a results folder is tied to them.
IDENTITY_KEYS = (
    "env",
    "restriction",
    "teacher",
    "algo",
    "budget_unit",
    "evaluation",
    "induction",
    "lambda_schedule",
    "lambda_until",
    "trust",
)


def preflight(config: CompareConfig, teacher: Teacher | None = None) -> Teacher | None:
    """Build everything a run needs once, so bad input fails before anything is written; returns
    the teacher (``teacher`` if given; ``None`` when only ``none`` runs)."""
    env = make_env(config.env, config.env.episode_steps)
    restriction = check_against_env(config, env)  # before the teacher, which may train for minutes
    if not set(config.methods) - {"none"}:
        teacher = None
    elif teacher is None:
        teacher = make_teacher(config)
    if teacher is not None:  # what needs the teacher: its view and actions against the agent's
        # Built on the CPU (the runs use ``config.device``), on one env as check_against_env's.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            build_agent(
                config.algo, env, "imm", teacher, restriction, 0.0, device="cpu", induction=config.induction
            )
    return teacher


#: The solvers whose teacher a folder keeps (``teacher.pt``): those that train, and so cost a run.
SAVED_SOLVERS = ("trained", "induced_expert")


def teacher_file(out: Path, config: CompareConfig) -> Path | None:
    """Where a comparison folder keeps its trained teacher, so that resuming does not train it again
    (``None`` for teachers that cost nothing to build: exact solvers, files)."""
    if config.teacher.solver not in SAVED_SOLVERS or not set(config.methods) - {"none"}:
        return None
    return out / "teacher.pt"


def saved_teacher(out: Path, config: CompareConfig) -> Teacher | None:
    """The teacher an earlier run of this same comparison saved in ``out``, if any."""
    path = teacher_file(out, config)
    stamp = out / "config.json"
    if path is None or not path.exists() or not stamp.exists():
        return None
    if _stored_identity(stamp, config) != _identity(config):
        return None  # another experiment's folder: refused by _check_identity, not read here
    saved = load_teacher(path)
    saved.check_visible(config.restriction.visible)
    return saved.teacher


def _teacher_scores_stale(path: Path, config: CompareConfig) -> bool:
    """Whether ``teacher.json`` is missing or scored other seeds than the comparison's (a folder
    started with fewer seeds)."""
    if not path.exists():
        return True
    seeds = sorted({spec.seed for spec in config.runs()})
    return len(json.loads(path.read_text()).get("scores", [])) != len(seeds)


def eval_cap(config: CompareConfig) -> int:
    """The step cap of the comparison's evaluation episodes (see :func:`rlimm.rl.runs.evaluation_steps`)."""
    return evaluation_steps(make_env(config.env), config.evaluation.steps)


def read_results(path: Path) -> tuple[list[dict], bool]:
    """Complete rows of a results file, and whether anything torn had to be dropped."""
    if not path.exists():
        return [], False
    rows, torn = [], False
    with path.open(newline="") as f:
        lines = f.read().splitlines()
    if not lines:
        return [], False
    header = next(csv.reader([lines[0]]))
    if header != COLUMNS:
        raise RlimmError(f"{path} has columns {header}, expected {COLUMNS}; use another output folder")
    for row in csv.reader(lines[1:]):
        try:
            rec = dict(zip(COLUMNS, row, strict=True))
            float(rec["score"])
            float(rec["train_seconds"])
        except (ValueError, KeyError):
            torn = True
            continue
        rows.append(rec)
    return rows, torn


def row_key(row: dict) -> tuple:
    """The key of a ``results.csv`` or ``curves.csv`` row, as :meth:`RunSpec.key` of its run."""
    return (row["method"], int(row["budget"]), int(row["seed"]), f"{float(row['lambda_ratio']):.4f}")


def _identity(config: CompareConfig) -> dict:
    identity = json.loads(config.model_dump_json(include=set(IDENTITY_KEYS)))
    # How often curves are sampled does not change a result: a folder may gain curves on resuming.
    identity["evaluation"].pop("every", None)
    # A schedule's own settings tell results apart only under that schedule.
    if config.lambda_schedule != "linear_decay":
        identity.pop("lambda_until", None)
    if config.lambda_schedule != "trust":
        identity.pop("trust", None)
    return identity


def _check_identity(out: Path, config: CompareConfig) -> None:
    stamp = out / "config.json"
    identity = _identity(config)
    stored = json.loads(stamp.read_text()) if stamp.exists() else None
    if stored is not None:
        saved = _stored_identity(stamp, config)
        if saved != identity:
            changed = sorted(k for k in IDENTITY_KEYS if saved.get(k) != identity.get(k))
            raise RlimmError(
                f"{out} holds results of a different experiment (differs in: {', '.join(changed)}); "
                "use another output folder"
            )
    # reference_score changes no run, so it is no identity key (an older folder still resumes); it is
    # recorded, also when resuming, for `rlimm report`, which normalises that score to 1.
    record = dict(stored if stored is not None else identity)
    if config.reference_score is not None:
        record["reference_score"] = config.reference_score
    if record != stored:
        stamp.write_text(json.dumps(record, indent=2) + "\n")


def _stored_identity(stamp: Path, config: CompareConfig) -> dict:
    """The identity a folder's ``config.json`` records, completed as :func:`_with_defaults` does."""
    return _with_defaults(json.loads(stamp.read_text()), config)


def _with_defaults(saved: dict, config: CompareConfig) -> dict:
    """A saved identity with the defaults of keys added to the config since it was written (a folder
    made before ``induction.estimator`` existed still matches a config that leaves it at its default),
    except the induction keys whose default changed what a run does: those take the value the folder
    was run with (:attr:`InductionConfig.LEGACY`)."""
    if isinstance(saved.get("induction"), dict):
        saved = {**saved, "induction": {**InductionConfig.LEGACY, **saved["induction"]}}
    # A folder from before lambda_until decayed over the whole run.
    if saved.get("lambda_schedule") == "linear_decay":
        saved = {"lambda_until": 1.0, **saved}
    try:
        full = type(config).model_validate({**config.model_dump(), **saved})
    except ValueError:
        return saved
    return _identity(full)


def read_curves(path: Path, finished: set[tuple]) -> tuple[list[dict], bool]:
    """The rows of a curves file that belong to finished runs, and whether anything else (a torn
    line, the curve of a run whose results were never written) had to be dropped."""
    if not path.exists():
        return [], False
    with path.open(newline="") as f:
        lines = f.read().splitlines()
    if not lines:
        return [], False
    header = next(csv.reader([lines[0]]))
    if header != CURVE_COLUMNS:
        raise RlimmError(f"{path} has columns {header}, expected {CURVE_COLUMNS}; use another output folder")
    rows, dropped = [], False
    for row in csv.reader(lines[1:]):
        try:
            rec = dict(zip(CURVE_COLUMNS, row, strict=True))
            float(rec["score"])
            int(rec["eval_steps"])
            keep = row_key(rec) in finished
        except (ValueError, KeyError):
            keep = False
        dropped |= not keep
        if keep:
            rows.append(rec)
    return rows, dropped


def curve_rows(config: CompareConfig, row: dict, eval_steps: int) -> list[dict]:
    """The ``curves.csv`` rows of one run's row (its ``curve``)."""
    return [
        {
            "method": row["method"],
            "algo": row["algo"],
            "teacher": row["teacher"],
            "budget": row["budget"],
            "lambda_ratio": row["lambda_ratio"],
            "lambda_schedule": config.lambda_schedule,
            "seed": row["seed"],
            "step": point.step,
            "score": point.score,
            "eval_steps": eval_steps,
        }
        for point in row["curve"]
    ]


def _append_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with path.open("a", newline="") as f:
        csv.DictWriter(f, fieldnames=columns, extrasaction="ignore").writerows(rows)


def read_measures(folder: Path) -> dict[tuple, dict[str, float]]:
    """``measures.csv`` of a comparison folder by run key (:func:`row_key`); a run measured twice (it
    was rerun after an interruption) keeps its last row; torn lines are skipped; ``{}`` without the
    file (a folder from before the measures)."""
    path = Path(folder) / MEASURES_FILE
    if not path.exists():
        return {}
    out: dict[tuple, dict[str, float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                out[row_key(row)] = {k: float(row[k]) for k in MEASURES}
            except (TypeError, ValueError, KeyError):
                continue
    return out


class RunsFailed(Exception):
    """Some runs failed for good (on a cluster: their worker died too often, or they raised); every
    other run finished and is in ``results``."""

    def __init__(self, results: Path, failed: list[tuple[RunSpec, BaseException]]) -> None:
        super().__init__(f"{len(failed)} runs failed")
        self.results = results
        self.failed = failed


def init_worker() -> None:
    import torch

    # Each worker runs tiny networks: one thread each beats oversubscribing the cores.
    torch.set_num_threads(1)


def work(args: tuple[CompareConfig, list[RunSpec], str | None, Teacher | None]) -> list[dict]:
    return run_budgets(*args)


def _results(
    config: CompareConfig, todo: list[RunSpec], jobs: int, tb: str | None, teacher: Teacher | None
) -> Iterator[list[dict]]:
    # One training run per group: several budgets come from one run when nothing depends on them.
    payload = [(config, group, tb, teacher) for group in config.run_groups(todo)]
    if jobs == 1:
        init_worker()
        yield from map(work, payload)
        return
    ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
    with ctx.Pool(jobs, initializer=init_worker) as pool:
        yield from pool.imap_unordered(work, payload)


def run_matrix(
    config: CompareConfig,
    out: str | Path,
    jobs: int | None = None,
    progress: bool = True,
    tensorboard: bool = False,
    cluster: str | None = None,
    retries: int = 1,
    log: Callable[[str], None] | None = None,
    teacher: Teacher | None = None,
) -> Path:
    """Run (or finish) a comparison into ``out``; returns the path of ``results.csv``.

    :param jobs: local worker processes (default: one per core); not used with ``cluster``.
    :param cluster: the address of a Dask scheduler (``tcp://HOST:8786``): every run is one task on
        its workers (:mod:`rlimm.rl.cluster`), the driver writes the results.
    :param retries: on a cluster, how many times a run that raised is submitted again.
    :param log: receives one line before the runs start: where results and TensorBoard logs go.
    :param teacher: the teacher to use (built from the config, or read from ``out/teacher.pt``
        where an earlier call saved it, when ``None``); a trained teacher is saved there.
    :raises RunsFailed: (cluster) some runs failed for good; all others are in ``results.csv``.
    """
    jobs = jobs if jobs is not None else os.cpu_count() or 1
    if jobs < 1:
        raise RlimmError(f"jobs must be at least 1, got {jobs}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RlimmError(f"output folder {out} exists and is not a folder")
    if teacher is None and out.is_dir():
        teacher = saved_teacher(out, config)
    teacher = preflight(config, teacher)
    # Local runs use this machine's device: checked here, once. A cluster's workers resolve it.
    device = None if cluster else resolve_device(config.device)
    results = out / "results.csv"
    done, torn = read_results(results)
    client = None
    if cluster:
        from rlimm.rl import cluster as dask_cluster

        client = dask_cluster.connect(cluster)  # before anything is written: a bad address writes nothing
    try:
        out.mkdir(parents=True, exist_ok=True)
        _check_identity(out, config)
        if torn or not results.exists():
            atomic_write_csv(results, done, COLUMNS)
        keep = teacher_file(out, config)
        if keep is not None and teacher is not None and not keep.exists():
            save_teacher(teacher, keep, teacher_description(config))
        teacher_scores = out / TEACHER_SCORES
        if teacher is not None and _teacher_scores_stale(teacher_scores, config):
            # The yardstick of every result: what the teacher itself scores on the full env.
            atomic_write_text(teacher_scores, json.dumps(evaluate_teacher(config, teacher), indent=1) + "\n")
        # lambda_schedule trust: the teacher's score in training-episode units, measured once here.
        config = with_trust_score(config, teacher if set(config.methods) - {"none"} else None)
        finished = {row_key(r) for r in done}
        curves = out / CURVES
        eval_steps = eval_cap(config)
        if config.evaluation.every is not None or curves.exists():
            kept, dropped = read_curves(curves, finished)
            if dropped or not curves.exists():
                atomic_write_csv(curves, kept, CURVE_COLUMNS)
        todo = [s for s in config.runs() if s.key() not in finished]
        # Longest runs first: better balance across workers.
        todo.sort(key=lambda s: -s.budget)
        # Workers on other machines write TensorBoard files where the path says: an absolute one.
        tb_dir = (out / "tensorboard").resolve() if client is not None else out / "tensorboard"
        tb = str(tb_dir) if tensorboard else None
        if log is not None:
            where = (
                f"on {dask_cluster.describe(client, cluster)}, device {config.device}"
                if client is not None
                else f"in {jobs} worker processes on {describe(device)}"
            )
            ev = config.evaluation
            every = f", and every {ev.every} steps ({CURVES})" if ev.every else ""
            log(
                f"writing {results} (TensorBoard: {tb or 'off, --tensorboard to write it'}); "
                f"{len(todo)} runs to do, {len(done)} done, {where}; evaluation: {ev.episodes} "
                f"episodes of at most {eval_steps} steps after training{every}"
            )
        outcomes: Iterator[tuple[list[RunSpec], list[dict] | BaseException]]
        if client is not None:
            outcomes = dask_cluster.run_on_cluster(client, config, todo, tb, teacher, retries)
        else:
            outcomes = (([], rows) for rows in _results(config, todo, jobs, tb, teacher))
        failed: list[tuple[RunSpec, BaseException]] = []
        bar = tqdm(total=len(todo), desc=config.name, unit="run", disable=not progress)
        with results.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            for group, rows in outcomes:
                if isinstance(rows, BaseException):
                    failed += [(spec, rows) for spec in group]
                    bar.update(len(group))
                    continue
                # The curve first: one whose results line is missing is dropped on resuming.
                points = [p for row in rows for p in curve_rows(config, row, eval_steps)]
                if points:
                    _append_csv(curves, points, CURVE_COLUMNS)
                measured = [{**row, **row["measures"]} for row in rows if row.get("measures")]
                if measured:
                    if not (out / MEASURES_FILE).exists():
                        atomic_write_csv(out / MEASURES_FILE, [], MEASURE_COLUMNS)
                    _append_csv(out / MEASURES_FILE, measured, MEASURE_COLUMNS)
                for row in rows:
                    writer.writerow({k: row[k] for k in COLUMNS})
                f.flush()
                bar.update(len(rows))
        bar.close()
    finally:
        if client is not None:
            client.close()
    if failed:
        raise RunsFailed(results, failed)
    return results
