"""Tables and plots of the logistic-regression experiment.

Accuracies are reported in percent; differences in percentage points (pp), paired by run (the same
training set, test set and, for estimated teachers, the same teacher), with 95% intervals
(mean ± t(0.975, n − 1) standard errors of the n per-run differences,
:func:`rlimm.common.stats.paired_difference`).
Variability is the standard deviation of the per-run accuracies; its intervals come from a paired
bootstrap over runs.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rlimm.common.files import atomic_write, atomic_write_text  # noqa: E402
from rlimm.common.stats import PairedDifference, paired_difference, summarize  # noqa: E402
from rlimm.logreg.experiment import EXACT, RESTRICTED  # noqa: E402

METHOD_LABELS = {
    "baseline": "baseline (no teacher)",
    "imm": "IMM (induced KL)",
    "noising": "noising (pointwise KL)",
    "interpolation": "interpolation (mix at prediction)",
}
METHOD_COLORS = {
    "baseline": "tab:gray",
    "imm": "tab:blue",
    "noising": "tab:orange",
    "interpolation": "tab:green",
}
#: Paired comparisons of the accuracy-vs-size table: (a, b) reports a − b.
PAIRS = [
    ("imm", "baseline"),
    ("imm", "noising"),
    ("imm", "interpolation"),
    ("noising", "baseline"),
    ("interpolation", "baseline"),
]
#: Bootstrap resamples for the intervals of standard-deviation differences.
BOOTSTRAP = 2000


def _pivot(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per run (rows) and configuration (columns) for one part and size."""
    return df.pivot_table(index="run", columns=["method", "lambda_ratio", "teacher"], values="accuracy")


def paired(a: np.ndarray, b: np.ndarray) -> PairedDifference:
    """Mean of ``a − b`` over runs and its 95% interval, in percentage points."""
    return paired_difference(a, b, scale=100.0)


def _sd(v: np.ndarray) -> np.ndarray:
    return v.std(axis=-1, ddof=1)


def _width(v: np.ndarray) -> np.ndarray:
    q10, q90 = np.quantile(v, [0.1, 0.9], axis=-1)
    return q90 - q10


#: Measures of spread over runs: the standard deviation, and the 10th–90th percentile width (the band
#: of the plots; unlike the sd it is not dominated by a few failed runs).
SPREADS = {"sd": _sd, "p90 − p10": _width}


def spread_difference(a: np.ndarray, b: np.ndarray, spread: str, seed: int = 0) -> tuple[float, float, float]:
    """``spread(a) − spread(b)`` over runs, in pp, with a 95% paired-bootstrap interval (runs resampled
    together, so that both methods see the same training sets)."""
    f = SPREADS[spread]
    a, b = 100.0 * np.asarray(a), 100.0 * np.asarray(b)
    idx = np.random.default_rng(seed).integers(0, len(a), size=(BOOTSTRAP, len(a)))
    low, high = np.quantile(f(a[idx]) - f(b[idx]), [0.025, 0.975])
    return float(f(a) - f(b)), low, high


def _fmt_interval(mean: float, low: float, high: float, digits: int = 2) -> str:
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def _fmt_diff(d: PairedDifference) -> str:
    return _fmt_interval(d.mean, d.low, d.high)


def _fmt_acc(v: np.ndarray) -> str:
    s = summarize(100.0 * np.asarray(v))
    return f"{s.mean:.2f} [{s.p10:.1f}, {s.p90:.1f}]"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _column(piv: pd.DataFrame, method: str, ratio: float, teacher: int = EXACT) -> np.ndarray | None:
    key = (method, 0.0 if method == "baseline" else ratio, EXACT if method == "baseline" else teacher)
    return piv[key].to_numpy() if key in piv.columns else None


