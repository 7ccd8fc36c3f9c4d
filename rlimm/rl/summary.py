"""``rlimm compare``'s summary of one folder's ``results.csv``: ``summary.md`` (a Markdown table, paired
differences by seed and the single-task robust statistics) and ``plot.png`` with 10th–90th percentile
bands (with ``curves.csv``: learning curves against environment steps). Not ``rlimm report``'s
aggregate over several folders (:mod:`rlimm.rl.commands.report`)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rlimm.common.files import atomic_write, atomic_write_text  # noqa: E402
from rlimm.common.stats import paired_difference  # noqa: E402
from rlimm.common.stats import summarize as summarize_sample
from rlimm.rl.aggregate import single_task_lines  # noqa: E402

METHOD_ORDER = ["none", "naive", "imm"]
METHOD_LABELS = {"none": "none (no teacher)", "naive": "naive (pointwise KL)", "imm": "IMM (induced KL)"}
METHOD_COLORS = {"none": "tab:gray", "naive": "tab:orange", "imm": "tab:blue"}


def load_results(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Per (budget, λ-ratio, method): runs, mean score, its standard error, 10th/90th percentiles."""
    rows = []
    for (budget, ratio, method), g in df.groupby(["budget", "lambda_ratio", "method"]):
        s = summarize_sample(g["score"].to_numpy())
        rows.append((budget, ratio, method, s.n, s.mean, s.sem, s.p10, s.p90))
    out = pd.DataFrame(
        rows, columns=["budget", "lambda_ratio", "method", "runs", "mean", "sem", "p10", "p90"]
    )
    out["method"] = pd.Categorical(
        out["method"], METHOD_ORDER + sorted(set(out["method"]) - set(METHOD_ORDER))
    )
    return out.sort_values(["budget", "lambda_ratio", "method"]).reset_index(drop=True)


def is_sweep(summary: pd.DataFrame) -> bool:
    """Whether some budget was run at several λ-ratios (a sweep), not one ratio per budget."""
    reg = summary[summary["method"] != "none"]
    return bool(len(reg)) and bool((reg.groupby("budget")["lambda_ratio"].nunique() > 1).any())


def markdown_table(summary: pd.DataFrame) -> str:
    """Rows: budget and λ-ratio; one column per method: ``mean ± sem [p10, p90] (n)``."""
    sweep = is_sweep(summary)
    methods = [m for m in summary["method"].cat.categories if m in set(summary["method"])]
    head = ["budget"] + (["λ ratio"] if sweep else []) + methods
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    none = summary[summary["method"] == "none"].set_index("budget")
    keys = summary[summary["method"] != "none"][["budget", "lambda_ratio"]].drop_duplicates()
    if keys.empty:
        keys = summary[["budget", "lambda_ratio"]].drop_duplicates()
    for budget, ratio in keys.itertuples(index=False):
        cells = [str(budget)] + ([f"{ratio:g}"] if sweep else [])
        for m in methods:
            if m == "none":
                row = none.loc[budget] if budget in none.index else None
            else:
                sel = summary[
                    (summary.budget == budget) & (summary.lambda_ratio == ratio) & (summary.method == m)
                ]
                row = sel.iloc[0] if len(sel) else None
            cells.append(_cell(row))
        lines.append("| " + " | ".join(cells) + " |")
    if not sweep:
        ratios = summary[summary["method"] != "none"].groupby("budget")["lambda_ratio"].first()
        if len(ratios):
            lines.append("")
            lines.append("λ ratio per budget: " + ", ".join(f"{b}: {r:.2f}" for b, r in ratios.items()))
    return "\n".join(lines)


def _cell(row: pd.Series | None) -> str:
    if row is None:
        return "–"
    return f"{row['mean']:.2f} ± {row['sem']:.2f} [{row['p10']:.1f}, {row['p90']:.1f}] ({int(row['runs'])})"


