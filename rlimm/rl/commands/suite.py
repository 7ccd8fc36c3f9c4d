"""``rlimm suite``: a task suite — every task's comparison with constant and decaying λ, timed
before the long runs, resumable, then aggregated into one ``rlimm report`` (:mod:`rlimm.rl.suite`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rlimm.common.command import add_jobs_option, jobs_or_cores, parse_dotted, positive_int
from rlimm.common.progress import format_duration
from rlimm.rl.commands.report import REPS


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``suite`` on the ``rlimm`` command's subparsers."""
    p = sub.add_parser(
        "suite",
        help="run a task suite: every task with each λ schedule of the suite, timed first, then report",
        description="Time one run of each task and print the expected wall time, then run every task's "
        "comparison, once per λ schedule of the suite (constant, linear_decay, trust), into "
        "OUT/<task>[_decay|_trust] and aggregate them into OUT/report. Resumable: rerunning the same "
        "command skips finished runs.",
    )
    p.add_argument("suite", help="suite file (tasks: compare configs; schedules)")
    p.add_argument(
        "--out", required=True, help="output folder: one compare folder per task and schedule, and report/"
    )
    p.add_argument(
        "--estimate",
        action="store_true",
        help="stop after timing one run of each task and printing the expected wall time",
    )
    p.add_argument("--seeds", type=positive_int, help="number of seeds of every task (overrides the configs)")
    p.add_argument(
        "--set",
        dest="settings",
        nargs="+",
        metavar="KEY=VALUE",
        help="set a config key of every task, dotted for nested ones (e.g. budgets=[20000])",
    )
    add_jobs_option(p)
    p.add_argument(
        "--reps", type=positive_int, default=REPS, help=f"bootstrap resamples of the report (default: {REPS})"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    from rlimm.rl import suite
    from rlimm.rl.commands.report import write_report as write_suite_report
    from rlimm.rl.comparison import run_matrix
    from rlimm.rl.summary import write_report

    def log(line: str) -> None:
        print(f"rlimm suite: {line}", file=sys.stderr, flush=True)

    out = Path(args.out)
    overrides = parse_dotted(args.settings, "--set")
    if args.seeds is not None:  # not given: --set's seeds (or each task's) stand
        overrides["seeds"] = args.seeds
    entries = suite.load_suite(args.suite, out, overrides)
    suite.check_tasks(entries)  # against their envs, before any teacher or timing
    jobs = jobs_or_cores(args.jobs)
    timings = suite.load_timings(out)
    teachers: dict = {}
    for entry in entries:
        if entry.task in timings or entry.task in teachers:
            continue
        log(f"timing {entry.task} (one run, kept as a result)")
        timing, teachers[entry.task] = suite.time_task(entry, jobs, log, None)
        timings[entry.task] = timing
        suite.save_timings(out, timings)
    print(suite.estimate_table(entries, timings, jobs), flush=True)
    if args.estimate:
        return 0
    for entry in entries:
        log(f"{entry.task}, λ {entry.config.lambda_schedule}: {entry.folder}")
        start = time.perf_counter()
        results = run_matrix(
            entry.config,
            entry.folder,
            jobs,
            progress=not args.no_progress,
            log=log,
            teacher=teachers.get(entry.task),
        )
        if entry.task not in teachers:  # the folder saved it: the task's other folders use it too
            from rlimm.rl.comparison import saved_teacher

            teachers[entry.task] = saved_teacher(entry.folder, entry.config)
        write_report(results, entry.config.name, entry.config.budget_unit)
        log(f"{entry.folder.name}: done in {format_duration(time.perf_counter() - start)}")
    report = write_suite_report([e.folder for e in entries], out / suite.REPORT, reps=args.reps)
    print(f"wrote {report / 'report.md'}")
    return 0