def size_tables(results: pd.DataFrame, ratio: float) -> tuple[str, str, dict[str, str]]:
    """For the ``size`` part: accuracy against n, paired differences, and one variability table per
    measure of :data:`SPREADS` (each method's spread, and IMM's minus each other method's)."""
    part = results[results.part == "size"]
    methods = [m for m in METHOD_LABELS if m in set(part.method)]
    pairs = [(a, b) for a, b in PAIRS if a in methods and b in methods]
    others = [m for m in methods if m != "imm"] if "imm" in methods else []
    acc_rows, diff_rows = [], []
    spread_rows: dict[str, list[list[str]]] = {k: [] for k in SPREADS}
    for n, g in part.groupby("n"):
        piv = _pivot(g)
        cols = {m: _column(piv, m, ratio) for m in methods}
        acc_rows.append([str(n)] + [_fmt_acc(cols[m]) for m in methods])
        diff_rows.append([str(n)] + [_fmt_diff(paired(cols[a], cols[b])) for a, b in pairs])
        for name, f in SPREADS.items():
            cells = [f"{f(100 * cols[m]):.2f}" for m in methods]
            cells += [
                _fmt_interval(*spread_difference(cols["imm"], cols[o], name, seed=int(n))) for o in others
            ]
            spread_rows[name].append([str(n)] + cells)
    acc = _table(["n"] + methods, acc_rows)
    diff = _table(["n"] + [f"{a} − {b}" for a, b in pairs], diff_rows)
    spreads = {
        name: _table(
            ["n"] + [f"{name}: {m}" for m in methods] + [f"imm − {o}" for o in others], spread_rows[name]
        )
        for name in SPREADS
    }
    return acc, diff, spreads


def sweep_table(results: pd.DataFrame) -> str:
    """λ sweep: per size and ratio, each method's accuracy and its paired difference to the baseline."""
    part = results[results.part == "sweep"]
    if part.empty:
        return ""
    methods = [m for m in METHOD_LABELS if m in set(part.method) and m != "baseline"]
    rows = []
    for n, g in part.groupby("n"):
        piv = _pivot(g)
        base = _column(piv, "baseline", 0.0)
        rows.append([str(n), "0 (baseline)"] + [f"{100 * base.mean():.2f}"] * len(methods))
        for ratio in sorted(set(g.lambda_ratio) - {0.0}):
            cells = []
            for m in methods:
                col = _column(piv, m, ratio)
                cells.append(f"{100 * col.mean():.2f} ({_fmt_diff(paired(col, base))})")
            rows.append([str(n), f"{ratio:g}"] + cells)
    return _table(["n", "λ ratio"] + [f"{m}: acc (Δ vs baseline [95% CI])" for m in methods], rows)


def population_table(population: pd.DataFrame) -> str:
    """Population minimisers (n → ∞) and their accuracy."""
    rows = []
    for r in population.itertuples(index=False):
        rows.append(
            [r.method, f"{r.lambda_ratio:g}", f"{100 * r.accuracy:.2f}"]
            + [f"{v:+.3f}" for v in (r.bias, r.w1, r.w2, r.w3)]
        )
    return _table(["method", "λ ratio", "accuracy", "θ0", "θ1 (x1)", "θ2 (x2)", "θ3 (x3)"], rows)


def teacher_table(results: pd.DataFrame, ratio: float) -> str:
    """Teacher quality: per size and teacher, each method's accuracy and difference to the baseline."""
    part = results[results.part == "teacher"]
    if part.empty:
        return ""
    alone = part[part.method == RESTRICTED].groupby("teacher")["accuracy"].mean()
    methods = [m for m in METHOD_LABELS if m in set(part.method) and m != "baseline"]
    rows = []
    for n, g in part[part.method != RESTRICTED].groupby("n"):
        piv = _pivot(g)
        base = _column(piv, "baseline", 0.0)
        for teacher in _teacher_order(g.teacher):
            cells = []
            for m in methods:
                col = _column(piv, m, ratio, teacher)
                cells.append(f"{100 * col.mean():.2f} ({_fmt_diff(paired(col, base))})")
            rows.append(
                [str(n), _teacher_label(teacher), f"{100 * alone[teacher]:.2f}", f"{100 * base.mean():.2f}"]
                + cells
            )
    head = ["n", "teacher", "teacher alone", "baseline"] + [
        f"{m}: acc (Δ vs baseline [95% CI])" for m in methods
    ]
    return _table(head, rows)


def _teacher_order(values: pd.Series) -> list[int]:
    est = sorted(int(v) for v in set(values) if v != EXACT)
    return est + ([EXACT] if EXACT in set(values) else [])


def _teacher_label(teacher: int) -> str:
    return "exact (quadrature)" if teacher == EXACT else f"logistic fit, {teacher} samples"


# ---------------------------------------------------------------------------------------------- plots


def _band(ax: plt.Axes, x: list, cols: list[np.ndarray], method: str, label: str | None = None) -> None:
    s = [summarize(100.0 * np.asarray(c)) for c in cols]
    color = METHOD_COLORS.get(method)
    label = label or METHOD_LABELS.get(method, method)
    ax.plot(x, [v.mean for v in s], marker="o", ms=3, color=color, label=label)
    ax.fill_between(x, [v.p10 for v in s], [v.p90 for v in s], color=color, alpha=0.15)