def plot(
    summary: pd.DataFrame,
    path: str | Path,
    title: str = "",
    budget_label: str = "budget",
    curves: pd.DataFrame | None = None,
    teacher: float | None = None,
) -> Path:
    """Score per method, with the 10th–90th percentile band across runs:

    - with ``curves`` (``curves.csv``): against environment steps, the mean over seeds of each
      evaluation during training;
    - for a sweep: against λ-ratio, one panel per budget;
    - else against budget, or with one budget a point per method.

    ``teacher``: the teacher's own score (``teacher.json``), drawn as a dashed horizontal line.
    """
    sweep = is_sweep(summary)
    budgets = sorted(summary["budget"].unique())
    has_curves = curves is not None and not curves.empty
    if sweep and not has_curves:
        fig, axes = plt.subplots(1, len(budgets), figsize=(5 * len(budgets), 4), squeeze=False)
        for ax, budget in zip(axes[0], budgets, strict=True):
            sub = summary[summary.budget == budget]
            for method in METHOD_ORDER:
                m = sub[sub.method == method]
                if m.empty:
                    continue
                if method == "none":
                    row = m.iloc[0]
                    ax.axhline(row["mean"], color=METHOD_COLORS[method], label=METHOD_LABELS[method])
                    ax.axhspan(row["p10"], row["p90"], color=METHOD_COLORS[method], alpha=0.12)
                    continue
                _line(ax, m["lambda_ratio"], m, method)
            _teacher_line(ax, teacher)
            ax.set_title(f"{budget_label} = {budget}")
            ax.set_xlabel("λ ratio  λ/(1+λ)")
            ax.set_ylabel("score (mean undiscounted return)")
            ax.grid(alpha=0.3)
        axes[0][0].legend(loc="lower left", fontsize=8)
        band = "band = 10th–90th percentile of per-run scores"
    else:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        if has_curves:
            _curves(ax, curves)
            ax.set_xlabel("environment steps")
            band = "evaluations during training; band = 10th–90th percentile across seeds"
        elif len(budgets) == 1:
            _points(ax, summary)
            ax.set_xlabel(f"method ({budget_label} = {budgets[0]})")
            band = "band = 10th–90th percentile of per-run scores"
        else:
            for method in METHOD_ORDER:
                m = summary[summary.method == method].sort_values("budget")
                if not m.empty:
                    _line(ax, m["budget"], m, method)
            ax.set_xlabel(budget_label)
            band = "band = 10th–90th percentile of per-run scores"
        _teacher_line(ax, teacher)
        ax.set_ylabel("score (mean undiscounted return)")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(f"{title}\nmean over seeds, {band}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)
    return path


def _line(ax: plt.Axes, x: pd.Series, rows: pd.DataFrame, method: str) -> None:
    color = METHOD_COLORS.get(method)
    ax.plot(x, rows["mean"], marker="o", color=color, label=METHOD_LABELS.get(method, method))
    ax.fill_between(x, rows["p10"], rows["p90"], color=color, alpha=0.15)


def _points(ax: plt.Axes, summary: pd.DataFrame) -> None:
    """One budget: a point per method (and λ-ratio) with its 10th–90th percentile bar."""
    rows = summary.sort_values(["method", "lambda_ratio"]).reset_index(drop=True)
    several = rows.groupby("method", observed=True)["lambda_ratio"].nunique().gt(1).any()
    labels = []
    for i, row in rows.iterrows():
        method = str(row["method"])
        color = METHOD_COLORS.get(method)
        low, high = row["mean"] - row["p10"], row["p90"] - row["mean"]
        ax.errorbar(i, row["mean"], yerr=[[low], [high]], fmt="o", color=color, capsize=6, markersize=8)
        labels.append(method + (f"\nλ ratio {row['lambda_ratio']:g}" if several and method != "none" else ""))
    ax.set_xticks(range(len(rows)), labels)
    ax.set_xlim(-0.6, len(rows) - 0.4)


def _curves(ax: plt.Axes, curves: pd.DataFrame) -> None:
    """Mean score over seeds against environment steps per method (and λ-ratio), from the runs of
    each one's longest budget, with the 10th–90th percentile band across seeds."""
    ratios = curves[curves.method != "none"].groupby("method")["lambda_ratio"].nunique()
    styles = ["-", "--", ":", "-."]
    methods = METHOD_ORDER + sorted(set(curves.method) - set(METHOD_ORDER))
    for method in methods:
        sub = curves[curves.method == method]
        for i, (ratio, g) in enumerate(sub.groupby("lambda_ratio")):
            if "budget" in g.columns:  # curves.csv files before the budget column hold one budget's runs
                g = g[g.budget == g.budget.max()]
            stats = g.groupby("step")["score"].agg(
                mean="mean", p10=lambda v: np.percentile(v, 10), p90=lambda v: np.percentile(v, 90)
            )
            color = METHOD_COLORS.get(method)
            label = METHOD_LABELS.get(method, method)
            if method != "none" and ratios.get(method, 1) > 1:
                label += f", λ ratio {ratio:g}"
            ax.plot(stats.index, stats["mean"], color=color, linestyle=styles[i % len(styles)], label=label)
            ax.fill_between(stats.index, stats["p10"], stats["p90"], color=color, alpha=0.12)


def _teacher_line(ax: plt.Axes, teacher: float | None) -> None:
    if teacher is not None:
        ax.axhline(teacher, color="black", linestyle="--", linewidth=1, label="teacher on the full env")


PAIRS = (("imm", "none"), ("naive", "none"), ("imm", "naive"))


def paired_differences(df: pd.DataFrame) -> pd.DataFrame:
    """Per budget and λ-ratio, for each pair (a, b) in :data:`PAIRS`: the mean over seeds of
    ``score(a) − score(b)`` for runs with the same seed (same initial network and first rollout), and
    a 95% interval (± t(0.975, n − 1) standard errors of the n paired differences)."""
    rows = []
    for a, b in PAIRS:
        runs_a = df[df.method == a]
        for (budget, ratio), g in runs_a.groupby(["budget", "lambda_ratio"]):
            other = df[(df.method == b) & (df.budget == budget)]
            if b != "none":
                other = other[other.lambda_ratio == ratio]
            merged = g.merge(other, on="seed", suffixes=("_a", "_b"))
            if len(merged) < 2:
                continue
            d = paired_difference(merged["score_a"].to_numpy(), merged["score_b"].to_numpy())
            rows.append((budget, ratio, f"{a} − {b}", d.n, d.mean, d.low, d.high))
    cols = ["budget", "lambda_ratio", "comparison", "pairs", "mean", "low", "high"]
    return pd.DataFrame(rows, columns=cols).sort_values(["budget", "lambda_ratio"], kind="stable")


def differences_table(diffs: pd.DataFrame) -> str:
    """Markdown: paired difference to ``none`` per budget, λ-ratio and method."""
    if diffs.empty:
        return ""
    lines = [
        "| budget | λ ratio | comparison | pairs | mean difference [95% CI] |",
        "|---:|---:|---|---:|---:|",
    ]
    for r in diffs.itertuples(index=False):
        lines.append(
            f"| {r.budget} | {r.lambda_ratio:g} | {r.comparison} | {r.pairs} | "
            f"{r.mean:+.2f} [{r.low:+.2f}, {r.high:+.2f}] |"
        )
    return "\n".join(lines)


def teacher_score(path: Path) -> float | None:
    """The teacher's mean score over seeds (``teacher.json`` of ``rlimm compare``), if recorded."""
    if not path.exists():
        return None
    return float(np.mean(json.loads(path.read_text())["scores"]))


def load_curves(path: Path) -> pd.DataFrame | None:
    """``curves.csv`` of ``rlimm compare``, if it exists and holds any evaluation."""
    if not path.exists():
        return None
    curves = pd.read_csv(path)
    return None if curves.empty else curves


def teacher_line(path: Path) -> str:
    """One line on the teacher's own score (``teacher.json`` of ``rlimm compare``), if recorded."""
    if not path.exists():
        return ""
    record = json.loads(path.read_text())
    s = summarize_sample(np.asarray(record["scores"], dtype=float))
    return (
        f"Teacher ({record['teacher']}) on the full env, acting on what it sees, same evaluation "
        f"protocol and seeds: {s.mean:.2f} ± {s.sem:.2f} [{s.p10:.1f}, {s.p90:.1f}] ({s.n})."
    )


def expert_line(path: Path) -> str:
    """An induced teacher's expert and the hidden part's information (``about`` in ``teacher.json``)."""
    if not path.exists():
        return ""
    about = json.loads(path.read_text()).get("about")
    if not about:
        return ""
    e = about["expert"]
    budget = f"{e['timesteps']} steps" if e["timesteps"] else "exact"
    return (
        f"The teacher is the induced policy of a full-state expert ({e['algo']}, {budget}) that scores "
        f"{e['score']:.2f} ± {e['score_std']:.2f} (sd over {e['episodes']} episodes); the hidden part's "
        f"information, E[KL(expert ‖ teacher)] over {about['hidden_kl_states']} states it visits: "
        f"{about['hidden_kl']:.4f} nats."
    )


def measures_table(results: Path) -> str:
    """Per budget and method, the mean end-of-run measures of ``measures.csv`` (empty without it)."""
    from rlimm.rl.comparison import MEASURES_FILE
    from rlimm.rl.hidden_part import MEASURES

    path = results.with_name(MEASURES_FILE)
    if not path.exists():
        return ""
    df = pd.read_csv(path).drop_duplicates(["method", "budget", "seed", "lambda_ratio"], keep="last")
    if df.empty:
        return ""
    lines = [
        "At the end, on the learner's own states (`measures.csv`, means over seeds): E[KL(P̄ ‖ Q̄)] its "
        "induced policy against the teacher (what IMM matches), E[KL(P̄ ‖ π)] itself against the teacher "
        "(what naive matches), and the share of the hidden part left once the visible part is known.",
        "",
        "| budget | method | runs | E[KL(P̄ ‖ Q̄)] | E[KL(P̄ ‖ π)] | hidden part left |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for (budget, method), g in df.groupby(["budget", "method"], sort=True):
        means = g[list(MEASURES)].astype(float).mean()
        lines.append(
            f"| {budget} | {method} | {len(g)} | {means['induced_kl']:.4f} | {means['pointwise_kl']:.4f} | "
            f"{means['hidden_left']:.3f} |"
        )
    return "\n".join(lines)


def induction_line(config_json: Path, results: pd.DataFrame) -> str:
    """``IMM's induction: …`` and the λ schedule, from a compare folder's ``config.json`` (empty
    without one, or without imm runs)."""
    from rlimm.rl.config import InductionConfig

    if not config_json.exists() or "imm" not in set(results["method"]):
        return ""
    record = json.loads(config_json.read_text())
    induction = InductionConfig.model_validate({**InductionConfig.LEGACY, **record.get("induction", {})})
    schedule = record.get("lambda_schedule", "constant")
    return f"IMM's induction: {induction.describe()}. λ schedule: {schedule}."


def write_report(
    results: str | Path, title: str = "", budget_label: str = "budget"
) -> tuple[Path, Path, str]:
    """Write ``summary.md`` and ``plot.png`` next to ``results.csv``; return their paths and the table."""
    results = Path(results)
    df = load_results(results)
    summary = summarize(df)
    table = markdown_table(summary)
    diffs = differences_table(paired_differences(df))
    md = results.with_name("summary.md")
    teacher = teacher_line(results.with_name("teacher.json"))
    expert = expert_line(results.with_name("teacher.json"))
    measures = measures_table(results)
    induction = induction_line(results.with_name("config.json"), df)
    atomic_write_text(
        md,
        (f"# {title}\n\n" if title else "")
        + "Score = mean undiscounted return of the evaluation rollouts of a run; cells: mean over seeds "
        "± standard error [10th, 90th percentile of per-run scores] (runs).\n\n"
        + table
        + "\n"
        + (f"\n{teacher}\n" if teacher else "")
        + (f"\n{expert}\n" if expert else "")
        + (f"\n{induction}\n" if induction else "")
        + (f"\n{measures}\n" if measures else "")
        + (
            "\nPaired by seed (same budget and λ ratio; `none` has no λ): 95% interval = mean ± t(0.975, "
            "n − 1) standard errors of the n per-seed differences (Student's t).\n\n" + diffs + "\n"
            if diffs
            else ""
        )
        + single_task_lines(df),
    )
    png = plot(
        summary,
        results.with_name("plot.png"),
        title,
        budget_label,
        load_curves(results.with_name("curves.csv")),
        teacher_score(results.with_name("teacher.json")),
    )
    return md, png, table
