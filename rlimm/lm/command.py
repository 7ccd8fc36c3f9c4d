"""The ``rlimm lm`` subcommand: train the full model (an LSTM or a Transformer) with each method of a
config, for each of its seeds, and report perplexities.

Layout of ``--out``: ``config.json``, ``results.csv``, ``summary.md`` and one folder per method
(``checkpoint.pt``, ``best_model.pt``, ``metrics.json``, ``tensorboard/``), with one sub-folder
``seed<S>/`` per seed when ``train.seeds`` > 1. Rerunning the same command resumes unfinished runs from
their last checkpoint and skips finished ones; several processes may share one ``--out`` with different
``--methods`` (each rewrites the report from all finished runs).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rlimm.common.command import add_jobs_option, add_threads_option
from rlimm.common.device import add_device_option, check_device, describe, resolve_device
from rlimm.errors import RlimmError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Declare ``lm`` on the ``rlimm`` command's subparsers and return its parser."""
    p = subparsers.add_parser(
        "lm",
        help="language modelling on Penn Treebank: an LSTM or a Transformer with a Kneser-Ney bigram teacher",
        description="Train an LSTM or Transformer language model with each method of a config (dropout "
        "only, Kneser-Ney noising, IMM) and each of its seeds, evaluate perplexity and the restricted bigram "
        "task, and write results.csv and summary.md (with paired differences between the methods when "
        "there are several seeds). Resumable: rerunning the same command continues from the last "
        "checkpoint.",
    )
    p.add_argument("config", help="YAML config file (see configs/lm_cpu.yaml)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--methods", nargs="+", help="subset of none, noising, imm (overrides the config)")
    p.add_argument("--epochs", type=int, help="training epochs (overrides the config's train.epochs)")
    p.add_argument(
        "--data-dir",
        help="Penn Treebank folder, or a folder containing ptb/ (default: the config's data.data_dir, "
        "else $RLIMM_DATA_DIR/ptb)",
    )
    add_threads_option(p)
    add_jobs_option(p, "runs (method × seed) trained in parallel, one process each", default=1)
    add_device_option(p, "auto")
    p.add_argument(
        "--tensorboard", action="store_true", help="write learning curves to OUT/<method>/tensorboard"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def run(args: argparse.Namespace) -> int:
    """Run the experiment described by ``args``; return the exit code."""
    import torch

    from rlimm.lm.config import load_lm_config
    from rlimm.lm.data import DATA_ENV
    from rlimm.lm.experiment import (
        CONFIG,
        KN_BIGRAM,
        check_output,
        fit_teacher,
        is_finished,
        load_corpus,
        run_folder,
        run_label,
        seed_config,
        write_json,
    )
    from rlimm.lm.report import write_report

    if args.device is not None:
        check_device(args.device)  # a bad flag is named as such, not as a key of the config file
    config = load_lm_config(args.config, methods=args.methods, epochs=args.epochs, device=args.device)
    device = resolve_device(config.device)
    out = Path(args.out)
    check_output(config, out)
    given = args.data_dir or config.data.data_dir or os.environ.get(DATA_ENV)
    if config.data.source == "ptb" and not given:
        raise RlimmError(
            "no Penn Treebank data folder given: pass --data-dir FOLDER or set data.data_dir in the config "
            f"(a folder holding ptb.train.txt, ptb.valid.txt and ptb.test.txt), or set {DATA_ENV} to a "
            "folder that contains ptb/"
        )
    # Reading the data validates the data folder and files before anything is written.
    corpus = load_corpus(config, args.data_dir)

    torch.set_num_threads(args.threads)
    log = None if args.quiet else (lambda msg: print(f"lm: {msg}", file=sys.stderr, flush=True))
    seeds = config.seeds
    per_seed = "" if len(seeds) == 1 else f", with a sub-folder per seed (seed{seeds[0]} … seed{seeds[-1]})"
    run = "<method>" if len(seeds) == 1 else "<method>/seed<S>"
    tb = out / run / "tensorboard" if args.tensorboard else "off, --tensorboard to write it"
    print(
        f"rlimm lm: writing {out / 'results.csv'}, {out / 'summary.md'} and a folder per method "
        f"({', '.join(config.methods)}){per_seed} in {out} (TensorBoard: {tb}); "
        f"training on {describe(device)}",
        file=sys.stderr,
        flush=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_json(config.model_dump(mode="json"), out / CONFIG)
    # The restricted model on its own (cheap: a fraction of a second), for the report.
    kn = fit_teacher(corpus)
    kn_ppl = {"val_ppl": kn.perplexity(corpus.valid), "test_ppl": kn.perplexity(corpus.test)}
    write_json({**kn_ppl, "discounts": kn.discounts.tolist()}, out / KN_BIGRAM)

    todo = []  # (method, seed) of every unfinished run
    for method in config.methods:
        for seed in config.seeds:
            if is_finished(config, run_folder(out, config, method, seed)):
                if log is not None:
                    log(f"{run_label(config, method, seed)}: finished earlier, skipped")
            else:
                todo.append((method, seed))
    if args.jobs > 1 and len(todo) > 1:
        _run_parallel(config, todo, args, out, device)
    elif todo:
        from rlimm.lm.experiment import run_method

        for method, seed in todo:
            folder = run_folder(out, config, method, seed)
            run_method(seed_config(config, seed), method, corpus, kn, folder, log, args.tensorboard, device)

    _, csv, md = write_report(out, config)
    print(md.read_text())
    print(f"wrote {csv}, {md}")
    return 0


def _run_parallel(config, runs: list[tuple[str, int]], args: argparse.Namespace, out: Path, device) -> None:  # noqa: ANN001
    """One fresh process per run (spawned: no fork of a process with torch threads running)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from rlimm.lm.experiment import run_folder, run_method_in_worker, seed_config

    # The costliest runs first (imm costs about twice none or noising), the longest-first schedule: with
    # 2 workers for 3 methods, imm runs alone in one process while the other trains none and noising one
    # after the other (≈ the same total); with 3 seeds, 3 imm runs then 6 cheaper ones share out evenly.
    runs = sorted(runs, key=lambda run: ({"imm": 0, "noising": 1}.get(run[0], 2), run[1]))
    with ProcessPoolExecutor(
        max_workers=min(args.jobs, len(runs)), mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        futures = [
            pool.submit(
                run_method_in_worker,
                seed_config(config, seed).model_dump(mode="json"),
                method,
                args.data_dir,
                str(run_folder(out, config, method, seed)),
                args.threads,
                args.quiet,
                args.tensorboard,
                str(device),
            )
            for method, seed in runs
        ]
        for future in futures:
            future.result()