def _ceilings(ax: plt.Axes, bayes: float, restricted: float | None = None) -> None:
    ax.axhline(100 * bayes, color="black", ls="--", lw=1, label="Bayes accuracy (true full model)")
    if restricted is not None:
        ax.axhline(100 * restricted, color="tab:purple", ls=":", lw=1, label="restricted model alone (exact)")


def plot_sizes(results: pd.DataFrame, ratio: float, bayes: float, restricted: float, path: Path) -> Path:
    """Accuracy against n (mean, 10th–90th percentile band) and paired differences to the baseline."""
    part = results[results.part == "size"]
    methods = [m for m in METHOD_LABELS if m in set(part.method)]
    sizes = sorted(part.n.unique())
    pivs = {n: _pivot(part[part.n == n]) for n in sizes}
    fig, (ax, dx) = plt.subplots(1, 2, figsize=(12, 4.6))
    for m in methods:
        _band(ax, sizes, [_column(pivs[n], m, ratio) for n in sizes], m)
    _ceilings(ax, bayes, restricted)
    _size_axis(ax, sizes)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy: mean over runs, band = 10th–90th percentile")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    for m in methods:
        if m == "baseline":
            continue
        d = [paired(_column(pivs[n], m, ratio), _column(pivs[n], "baseline", 0.0)) for n in sizes]
        dx.plot(sizes, [p.mean for p in d], marker="o", ms=3, color=METHOD_COLORS[m], label=METHOD_LABELS[m])
        dx.fill_between(sizes, [p.low for p in d], [p.high for p in d], color=METHOD_COLORS[m], alpha=0.2)
    dx.axhline(0, color=METHOD_COLORS["baseline"], lw=1)
    _size_axis(dx, sizes)
    dx.set_ylabel("accuracy − baseline (pp)")
    dx.set_title("paired difference to the baseline, band = 95% CI")
    dx.grid(alpha=0.3)
    dx.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"Logistic regression, λ ratio {ratio:g}, {part.run.nunique()} runs per size", fontsize=10)
    return _save(fig, path)


def plot_sweep(results: pd.DataFrame, population: pd.DataFrame, bayes: float, path: Path) -> Path | None:
    """Accuracy against the λ ratio, one panel per sweep size and one for the population limit."""
    part = results[results.part == "sweep"]
    if part.empty:
        return None
    sizes = sorted(part.n.unique())
    fig, axes = plt.subplots(1, len(sizes) + 1, figsize=(4.4 * (len(sizes) + 1), 4.2), squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=False):
        g = part[part.n == n]
        piv = _pivot(g)
        ratios = sorted(set(g.lambda_ratio) - {0.0})
        base = summarize(100 * _column(piv, "baseline", 0.0))
        ax.axhline(base.mean, color=METHOD_COLORS["baseline"], label=METHOD_LABELS["baseline"])
        ax.axhspan(base.p10, base.p90, color=METHOD_COLORS["baseline"], alpha=0.12)
        for m in [m for m in METHOD_LABELS if m in set(g.method) and m != "baseline"]:
            _band(ax, ratios, [_column(piv, m, r) for r in ratios], m)
        _ceilings(ax, bayes)
        ax.set_title(f"n = {n}")
    ax = axes[0][-1]
    for m, g in population.groupby("method", sort=False):
        if m == "baseline":
            ax.axhline(100 * g.accuracy.iloc[0], color=METHOD_COLORS[m], label=METHOD_LABELS[m])
        else:
            ax.plot(
                g.lambda_ratio,
                100 * g.accuracy,
                marker="o",
                ms=3,
                color=METHOD_COLORS[m],
                label=METHOD_LABELS[m],
            )
    _ceilings(ax, bayes)
    ax.set_title("n → ∞ (population minimisers)")
    for ax in axes[0]:
        ax.set_xlabel("λ ratio  λ/(1+λ)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="lower left", fontsize=7)
    fig.suptitle("λ sweep: mean over runs, band = 10th–90th percentile", fontsize=10)
    return _save(fig, path)


def plot_teachers(results: pd.DataFrame, ratio: float, bayes: float, path: Path) -> Path | None:
    """Accuracy against the teacher's restricted sample size (exact teacher at the right end)."""
    part = results[(results.part == "teacher") & (results.method != RESTRICTED)]
    if part.empty:
        return None
    sizes = sorted(part.n.unique())
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.6 * len(sizes), 4.2), squeeze=False)
    for ax, n in zip(axes[0], sizes, strict=True):
        g = part[part.n == n]
        piv = _pivot(g)
        teachers = _teacher_order(g.teacher)
        x = list(range(len(teachers)))
        base = summarize(100 * _column(piv, "baseline", 0.0))
        ax.axhline(base.mean, color=METHOD_COLORS["baseline"], label=METHOD_LABELS["baseline"])
        ax.axhspan(base.p10, base.p90, color=METHOD_COLORS["baseline"], alpha=0.12)
        for m in [m for m in METHOD_LABELS if m in set(g.method) and m != "baseline"]:
            _band(ax, x, [_column(piv, m, ratio, t) for t in teachers], m)
        _ceilings(ax, bayes)
        ax.set_xticks(x, [("exact" if t == EXACT else str(t)) for t in teachers])
        ax.set_xlabel("teacher: restricted samples it was fitted to")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"n = {n}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="lower right", fontsize=7)
    fig.suptitle(
        f"Teacher quality, λ ratio {ratio:g}: mean over runs, band = 10th–90th percentile", fontsize=10
    )
    return _save(fig, path)


