"""``rlimm tune``: the best λ-ratio per budget with Optuna, and a linear rule for ``compare``."""

from __future__ import annotations

import argparse
import sys

from rlimm.common.command import add_jobs_option, jobs_or_cores, positive_int
from rlimm.common.device import add_device_option, check_device


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``tune`` on the ``rlimm`` command's subparsers."""
    p = sub.add_parser(
        "tune",
        help="search the λ-ratio per budget with Optuna and fit a rule for compare",
        description="For every budget of a compare config, search the λ-ratio of tune.method with "
        "Optuna (tune.trials trials, each the mean score over tune.seeds seeds). Studies live in "
        "OUT/optuna.db (SQLite) or in --storage; rerunning continues them, and several processes "
        "(on several machines) given the same --storage share the trials. Writes OUT/trials.csv "
        "and OUT/tuned.yaml, a lambda_ratio rule linear in the budget that compare accepts.",
    )
    p.add_argument("config", help="YAML compare config (its tune section sets the search)")
    p.add_argument("--out", required=True, help="output folder (optuna.db, trials.csv, tuned.yaml)")
    p.add_argument(
        "--storage",
        help="Optuna storage: a database URL (sqlite:///FILE, postgresql://…, mysql://…) or "
        "journal:PATH, a journal file on a shared disk (default: sqlite:///OUT/optuna.db)",
    )
    p.add_argument("--trials", type=positive_int, help="complete trials per budget (overrides tune.trials)")
    p.add_argument("--seeds", type=positive_int, help="seeds per trial (overrides tune.seeds)")
    p.add_argument("--budgets", type=int, nargs="+", help="budgets (overrides the config)")
    add_jobs_option(p)
    add_device_option(p, "cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from rlimm.rl.config import load_compare_config
    from rlimm.rl.tuning import tune

    if args.device is not None:
        check_device(args.device)  # a bad flag is named as such, not as a key of the config file
    overrides = {
        "budgets": args.budgets,
        "tune": {"trials": args.trials, "seeds": args.seeds},
        "device": args.device,
    }
    config = load_compare_config(args.config, overrides)
    outcome = tune(
        config,
        args.out,
        args.storage,
        jobs_or_cores(args.jobs),
        progress=not args.no_progress,
        log=lambda line: print(f"rlimm tune: {line}", file=sys.stderr, flush=True),
    )

    method = config.tune.method
    print(f"| budget ({config.budget_unit}) | best λ-ratio of {method} | mean score | trials |")
    print("|---|---|---|---|")
    for b in outcome.best:
        print(f"| {b.budget} | {b.lambda_ratio:.3f} | {b.score:.2f} | {b.trials} |")
    rule = outcome.rule
    print(
        f"\nfitted rule: ratio = {rule.intercept:.4f} + {rule.slope:.6f} · budget, "
        f"clipped to [{rule.low}, {rule.high}]"
    )
    print(
        f"wrote {outcome.trials_csv} and {outcome.rule_yaml} (paste its lambda_ratio into a compare config)"
    )
    return 0
