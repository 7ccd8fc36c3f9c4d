"""Wall time of the logistic-regression figure (batched) against one run of it done the naive way.

Measured side by side in one process, on the same config, data and thread count:

1. the full figure: ``run_experiment`` + ``write_report`` (every size, method, λ and teacher, all runs,
   each training job one batched tensor problem);
2. one run of that figure done the naive way: every training job of the figure for a single run, each a
   Python ``torch.optim.SGD`` loop over the core losses (:func:`rlimm.logreg.train.train_reference`),
   then its test accuracies. It is timed before and after (1) and the mean is used, so that a change in
   machine load during the measurement affects both sides alike.

Prints both times, their ratio (how many naive runs the whole batched figure costs) and the naive time
of the whole figure extrapolated to all runs.

    .venv/bin/python benchmarks/logreg_walltime.py [--config configs/logreg.yaml] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from rlimm.coefficients import ratio_to_lambda
from rlimm.common.command import add_threads_option
from rlimm.logreg.config import LogregConfig, load_logreg_config
from rlimm.logreg.data import expected_accuracy
from rlimm.logreg.experiment import (
    RESTRICTED,
    Job,
    build_setting,
    jobs,
    make_teacher,
    plan,
    run_experiment,
    teacher_at,
    training_streams,
)
from rlimm.logreg.report import write_report
from rlimm.logreg.train import predict_positive, train_reference

ROOT = Path(__file__).resolve().parents[1]


def full_figure(config: LogregConfig) -> float:
    start = time.perf_counter()
    outcome = run_experiment(config)
    with tempfile.TemporaryDirectory() as out:
        write_report(
            Path(out),
            outcome.results,
            outcome.population,
            title=config.name,
            ratio=config.lambda_ratio,
            bayes=outcome.setting.bayes_accuracy,
            restricted=outcome.setting.restricted_accuracy,
        )
    return time.perf_counter() - start


def one_naive_run(config: LogregConfig, run: int = 0) -> float:
    start = time.perf_counter()
    setting = build_setting(config)
    rows = plan(config)
    todo = jobs(rows)
    x_all, y_all = training_streams(config, setting, max(job.n for job in todo))
    x_all, y_all = x_all[run], y_all[run]
    teachers = {}
    thetas = {}
    for job in todo:
        if job.teacher not in teachers:
            teachers[job.teacher] = make_teacher(config, setting, job.teacher)
        x, y = x_all[: job.n], y_all[: job.n]
        tp = _for_run(teacher_at(teachers[job.teacher], x[None, :, 0]), run)
        lam = ratio_to_lambda(job.ratio)
        thetas[job] = train_reference(x, y, tp, job.objective, lam, config.train.settings())
    for row in rows:
        if row.method == RESTRICTED:
            continue
        teacher_test = _for_run(teacher_at(teachers[row.teacher], setting.x_test[None, :, 0]), run)
        decisions = predict_positive(
            thetas[Job.of(row)][None, :], setting.x_test, row.method, row.ratio, teacher_test
        )
        expected_accuracy(decisions, setting.p_test)
    return time.perf_counter() - start


def _for_run(values: torch.Tensor, run: int) -> torch.Tensor:
    # Teacher values are (1, k) for the exact teacher (shared) and (runs, k) for estimated ones.
    return values[min(run, values.shape[0] - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "logreg.yaml"))
    add_threads_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_logreg_config(args.config)

    # Warm-up: the first torch.optim use imports torch's compiler stack (seconds); keep it out of both.
    tiny = torch.zeros(2, 3), torch.zeros(2), torch.full((2,), 0.5)
    train_reference(*tiny, "baseline", 0.0, config.train.settings())

    naive_before = one_naive_run(config)
    full = full_figure(config)
    naive_after = one_naive_run(config)
    naive = (naive_before + naive_after) / 2
    name = Path(args.config).name
    print(f"logistic-regression figure of {name}, {config.runs} runs, {args.threads} thread(s)")
    print(f"full figure, batched (all {config.runs} runs):   {full:8.1f} s")
    print(
        f"one run, naive Python loop per run:       {naive:8.1f} s  "
        f"(before {naive_before:.1f} s, after {naive_after:.1f} s)"
    )
    print(f"ratio full figure / one naive run:        {full / naive:8.1f}")
    print(
        f"naive full figure, extrapolated ({config.runs} x one run): {config.runs * naive:8.0f} s "
        f"= {config.runs * naive / full:.0f}x the batched figure"
    )


if __name__ == "__main__":
    main()