def _size_axis(ax: plt.Axes, sizes: list[int]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training set size n")


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)
    return path


def write_report(
    out: Path,
    results: pd.DataFrame,
    population: pd.DataFrame,
    *,
    title: str,
    ratio: float,
    bayes: float,
    restricted: float,
    seconds: dict[str, float] | None = None,
) -> tuple[Path, list[Path], str]:
    """Write ``summary.md`` and the PNG plots into ``out``.

    :param out: output folder (exists).
    :param results: the per-run accuracies (``results.csv``).
    :param population: the population minimisers (``population.csv``).
    :param title: heading of the summary.
    :param ratio: the main λ ratio (``size`` and ``teacher`` parts).
    :param bayes: accuracy of the true full model on the test set (the ceiling).
    :param restricted: accuracy of the exact restricted model alone.
    :param seconds: wall times to report, if any.
    :return: the summary's path, the plots' paths, and the accuracy-vs-size table.
    """
    acc, diff, spreads = size_tables(results, ratio)
    runs = results.run.nunique()
    parts = [
        f"# {title}\n",
        f"Test accuracy in % (labels integrated out exactly on a shared test set). Ceiling: Bayes accuracy "
        f"of the true full model **{100 * bayes:.2f}**; the exact restricted model alone: "
        f"**{100 * restricted:.2f}**. {runs} runs per configuration; main λ ratio {ratio:g}.\n",
        "## Accuracy against training set size\n\nCells: mean [10th, 90th percentile] over runs.\n",
        acc,
        "\n### Paired differences (pp, mean [95% CI] over runs)\n",
        diff,
    ]
    for name, table in spreads.items():
        parts += [
            f"\n### Variability over runs: {name} (pp); IMM minus the others [95% paired bootstrap]\n",
            table,
        ]
    sweep = sweep_table(results)
    if sweep:
        parts += [
            "\n## λ sweep\n\nCells: mean accuracy (paired difference to the baseline, pp [95% CI]).\n",
            sweep,
        ]
    parts += [
        "\n## Population minimisers (n → ∞, exact teacher)\n\n"
        "Accuracy on the test set of the parameters that minimise each objective under the true "
        "distribution.\n",
        population_table(population),
    ]
    teach = teacher_table(results, ratio)
    if teach:
        parts += [
            "\n## Teacher quality\n\nTeachers: one-feature logistic fits to restricted samples of the "
            "given size (one per run), or the exact restricted model. Cells: mean accuracy (paired "
            "difference to the baseline, pp [95% CI]).\n",
            teach,
        ]
    if seconds:
        parts.append("\nWall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()) + ".\n")
    md = atomic_write_text(out / "summary.md", "\n".join(parts) + "\n")
    pngs = [plot_sizes(results, ratio, bayes, restricted, out / "logreg_size.png")]
    sweep_png = plot_sweep(results, population, bayes, out / "logreg_lambda.png")
    teacher_png = plot_teachers(results, ratio, bayes, out / "logreg_teacher.png")
    pngs += [p for p in (sweep_png, teacher_png) if p]
    return md, pngs, acc
