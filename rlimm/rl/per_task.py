"""The per-task part of ``rlimm report``: each task's final scores in its own units with paired
intervals, and each task's IQM learning curves with bands (one panel per task).

Paired: runs of two algorithms on one task with the same seed share the environment's seeds, their
evaluation seeds and their initial weights, so the per-seed difference X − Y carries less noise than
the two means; its interval is Student's, mean ± t(0.975, n − 1) · sd / √n over the n seeds both
have (:func:`rlimm.common.stats.paired_difference`, as ``compare``'s summary).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rlimm.common.stats import paired_difference
from rlimm.rl import aggregate as agg

#: Line style of a λ schedule in the per-task curves (``none``, with no schedule, is solid too); a
#: schedule not listed here is drawn dash-dotted.
SCHEDULE_STYLES = {"constant": "-", "linear_decay": "--", "trust": ":"}
OTHER_SCHEDULE_STYLE = "-."


def schedule_style(schedule: str | None) -> str:
    """The line style of the curves of runs with λ schedule ``schedule`` (``None``: not labelled)."""
    if schedule is None:
        return "-"
    return SCHEDULE_STYLES.get(schedule, OTHER_SCHEDULE_STYLE)


def final_tables(
    final: pd.DataFrame,
    teacher: pd.DataFrame,
    tasks: Sequence[Any],
    algorithms: Sequence[agg.Algorithm],
    reps: int,
    seed: int,
    curves: pd.DataFrame | None = None,
) -> list[str]:
    """Markdown lines: per task, each algorithm's runs, mean and IQM [95% bootstrap] of its final
    scores (the task's units), the teacher's and a random policy's scores, then the paired
    differences X − Y of :data:`rlimm.rl.aggregate.POI_PAIRS` over the seeds both ran. With
    ``curves``, also each run's mean over its learning curve (the area under it divided by its length:
    a measure of how early a method scores) and its paired differences."""
    lines = ["## Per task: final scores and paired differences", ""]
    pairs = agg.comparisons(algorithms)
    for task in tasks:
        rows = final[final["task"] == task.label]
        means = curve_means(curves, task.label) if curves is not None else None
        head = "| algorithm | runs | mean | IQM [95% CI] |" + (" curve mean |" if means is not None else "")
        lines += [
            f"### {task.label}",
            "",
            *induction_lines(task),
            head,
            "|---|---:|---:|---:|" + ("---:|" if means is not None else ""),
        ]
        for a in algorithms:
            scores = rows.loc[rows["algorithm"] == a, "score"].to_numpy(dtype=float)
            if len(scores):
                iqm = agg.interval("IQM", [scores], reps, seed).cell()
                cell = ""
                if means is not None:
                    m = means.loc[means["algorithm"] == a, "score"]
                    cell = f" {m.mean():.2f} |" if len(m) else " |"
                lines.append(f"| {a.label} | {len(scores)} | {scores.mean():.2f} | {iqm} |{cell}")
        taught = teacher[teacher["task"] == task.label] if len(teacher) else teacher
        extra = " |" if means is not None else ""
        for label, g in taught.groupby("teacher") if len(taught) else []:
            lines.append(f"| *teacher ({label})* | {len(g)} | {g['score'].mean():.2f} | |{extra}")
        lines.append(f"| *random policy* | {len(task.random_scores)} | {task.random:.2f} | |{extra}")
        diffs = []
        for x, y in pairs:
            d = paired(rows, x, y)
            if d is None:
                continue
            cell = f"| {x.label} − {y.label} | {d.n} | {d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}] |"
            if means is not None:
                c = paired(means, x, y)
                cell += f" {c.mean:+.2f} [{c.low:+.2f}, {c.high:+.2f}] |" if c is not None else " |"
            diffs.append(cell)
        if diffs:
            head = "| paired difference | seeds | final score [95% CI] |" + (
                " curve mean [95% CI] |" if means is not None else ""
            )
            lines += ["", head, "|---|---:|---:|" + ("---:|" if means is not None else ""), *diffs]
        lines.append("")
    return lines


def curve_means(curves: pd.DataFrame, task: str) -> pd.DataFrame:
    """Per run of ``task`` (algorithm, seed): the mean of its curve over the evaluation steps every
    run of the task has (so that every run is averaged over the same steps), as column ``score``."""
    sel = curves[curves["task"] == task]
    if sel.empty:
        return pd.DataFrame(columns=["algorithm", "seed", "score"])
    table = sel.pivot_table(index=["algorithm", "seed", "folder"], columns="step", values="score")
    table = table.dropna(axis=1)
    out = table.mean(axis=1).rename("score").reset_index()
    return out[["algorithm", "seed", "score"]]


def induction_lines(task: Any) -> list[str]:
    """``IMM's induction: …`` of each of the task's folders (one line when they agree)."""
    from rlimm.rl.config import InductionConfig

    described = []
    for folder in task.folders:
        record = folder.record.induction
        if record is not None:
            line = InductionConfig.model_validate({**InductionConfig.LEGACY, **record}).describe()
            if line not in described:
                described.append(line)
    return [f"IMM's induction: {line}." for line in described] + ([""] if described else [])


def paired(rows: pd.DataFrame, x: agg.Algorithm, y: agg.Algorithm):  # noqa: ANN201 - PairedDifference | None
    """X − Y over the seeds both ran on one task's ``rows`` (``None`` with fewer than two). An
    algorithm with several runs of one seed (``none`` in each of two folders of the task that differ
    only in λ ratio) counts their mean once: one pair per seed."""
    sx = rows[rows["algorithm"] == x].groupby("seed")["score"].mean()
    sy = rows[rows["algorithm"] == y].groupby("seed")["score"].mean()
    seeds = sorted(set(sx.index) & set(sy.index))
    if len(seeds) < 2:
        return None
    return paired_difference(sx.loc[seeds].to_numpy(dtype=float), sy.loc[seeds].to_numpy(dtype=float))


def plot_curves(
    path: Path,
    curves: pd.DataFrame,
    tasks: Sequence[Any],
    algorithms: Sequence[agg.Algorithm],
    teacher: pd.DataFrame,
    reps: int,
    seed: int,
) -> None:
    """One panel per task: each algorithm's IQM of the score (the task's units) at each evaluation
    step, with its 95% bootstrap band; colour by method, line style by λ schedule
    (:data:`SCHEDULE_STYLES`: constant solid, linear decay dashed, trust dotted); the teacher's mean
    score (dashed black) and a random policy's (dotted red) as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlimm.rl.report import METHOD_COLORS

    columns = min(3, len(tasks))
    rows_n = -(-len(tasks) // columns)
    fig, axes = plt.subplots(rows_n, columns, figsize=(5.2 * columns, 3.8 * rows_n), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        sel = curves[curves["task"] == task.label]
        for a in algorithms:
            runs = sel[sel["algorithm"] == a]
            if runs.empty:
                continue
            # Runs still being written have fewer steps: keep the steps every run has.
            table = runs.pivot_table(index=["seed", "folder"], columns="step", values="score").dropna(axis=1)
            if table.shape[1] == 0:
                continue
            curve = agg.iqm_curve([table.to_numpy(dtype=float)], reps, seed)
            x = table.columns.to_numpy(dtype=float)
            style = schedule_style(a.lambda_schedule)
            color = METHOD_COLORS.get(a.method, "tab:purple")
            ax.plot(x, curve.value, style, color=color, label=a.label)
            ax.fill_between(x, curve.low, curve.high, color=color, alpha=0.12)
        taught = teacher[teacher["task"] == task.label] if len(teacher) else teacher
        for label, g in taught.groupby("teacher") if len(taught) else []:
            ax.axhline(
                g["score"].mean(), color="black", linestyle="--", linewidth=1, label=f"teacher ({label})"
            )
        ax.axhline(task.random, color="tab:red", linestyle=":", linewidth=1, label="random policy")
        ax.set_title(task.label, fontsize=9)
        ax.set_xlabel("environment step")
        ax.set_ylabel("IQM of score")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    handles, labels = {}, []
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in handles:
                handles[label] = h
                labels.append(label)
    ncol = max(1, min(len(labels), 2 * columns))
    legend_rows = -(-len(labels) // ncol)
    fig.legend([handles[label] for label in labels], labels, loc="lower center", ncol=ncol, fontsize=8)
    # Room under the panels for the legend's rows (in figure fractions: 0.2 inch per row).
    fig.tight_layout(rect=(0, min(0.5, 0.2 * legend_rows / fig.get_figheight() + 0.02), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
