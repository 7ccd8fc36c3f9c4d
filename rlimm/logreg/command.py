"""The ``rlimm logreg`` subcommand: run the logistic-regression experiment of a config and report it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlimm.common.command import add_threads_option
from rlimm.errors import RlimmError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Declare ``logreg`` on the ``rlimm`` command's subparsers and return its parser."""
    p = subparsers.add_parser(
        "logreg",
        help="logistic-regression proof of concept: baseline, IMM, noising, interpolation",
        description="Train every configuration of a logistic-regression config (all runs of a size as "
        "one batched problem) and write results.csv, population.csv, summary.md and PNG plots.",
    )
    p.add_argument("config", help="YAML config file (see configs/logreg.yaml)")
    p.add_argument("--out", required=True, help="output folder (created if missing; files are overwritten)")
    p.add_argument("--runs", type=int, help="runs per configuration (overrides the config)")
    p.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        help="training set sizes of the accuracy-vs-size part (overrides the config)",
    )
    p.add_argument("--seed", type=int, help="seed (overrides the config)")
    add_threads_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def run(args: argparse.Namespace) -> int:
    """Run the experiment described by ``args``; return the exit code."""
    import torch

    from rlimm.common.files import atomic_write, atomic_write_text
    from rlimm.logreg.config import load_logreg_config
    from rlimm.logreg.experiment import run_experiment
    from rlimm.logreg.report import write_report

    config = load_logreg_config(args.config, {"runs": args.runs, "sizes": args.sizes, "seed": args.seed})
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RlimmError(f"--out must be a folder, but {out} is a file")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)

    log = None if args.quiet else (lambda msg: print(f"logreg: {msg}", file=sys.stderr, flush=True))
    outcome = run_experiment(config, log)
    results_csv = out / "results.csv"
    atomic_write(results_csv, lambda tmp: outcome.results.to_csv(tmp, index=False))
    atomic_write(out / "population.csv", lambda tmp: outcome.population.to_csv(tmp, index=False))
    setting = outcome.setting
    atomic_write_text(
        out / "setting.json",
        json.dumps(
            {
                "config": config.model_dump(mode="json"),
                "bayes_accuracy": setting.bayes_accuracy,
                "restricted_accuracy": setting.restricted_accuracy,
                "seconds": outcome.seconds,
                "torch_threads": args.threads,
            },
            indent=2,
        )
        + "\n",
    )
    md, pngs, table = write_report(
        out,
        outcome.results,
        outcome.population,
        title=f"{config.name}: logistic regression with a restricted teacher",
        ratio=config.lambda_ratio,
        bayes=setting.bayes_accuracy,
        restricted=setting.restricted_accuracy,
        seconds=outcome.seconds,
    )
    print(table)
    print(f"\nwrote {results_csv}, {out / 'population.csv'}, {md}, " + ", ".join(map(str, pngs)))
    return 0
