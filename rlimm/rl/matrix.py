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
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm import tqdm

from rlimm.agents.teachers import TabularTeacher
from rlimm.common.device import describe, resolve_device
from rlimm.common.files import atomic_write_csv, atomic_write_text
from rlimm.errors import RlimmError
from rlimm.rl.config import CompareConfig, RunSpec
from rlimm.rl.runs import (
    build_agent,
    evaluate_teacher,
    evaluation_steps,
    make_env,
    make_restriction,
    make_teacher,
    run_one,
)

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
)


def preflight(config: CompareConfig) -> TabularTeacher | None:
    """Build everything a run needs once, so bad input fails before anything is written; returns
    the teacher (``None`` when only ``none`` runs)."""
    env = make_env(config.env, config.env.episode_steps)
    restriction = make_restriction(config, env)
    teacher = make_teacher(config) if set(config.methods) - {"none"} else None
    # Built on the CPU: this only checks the algorithm's arguments (the runs use ``config.device``).
    build_agent(
        config.algo,
        env,
        "imm" if teacher else "none",
        teacher,
        restriction,
        0.0,
        device="cpu",
        induction=config.induction,
    )
    evaluation_steps(make_env(config.env), config.evaluation.steps)  # raises unless episodes end
    config.runs()
    return teacher


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


def _row_key(row: dict) -> tuple:
    return (row["method"], int(row["budget"]), int(row["seed"]), f"{float(row['lambda_ratio']):.4f}")


def _check_identity(out: Path, config: CompareConfig) -> None:
    stamp = out / "config.json"
    identity = json.loads(config.model_dump_json(include=set(IDENTITY_KEYS)))
    if stamp.exists():
        saved = _with_defaults(json.loads(stamp.read_text()), config)
        if saved != identity:
            changed = sorted(k for k in IDENTITY_KEYS if saved.get(k) != identity.get(k))
            raise RlimmError(
                f"{out} holds results of a different experiment (differs in: {', '.join(changed)}); "
                "use another output folder"
            )
    else:
        stamp.write_text(json.dumps(identity, indent=2) + "\n")


def _with_defaults(saved: dict, config: CompareConfig) -> dict:
    """A saved identity with the defaults of keys added to the config since it was written (a folder
    made before ``induction.estimator`` existed still matches a config that leaves it at its default)."""
    try:
        full = type(config).model_validate({**config.model_dump(), **saved})
    except ValueError:
        return saved
    return json.loads(full.model_dump_json(include=set(IDENTITY_KEYS)))


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


def work(args: tuple[CompareConfig, RunSpec, str | None, TabularTeacher | None]) -> dict:
    return run_one(*args)


def _results(
    config: CompareConfig, todo: list[RunSpec], jobs: int, tb: str | None, teacher: TabularTeacher | None
) -> Iterator[dict]:
    payload = [(config, spec, tb, teacher) for spec in todo]
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
) -> Path:
    """Run (or finish) a comparison into ``out``; returns the path of ``results.csv``.

    :param jobs: local worker processes (default: one per core); not used with ``cluster``.
    :param cluster: the address of a Dask scheduler (``tcp://HOST:8786``): every run is one task on
        its workers (:mod:`rlimm.rl.cluster`), the driver writes the results.
    :param retries: on a cluster, how many times a run that raised is submitted again.
    :param log: receives one line before the runs start: where results and TensorBoard logs go.
    :raises RunsFailed: (cluster) some runs failed for good; all others are in ``results.csv``.
    """
    jobs = jobs if jobs is not None else os.cpu_count() or 1
    if jobs < 1:
        raise RlimmError(f"jobs must be at least 1, got {jobs}")
    teacher = preflight(config)
    # Local runs use this machine's device: checked here, once. A cluster's workers resolve it.
    device = None if cluster else resolve_device(config.device)
    out = Path(out)
    results = out / "results.csv"
    if out.exists() and not out.is_dir():
        raise RlimmError(f"output folder {out} exists and is not a folder")
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
        teacher_scores = out / TEACHER_SCORES
        if teacher is not None and not teacher_scores.exists():
            # The yardstick of every result: what the teacher itself scores on the full env.
            atomic_write_text(teacher_scores, json.dumps(evaluate_teacher(config, teacher), indent=1) + "\n")
        finished = {_row_key(r) for r in done}
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
            log(
                f"writing {results} (TensorBoard: {tb or 'off, --tensorboard to write it'}); "
                f"{len(todo)} runs to do, {len(done)} done, {where}"
            )
        if client is not None:
            rows = dask_cluster.run_on_cluster(client, config, todo, tb, teacher, retries)
        else:
            rows = ((None, row) for row in _results(config, todo, jobs, tb, teacher))
        failed: list[tuple[RunSpec, BaseException]] = []
        bar = tqdm(total=len(todo), desc=config.name, unit="run", disable=not progress)
        with results.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            for spec, row in rows:
                if isinstance(row, BaseException):
                    failed.append((spec, row))
                else:
                    writer.writerow({k: row[k] for k in COLUMNS})
                    f.flush()
                bar.update()
        bar.close()
    finally:
        if client is not None:
            client.close()
    if failed:
        raise RunsFailed(results, failed)
    return results
