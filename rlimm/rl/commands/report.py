"""``rlimm report``: robust aggregate statistics of one or several ``rlimm compare`` folders (a suite,
one folder per task), after Agarwal et al. 2021: scores normalised per task (random policy = 0,
reference = 1), IQM, mean and optimality gap with stratified bootstrap intervals, probabilities of
improvement, performance profiles and IQM learning curves. This module parses the command line and
chains the steps, each in its own module: read and normalise the folders
(:mod:`rlimm.rl.report_inputs`), compute (:mod:`rlimm.rl.report_stats`, rliable's statistics), render
(:mod:`rlimm.rl.report_markdown`, :mod:`rlimm.rl.report_figures`) and write the report folder whole or
not at all (:mod:`rlimm.rl.report_files`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlimm.common.command import non_negative_int, positive_int
from rlimm.errors import RlimmError

#: Bootstrap resamples by default (``rlimm.rl.aggregate.REPS``; not imported here so that ``rlimm
#: --help`` stays light).
REPS = 2000


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``report`` on the ``rlimm`` command's subparsers."""
    p = sub.add_parser(
        "report",
        help="IQM, optimality gap, P(X > Y), profiles and curves of compare folders (rliable's statistics)",
        description="Aggregate one or several `rlimm compare` folders (a suite: one folder per task) into "
        "normalised scores (random policy = 0, reference = 1) with stratified bootstrap 95% intervals.",
    )
    p.add_argument("folders", nargs="+", metavar="DIR", help="output folders of `rlimm compare`")
    p.add_argument(
        "--out",
        required=True,
        help="report folder (report.md, PNGs, scores.csv, random.json); replaced whole",
    )
    p.add_argument(
        "--reference",
        nargs="+",
        metavar="ENV=SCORE",
        help="the score normalised to 1 on env ENV (a gymnasium id); default: the folder's "
        "reference_score, else the env's registered reward_threshold",
    )
    p.add_argument(
        "--curves",
        action="store_true",
        help="require learning curves (curves.csv in every folder); default: drawn when every folder has one",
    )
    p.add_argument("--reps", type=positive_int, default=REPS, help=f"bootstrap resamples (default: {REPS})")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the bootstrap (default: 0)")
    return p


def run(args: argparse.Namespace) -> int:
    """Write the report of ``args`` and name its report.md."""
    out = write_report(
        [Path(f) for f in args.folders],
        Path(args.out),
        parse_references(args.reference),
        require_curves=args.curves,
        reps=args.reps,
        seed=args.seed,
    )
    print(f"wrote {out / 'report.md'}")
    return 0


def parse_references(items: list[str] | None) -> dict[str, float]:
    """``["CartPole-v1=500"]`` → ``{"CartPole-v1": 500.0}``."""
    out: dict[str, float] = {}
    for item in items or []:
        env, sep, text = item.rpartition("=")
        try:
            if not sep or not env:
                raise ValueError
            out[env] = float(text)
        except ValueError:
            raise RlimmError(
                f"--reference: expected ENV=SCORE (e.g. CartPole-v1=500), got '{item}'"
            ) from None
    return out


def write_report(
    folders: list[Path],
    out: Path,
    references: dict[str, float] | None = None,
    require_curves: bool = False,
    reps: int = REPS,
    seed: int = 0,
) -> Path:
    """Check every input, compute, and write the report folder ``out`` atomically (built next to it,
    then renamed over it); returns ``out``."""
    # Imported here: they load rliable, pandas and matplotlib, which `rlimm --help` does not need.
    from rlimm.rl import report_files as files
    from rlimm.rl.report_figures import draw_figures
    from rlimm.rl.report_inputs import load_inputs
    from rlimm.rl.report_markdown import report_markdown
    from rlimm.rl.report_stats import report_stats

    files.check_out(out, folders)
    inputs = load_inputs(folders, references or {}, require_curves, files.read_random_cache(out))
    stats = report_stats(inputs, reps, seed)

    def fill(folder: Path) -> None:
        figures = draw_figures(folder, stats)
        files.write_scores(folder / "scores.csv", inputs.final)
        files.write_random(folder / files.RANDOM_SCORES, inputs.random_records)
        (folder / "report.md").write_text(report_markdown(stats, inputs.tasks, figures))

    files.write_folder(out, fill)
    return out
