"""``rlimm compare``: the matrix methods × budgets × seeds (× λ-ratios) of a config, in parallel
worker processes, resumable, with a Markdown summary and a plot."""

from __future__ import annotations

import argparse

from rlimm.common.command import add_jobs_option, positive_int


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
    add_jobs_option(p)
    p.add_argument("--tensorboard", action="store_true", help="write learning curves to OUT/tensorboard")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from rlimm.rl.config import load_compare_config
    from rlimm.rl.matrix import run_matrix
    from rlimm.rl.report import write_report

    overrides = {
        "seeds": args.seeds,
        "seed_offset": args.seed_offset,
        "budgets": args.budgets,
        "methods": args.methods,
        "lambda_ratio": args.lambda_ratios,
    }
    config = load_compare_config(args.config, overrides)
    results = run_matrix(
        config, args.out, args.jobs, progress=not args.no_progress, tensorboard=args.tensorboard
    )
    md, png, table = write_report(results, config.name, config.budget_unit)
    print(table)
    print(f"\nwrote {results}, {md}, {png}")
    return 0
