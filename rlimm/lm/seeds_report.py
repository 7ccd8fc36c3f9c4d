"""The part of ``summary.md`` that several seeds add: every run, the means, and paired differences.

Runs of different methods with the same seed start from the same network and read the same batches
(:mod:`rlimm.lm.train`), so the methods are compared *by seed*: for two methods A and B and a figure
x (validation perplexity, test perplexity, or the restricted-task ratio), the paired difference is the
mean over seeds s of ``x_A(s) − x_B(s)`` with its 95% interval, mean ± t(0.975, n − 1) · sd / √n over the
n seeds where both finished (:func:`rlimm.common.stats.paired_difference`). Lower is better for all
three figures, so a negative difference favours A.
"""

from __future__ import annotations

import math

import pandas as pd

from rlimm.common.stats import paired_difference, summarize

#: ``results.csv`` column of the restricted-task ratio: induced bigram perplexity / Kneser-Ney's.
RATIO = "restricted_ratio"
#: The figures compared, with their labels in the tables.
FIGURES = {"val_ppl": "validation", "test_ppl": "test", RATIO: "restricted-task ratio"}
#: The paired comparisons, A − B.
PAIRS = (("imm", "none"), ("imm", "noising"), ("noising", "none"))
_SHORT = {"none": "none", "noising": "noising", "imm": "IMM"}


def with_ratio(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with the column :data:`RATIO` = induced bigram perplexity / Kneser-Ney's."""
    out = results.copy()
    out[RATIO] = out["induced_bigram_test_ppl"] / out["kn_bigram_test_ppl"]
    return out


def _fmt(value: float, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _digits(figure: str) -> int:
    return 3 if figure == RATIO else 2


def runs_table(results: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """One row per finished run: perplexities, the restricted task and the time."""
    lines = [
        "| method | seed | epochs | best epoch | validation | test | induced bigram | Kneser-Ney bigram | "
        "ratio | train time | s / batch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results.itertuples(index=False):
        lines.append(
            f"| {labels[r.method]} | {r.seed} | {r.epochs} | {r.best_epoch} | {_fmt(r.val_ppl)} | "
            f"{_fmt(r.test_ppl)} | {_fmt(r.induced_bigram_test_ppl)} | {_fmt(r.kn_bigram_test_ppl)} | "
            f"{_fmt(getattr(r, RATIO), 3)} | {_fmt(r.train_seconds / 60, 1)} min | "
            f"{_fmt(r.seconds_per_batch, 3)} |"
        )
    if results.empty:
        lines.append("| (no finished run yet) | | | | | | | | | | |")
    return lines


def means_table(results: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """Per method: the number of finished seeds and mean ± standard error of each figure."""
    lines = [
        "| method | seeds | " + " | ".join(FIGURES.values()) + " |",
        "| --- | --- | " + " | ".join("---" for _ in FIGURES) + " |",
    ]
    for method, group in results.groupby("method", sort=False):
        cells = []
        for figure in FIGURES:
            s = summarize(group[figure].to_numpy())
            sem = "" if math.isnan(s.sem) else f" ± {_fmt(s.sem, _digits(figure))}"
            cells.append(f"{_fmt(s.mean, _digits(figure))}{sem}")
        lines.append(f"| {labels[method]} | {len(group)} | " + " | ".join(cells) + " |")
    return lines


def paired_table(results: pd.DataFrame) -> list[str]:
    """Rows A − B of :data:`PAIRS`, one column per figure: ``mean [low, high] (n)``; ``–`` where fewer
    than two seeds have both methods finished."""
    lines = [
        "| difference | " + " | ".join(FIGURES.values()) + " |",
        "| --- | " + " | ".join("---" for _ in FIGURES) + " |",
    ]
    by_seed = {m: g.set_index("seed") for m, g in results.groupby("method", sort=False)}
    for a, b in PAIRS:
        if a not in by_seed or b not in by_seed:
            continue
        seeds = sorted(set(by_seed[a].index) & set(by_seed[b].index))
        cells = []
        for figure in FIGURES:
            if len(seeds) < 2:
                cells.append(f"– ({len(seeds)})")
                continue
            d = paired_difference(
                by_seed[a].loc[seeds, figure].to_numpy(), by_seed[b].loc[seeds, figure].to_numpy()
            )
            k = _digits(figure)
            cells.append(f"{d.mean:+.{k}f} [{d.low:+.{k}f}, {d.high:+.{k}f}] ({d.n})")
        lines.append(f"| {_SHORT[a]} − {_SHORT[b]} | " + " | ".join(cells) + " |")
    return lines


def seeds_markdown(results: pd.DataFrame, labels: dict[str, str], model: str) -> list[str]:
    """The multi-seed body of ``summary.md``: runs, means over seeds, paired differences.

    :param results: the finished runs, with a ``seed`` column and :data:`RATIO`.
    :param labels: the method labels of the report.
    :param model: what to call the full model (``LSTM``, ``Transformer``).
    """
    return [
        "## Every run",
        "",
        f"Perplexity, then the restricted task (the paper's Table 5): the test-bigram perplexity of the "
        f"{model}'s induced bigram, of the Kneser-Ney bigram, and their ratio (1 = as good as the teacher; "
        "IMM should bring it down).",
        "",
        *runs_table(results, labels),
        "",
        "## Mean over seeds (± standard error)",
        "",
        *means_table(results, labels),
        "",
        "## Paired differences over seeds",
        "",
        "Mean of A − B over the seeds where both finished, with its 95% interval (Student's t) and the "
        "number of seeds; lower perplexities and ratios are better, so a negative difference favours A.",
        "",
        *paired_table(results),
    ]
