"""The comparison's runs on a Dask cluster (``rlimm compare --cluster ADDRESS``).

The driver (the ``rlimm compare`` process) connects to a running Dask scheduler, builds the teacher
once and ships it to the cluster once (as the result of one task that every run depends on: each
worker fetches it once, and unlike scattered data it is restored if the workers holding it die),
submits every run as one task and writes each finished run to ``results.csv`` as it arrives, exactly
as with local worker processes (:func:`rlimm.rl.comparison.run_matrix`): resuming, the refusal of another
experiment's folder and the results themselves (runs are seeded) are the same.

A worker that dies loses only the run it was computing: the scheduler gives that run to another worker
(up to Dask's ``distributed.scheduler.allowed-failures`` deaths per task), a run that raises is retried
``retries`` times, and a run that still fails is reported by the driver at the end while the others
carry on.

Nothing here imports Dask at module level, and nothing else imports this module unless a cluster is
asked for: the base install does not need Dask (``pip install 'rlimm[cluster]'`` brings it).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlimm.errors import RlimmError

if TYPE_CHECKING:
    from rlimm.agents.teachers import Teacher
    from rlimm.rl.config import CompareConfig
    from rlimm.rl.matrix import RunSpec

#: The environment variable naming the scheduler when ``--cluster`` is not given (Dask's own name).
ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"
#: Seconds to wait for the scheduler before giving up (a wrong address should fail fast).
CONNECT_TIMEOUT = 5
#: Test hook, read on the workers: the path of a file of rules, one a line. ``METHOD:BUDGET:SEED`` makes
#: the worker process that starts that run exit at once (``os._exit``), as a crashed or killed machine
#: would; ``METHOD:BUDGET:SEED:once`` does so once (the rule is removed first), so the run dies and is
#: then computed elsewhere. No file, no effect.
TEST_EXIT_ENV = "RLIMM_TEST_WORKER_EXIT"


def scheduler_address(flag: str | None) -> str | None:
    """The scheduler to use: ``--cluster``, else ``$DASK_SCHEDULER_ADDRESS``, else ``None`` (local)."""
    return flag or os.environ.get(ADDRESS_ENV) or None


def connect(address: str, timeout: float = CONNECT_TIMEOUT) -> Any:
    """A :class:`distributed.Client` of the scheduler at ``address``.

    :raises RlimmError: Dask is not installed, or the scheduler does not answer within ``timeout``.
    """
    try:
        from distributed import Client
    except ImportError:
        raise RlimmError(
            "--cluster needs Dask distributed, which is not installed: pip install 'rlimm[cluster]'"
        ) from None
    from distributed.comm.addressing import get_address_host_port

    hint = "start one with `dask scheduler` and give its address, e.g. --cluster tcp://HOST:8786"
    try:
        # Checked first: a Client half-made from a malformed address hangs on exit.
        get_address_host_port(address)
    except (ValueError, TypeError) as err:
        raise RlimmError(f"cannot reach the Dask scheduler at {address}: {err}; {hint}") from None
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except Exception as err:  # OSError, TimeoutError
        reason = " ".join(str(err).split())
        if not reason or "timed out" in reason.lower():
            reason = f"no answer within {timeout:g} s"
        raise RlimmError(f"cannot reach the Dask scheduler at {address} ({reason}); {hint}") from None


def describe(client: Any, address: str) -> str:
    """``the Dask cluster at tcp://… (N workers, T threads)``."""
    try:
        info = client.scheduler_info(n_workers=-1)  # all workers (some releases list 5 by default)
    except TypeError:  # releases without the argument list them all
        info = client.scheduler_info()
    workers = info.get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    return f"the Dask cluster at {info.get('address', address)} ({len(workers)} workers, {threads} threads)"


def _digest(config: CompareConfig, tensorboard_log: str | None) -> str:
    return hashlib.sha256(f"{config.model_dump_json()}|{tensorboard_log}".encode()).hexdigest()[:12]


def task_key(config: CompareConfig, specs: list[RunSpec], tensorboard_log: str | None) -> str:
    """A readable task name, unique to the experiment and the training run (``specs``: the runs it
    gives, differing in their budget only): a driver that is restarted while the cluster still holds
    a run's result picks it up instead of computing it again.

    Every run's key starts ``rlimm_run-<digest>-``, so Dask sees the runs as one task group and
    queues them on the scheduler (a worker is handed a run when it has a free thread): a worker that
    dies then takes few waiting runs down with it.
    """
    spec = specs[0]
    budgets = "+".join(str(s.budget) for s in specs)
    run = f"{spec.method}-b{budgets}-s{spec.seed}-r{spec.lambda_ratio:.4f}"
    return f"rlimm_run-{_digest(config, tensorboard_log)}-{config.name}-{run}"


def _teacher(teacher: Teacher) -> Teacher:
    """The task that holds the driver's teacher on the cluster (its argument is the teacher itself)."""
    return teacher


def _test_exit_hook(spec: RunSpec) -> None:
    rules = Path(os.environ.get(TEST_EXIT_ENV) or "")
    if not rules.name or not rules.is_file():
        return
    lines = rules.read_text().split()
    run = f"{spec.method}:{spec.budget}:{spec.seed}"
    if run in lines:
        os._exit(17)
    if f"{run}:once" in lines:
        lines.remove(f"{run}:once")
        rules.write_text("".join(f"{line}\n" for line in lines))
        os._exit(17)


def cluster_task(
    config: CompareConfig, specs: list[RunSpec], tensorboard_log: str | None, teacher: Teacher | None
) -> list[dict]:
    """One training run on a worker, for the runs ``specs`` (several budgets read off one run where
    nothing depends on the budget, as local workers do): :func:`rlimm.rl.runs.run_budgets` with one
    torch thread."""
    import torch

    from rlimm.rl.runs import run_budgets

    # Tiny networks: one thread per task beats oversubscribing the worker's cores.
    torch.set_num_threads(1)
    for spec in specs:
        _test_exit_hook(spec)
    return run_budgets(config, specs, tensorboard_log, teacher)


def run_on_cluster(
    client: Any,
    config: CompareConfig,
    specs: list[RunSpec],
    tensorboard_log: str | None,
    teacher: Teacher | None,
    retries: int = 1,
) -> Iterator[tuple[list[RunSpec], list[dict] | BaseException]]:
    """Submit one task per training run (:meth:`CompareConfig.run_groups`: the runs that one training
    run gives) and yield ``(specs, rows)`` as they finish, or ``(specs, error)`` for a task that failed
    for good (its worker died too often, or it raised ``retries + 1`` times)."""
    from distributed import as_completed

    if not specs:
        return
    # The teacher is built once by the driver and travels once, inside one task; every run takes that
    # task's result, which each worker fetches once. (Scattered data would be lost for good when the
    # workers holding it die; a task's result is restored from the task.)
    shipped = None
    if teacher is not None:
        key = f"rlimm_teacher-{_digest(config, tensorboard_log)}-{config.name}"
        shipped = client.submit(_teacher, teacher, key=key)
    futures = {
        client.submit(
            cluster_task,
            config,
            group,
            tensorboard_log,
            shipped,
            key=task_key(config, group, tensorboard_log),
            retries=retries,
        ): group
        for group in config.run_groups(specs)
    }
    for future in as_completed(futures, loop=client.loop):
        group = futures[future]
        try:
            rows = future.result()
        except Exception as err:  # the run's error, KilledWorker, or a lost connection
            yield group, err
        else:
            yield group, rows
        future.release()
