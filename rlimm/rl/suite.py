"""A task suite (``rlimm suite``): several ``rlimm compare`` configs, each run with several λ schedules
(constant, decaying, trust), timed first, then run (resumably) and aggregated by ``rlimm report``.

A suite file names its tasks (compare configs, paths relative to the suite file) and the λ schedules
to run each with::

    name: suite
    tasks: [cartpole_cart_hidden.yaml, cartpole_novel.yaml]
    schedules: [constant, linear_decay, trust]

Each (task, schedule) is one compare folder under the output folder: ``<name>`` for ``constant``
(every method of the config), ``<name>_decay`` for ``linear_decay`` and ``<name>_trust`` for ``trust``
(their methods but ``none``, whose runs do not depend on λ: the report pairs every schedule with the
same ``none`` runs). The teacher of a task is built once and used by every folder (each keeps a copy,
``teacher.pt``).

Before the long runs, one run of each task is timed (the config's most expensive method, seed 0; it
stays a result of the comparison) and the expected wall time of the whole suite is printed: every run
costed as that one, spread over the worker processes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator

from rlimm.agents.teachers import Teacher
from rlimm.common.config import StrictModel, distinct_entries, load_config
from rlimm.common.files import atomic_write_text
from rlimm.common.progress import format_duration
from rlimm.errors import RlimmError
from rlimm.rl.config import CompareConfig, LambdaSchedule, load_compare_config
from rlimm.rl.result_folders import registered_threshold

#: What each method costs relative to the others (the timed run is the dearest the config has).
COST_ORDER = ("imm", "naive", "none")
#: Next to the suite's folders: each task's timed teacher and run, reused when the suite resumes.
TIMINGS = "timings.json"
#: The suite's folder of ``rlimm report`` (report.md and its plots).
REPORT = "report"
#: The suffix of each schedule's folder (``constant``: the task's name alone).
FOLDER_SUFFIX = {"constant": "", "linear_decay": "_decay", "trust": "_trust"}


class SuiteConfig(StrictModel):
    """A suite file: the tasks (compare configs) and the λ schedules each runs with."""

    name: str = "suite"
    #: Compare configs, relative to the suite file.
    tasks: list[str] = Field(min_length=1)
    schedules: list[LambdaSchedule] = Field(default=["constant", "linear_decay"], min_length=1)
    #: ``linear_decay``: the fraction of the budget at which λ reaches 0 in every task (``null``: each
    #: task's own ``lambda_until``).
    lambda_until: float | None = Field(default=None, gt=0, le=1)

    _distinct = field_validator("tasks", "schedules")(distinct_entries)


@dataclass(frozen=True)
class Entry:
    """One compare folder of the suite: a task run with one λ schedule."""

    task: str
    folder: Path
    config: CompareConfig
    #: the task's config file, as the suite names it
    file: str = ""


@dataclass(frozen=True)
class Timing:
    """What one task cost here: building its teacher, and one run of its dearest method."""

    teacher_seconds: float
    run_seconds: float
    method: str


def load_suite(path: str | Path, out: str | Path, overrides: dict | None = None) -> list[Entry]:
    """The suite's entries, every config checked before anything runs (``overrides``: merged into
    every task's config, e.g. ``{"seeds": 2}``); :func:`check_tasks` checks them against their
    environments."""
    path = Path(path)
    suite = load_config(SuiteConfig, path)
    entries: list[Entry] = []
    names: dict[str, str] = {}
    for task in suite.tasks:
        file = path.parent / task
        if not file.is_file():
            raise RlimmError(f"'tasks': {task} is not a file next to {path}")
        config = load_compare_config(file, overrides)
        if config.reference_score is None and registered_threshold(config.env.id) is None:
            raise RlimmError(
                f"'tasks': {task} has no reference_score and gymnasium registers no reward_threshold for "
                f"{config.env.id}: set reference_score in it (the score the report normalises to 1)"
            )
        if config.name in names:
            raise RlimmError(f"'tasks': {task} and {names[config.name]} are both named '{config.name}'")
        names[config.name] = task
        for schedule in suite.schedules:
            if schedule == "constant":
                folder = Path(out) / config.name
                entries.append(Entry(config.name, folder, _scheduled(config, schedule), task))
                continue
            methods = [m for m in config.methods if m != "none"]
            if methods:
                scheduled = _scheduled(config, schedule, methods)
                if schedule == "linear_decay" and suite.lambda_until is not None:
                    scheduled = scheduled.model_copy(update={"lambda_until": suite.lambda_until})
                folder = Path(out) / f"{config.name}{FOLDER_SUFFIX[schedule]}"
                entries.append(Entry(config.name, folder, scheduled, task))
    return entries


def check_tasks(entries: list[Entry]) -> None:
    """Every task's config against its environment (:func:`~rlimm.rl.checks.check_against_env`),
    before any task's teacher is built or timed; the error names the task's file."""
    from rlimm.rl.checks import check_against_env

    checked: set[str] = set()
    for entry in entries:
        if entry.task in checked:  # its schedules differ in λ only
            continue
        checked.add(entry.task)
        try:
            check_against_env(entry.config)
        except RlimmError as err:
            raise RlimmError(f"'tasks': {entry.file or entry.task}: {err}") from None


def _scheduled(config: CompareConfig, schedule: str, methods: list[str] | None = None) -> CompareConfig:
    update: dict = {"lambda_schedule": schedule}
    if methods is not None:
        update["methods"] = methods
    return config.model_copy(update=update)


def dearest_method(config: CompareConfig) -> str:
    """The method of the config whose runs cost the most (imm's induced average > naive > none)."""
    return next(m for m in COST_ORDER if m in config.methods)


def expected_seconds(
    entries: list[Entry], timings: dict[str, Timing], jobs: int, whole: bool = False
) -> dict[str, float]:
    """Per task, the expected wall time of its unfinished runs (``whole``: of all its runs, from
    scratch) on ``jobs`` worker processes: each run costed as the timed one; the teacher counted where
    its folder does not hold it yet (``whole``: always)."""
    from rlimm.rl.comparison import read_results, row_key, teacher_file

    out: dict[str, float] = {}
    for entry in entries:
        timing = timings[entry.task]
        done = set() if whole else {row_key(r) for r in read_results(entry.folder / "results.csv")[0]}
        todo = sum(1 for spec in entry.config.runs() if spec.key() not in done)
        # Runs are about equally long: they spread evenly over the workers, the last wave part-full.
        seconds = math.ceil(todo / jobs) * timing.run_seconds if todo else 0.0
        keep = teacher_file(entry.folder, entry.config)
        if keep is not None and (whole or not keep.exists()) and entry.task not in out:
            seconds += timing.teacher_seconds
        out[entry.task] = out.get(entry.task, 0.0) + seconds
    return out


def load_timings(out: Path) -> dict[str, Timing]:
    path = out / TIMINGS
    if not path.exists():
        return {}
    return {task: Timing(**t) for task, t in json.loads(path.read_text()).items()}


def save_timings(out: Path, timings: dict[str, Timing]) -> None:
    data = {task: vars(t) for task, t in timings.items()}
    atomic_write_text(out / TIMINGS, json.dumps(data, indent=1) + "\n")


def time_task(
    entry: Entry, jobs: int, log: Callable[[str], None], teacher: Teacher | None
) -> tuple[Timing, Teacher | None]:
    """Build the task's teacher (unless given) and run the dearest method's first seed into the
    entry's folder, timing both; returns the timing and the teacher."""
    from rlimm.rl.comparison import run_matrix, saved_teacher
    from rlimm.rl.teacher_builder import make_teacher

    config = entry.config
    method = dearest_method(config)
    teacher_seconds = 0.0
    if teacher is None and method != "none":
        teacher = saved_teacher(entry.folder, config) if entry.folder.is_dir() else None
        if teacher is None:
            start = time.perf_counter()
            teacher = make_teacher(config)
            teacher_seconds = time.perf_counter() - start
    one = config.model_copy(update={"methods": [method], "seeds": 1})
    start = time.perf_counter()
    run_matrix(one, entry.folder, 1, progress=False, teacher=teacher)
    run_seconds = time.perf_counter() - start
    log(f"{entry.task}: teacher {teacher_seconds:.1f} s, one {method} run {run_seconds:.1f} s")
    return Timing(round(teacher_seconds, 2), round(run_seconds, 2), method), teacher


def estimate_table(entries: list[Entry], timings: dict[str, Timing], jobs: int) -> str:
    """The timing of each task and the expected wall time of the suite, as printed before it runs."""
    expected = expected_seconds(entries, timings, jobs)
    runs: dict[str, int] = {}
    for entry in entries:
        runs[entry.task] = runs.get(entry.task, 0) + len(entry.config.runs())
    width = max(len(t) for t in expected)
    lines = [f"{'task':<{width}}  {'teacher':>8}  {'one run':>8}  {'runs':>5}  {'expected':>10}"]
    for task, seconds in expected.items():
        t = timings[task]
        lines.append(
            f"{task:<{width}}  {t.teacher_seconds:>6.1f} s  {t.run_seconds:>6.1f} s  {runs[task]:>5}  "
            f"{format_duration(seconds):>10}"
        )
    total = sum(expected.values())
    whole = sum(expected_seconds(entries, timings, jobs, whole=True).values())
    lines.append(
        f"expected wall time of the whole suite: {format_duration(whole)}, of what is left: "
        f"{format_duration(total)}, with {jobs} worker processes (every run costed as the timed one, "
        "each task's dearest method: an upper bound)"
    )
    return "\n".join(lines)
