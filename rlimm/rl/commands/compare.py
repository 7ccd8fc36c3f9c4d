"""``rlimm compare``: the matrix methods × budgets × seeds (× λ-ratios) of a config, in parallel
worker processes or on a Dask cluster, resumable, with a Markdown summary and a plot."""

from __future__ import annotations

import argparse
import sys

from rlimm.common.command import add_jobs_option, non_negative_int, parse_dotted, positive_int
from rlimm.common.device import add_device_option, check_device
from rlimm.rl.commands.options import add_eval_every_option


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``compare`` on the ``rlimm`` command's subparsers."""
    p = sub.add_parser(
        "compare",
        help="train every (method, budget, seed[, λ]) of a config and report scores",
        description="Run the comparison matrix of a config file; resumable: rerunning the same "
        "command skips finished runs.",
    )
    p.add_argument("config", help="YAML config file (see configs/)")
    p.add_argument("--out", required=True, help="output folder (results.csv, summary.md, plot.png)")
    p.add_argument("--seeds", type=positive_int, help="number of seeds (overrides the config)")
    p.add_argument("--seed-offset", type=int, help="first seed (overrides the config)")
    p.add_argument("--budgets", type=int, nargs="+", help="training budgets (overrides the config)")
    p.add_argument("--methods", nargs="+", help="subset of none, naive, imm (overrides the config)")
    p.add_argument(
        "--lambda-ratios", type=float, nargs="+", help="λ ratios λ/(1+λ) to sweep (overrides the config)"
    )
    p.add_argument(
        "--set",
        dest="settings",
        nargs="+",
        metavar="KEY=VALUE",
        help="set any config key, dotted for nested ones (e.g. induction.k=4 "
        "lambda_schedule=linear_decay); applied after the file, before the other flags",
    )
    p.add_argument(
        "--n-envs", type=int, help="environments per run, stepped together (algo.n_envs; default: 1)"
    )
    add_eval_every_option(p)
    add_jobs_option(p)
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run every run as a task on the Dask cluster whose scheduler is at ADDRESS "
        "(tcp://HOST:8786; default: $DASK_SCHEDULER_ADDRESS if set, else local worker processes); "
        "needs pip install 'rlimm[cluster]'",
    )
    p.add_argument(
        "--retries",
        type=non_negative_int,
        default=1,
        help="with --cluster: times a run that raised is submitted again (default: 1)",
    )
    add_device_option(p, "cpu")
    p.add_argument("--tensorboard", action="store_true", help="write learning curves to OUT/tensorboard")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from rlimm.errors import RlimmError
    from rlimm.rl.cluster import ADDRESS_ENV, scheduler_address
    from rlimm.rl.comparison import RunsFailed, read_results, run_matrix
    from rlimm.rl.config import load_compare_config
    from rlimm.rl.summary import write_report

    if args.cluster and args.jobs is not None:
        raise RlimmError("--jobs and --cluster exclude each other: the cluster's workers run the runs")
    # An explicit --jobs means local processes, even when $DASK_SCHEDULER_ADDRESS is set.
    cluster = scheduler_address(args.cluster) if args.jobs is None else None
    from_env = bool(cluster) and not args.cluster
    if args.device is not None:
        check_device(args.device)  # a bad flag is named as such, not as a key of the config file
    flags = {
        "seeds": args.seeds,
        "seed_offset": args.seed_offset,
        "budgets": args.budgets,
        "methods": args.methods,
        "lambda_ratio": args.lambda_ratios,
        "device": args.device,
    }
    # A flag not given leaves the key to --set (then the file): None would hide `--set seeds=2`.
    overrides = {**parse_dotted(args.settings, "--set"), **{k: v for k, v in flags.items() if v is not None}}
    if args.eval_every is not None:  # into --set's evaluation section, if any, not in its place
        overrides["evaluation"] = {**overrides.get("evaluation", {}), "every": args.eval_every}
    if args.n_envs is not None:
        overrides["algo"] = {**overrides.get("algo", {}), "n_envs": args.n_envs}
    config = load_compare_config(args.config, overrides)
    try:
        results = run_matrix(
            config,
            args.out,
            args.jobs,
            progress=not args.no_progress,
            tensorboard=args.tensorboard,
            cluster=cluster,
            retries=args.retries,
            log=lambda line: print(f"rlimm compare: {line}", file=sys.stderr, flush=True),
        )
    except RlimmError as err:
        if from_env and str(err).startswith("cannot reach the Dask scheduler"):
            raise RlimmError(
                f"{err} (the address comes from ${ADDRESS_ENV}: unset it, or pass --jobs N to run here)"
            ) from None
        raise
    except RunsFailed as err:
        for spec, error in err.failed:
            reason = " ".join(str(error).split())[:300]
            print(
                f"rlimm compare: run failed: method={spec.method} budget={spec.budget} seed={spec.seed} "
                f"lambda_ratio={spec.lambda_ratio:g}: {type(error).__name__}: {reason}",
                file=sys.stderr,
            )
        print(
            f"rlimm compare: {len(err.failed)} runs failed; the finished ones are in {err.results}; "
            "rerun the same command to retry the failed runs",
            file=sys.stderr,
        )
        if read_results(err.results)[0]:  # a partial report of the finished runs
            _report(write_report, err.results, config)
        return 1
    _report(write_report, results, config)
    return 0


def _report(write_report, results, config) -> None:  # noqa: ANN001
    md, png, table = write_report(results, config.name, config.budget_unit)
    print(table)
    print(f"\nwrote {results}, {md}, {png}")
