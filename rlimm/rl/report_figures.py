"""The PNG figures of ``rlimm report``, drawn with matplotlib from the numbers of
:mod:`rlimm.rl.report_stats`: the aggregate metrics with their intervals, the performance profiles,
the IQM learning curves over all tasks and those of each task."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from rlimm.rl.aggregate import METRICS, Algorithm  # noqa: E402
from rlimm.rl.report_curves import PooledCurves, TaskCurves  # noqa: E402
from rlimm.rl.report_stats import ReportStats  # noqa: E402
from rlimm.rl.summary import METHOD_COLORS  # noqa: E402

#: Line style of a λ schedule in the per-task curves (``none``, with no schedule, is solid too); a
#: schedule not listed here is drawn dash-dotted.
SCHEDULE_STYLES = {"constant": "-", "linear_decay": "--", "trust": ":"}
OTHER_SCHEDULE_STYLE = "-."


def draw_figures(folder: Path, stats: ReportStats) -> list[str]:
    """Draw every figure of ``stats`` into ``folder``; returns their file names, in report order (the
    curves only when ``stats`` has them)."""
    teacher_iqm = stats.teacher_iqm()
    names = ["aggregates.png", "profiles.png"]
    plot_aggregates(folder / "aggregates.png", stats)
    plot_profiles(folder / "profiles.png", stats.algorithms, stats.profiles, stats.taus, teacher_iqm)
    if stats.curves is not None and stats.task_curves is not None:
        plot_curves(folder / "curves.png", stats.curves, stats.algorithms, teacher_iqm)
        plot_task_curves(folder / "curves_by_task.png", stats.task_curves)
        names += ["curves.png", "curves_by_task.png"]
    return names


def schedule_style(schedule: str | None) -> str:
    """The line style of the curves of runs with λ schedule ``schedule`` (``None``: not labelled)."""
    if schedule is None:
        return "-"
    return SCHEDULE_STYLES.get(schedule, OTHER_SCHEDULE_STYLE)


def colors(algorithms: Sequence[Algorithm]) -> dict[Algorithm, object]:
    """A colour per algorithm: its method's (:data:`METHOD_COLORS`) when the method has one algorithm,
    else one of matplotlib's ``tab10`` by position, so that the variants of a method are told apart."""
    palette = plt.get_cmap("tab10").colors
    counts: dict[str, int] = {}
    for a in algorithms:
        counts[a.method] = counts.get(a.method, 0) + 1
    out = {}
    for i, a in enumerate(algorithms):
        out[a] = METHOD_COLORS.get(a.method, palette[i % 10]) if counts[a.method] == 1 else palette[i % 10]
    return out


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _reference_lines(ax: plt.Axes, teacher: dict[str, float], random: float, vertical: bool) -> None:
    line = ax.axvline if vertical else ax.axhline
    for label, value in teacher.items():
        line(value, color="black", linestyle="--", linewidth=1, label=f"teacher ({label})")
    line(random, color="tab:red", linestyle=":", linewidth=1, label="random policy")


def plot_aggregates(path: Path, stats: ReportStats) -> None:
    """One panel per metric: each algorithm's interval as a bar and its estimate as a tick; the
    teachers' estimates dashed, a random policy's dotted."""
    algorithms = stats.algorithms
    by_algorithm = {a.algorithm: a.metrics for a in stats.aggregates}
    palette = colors(algorithms)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 0.5 * len(algorithms) + 1.8))
    for ax, metric in zip(axes, METRICS, strict=True):
        for i, a in enumerate(algorithms):
            iv = by_algorithm[a][metric]
            ax.barh(i, iv.high - iv.low, left=iv.low, height=0.6, color=palette[a], alpha=0.6)
            ax.plot([iv.value, iv.value], [i - 0.3, i + 0.3], color="black", linewidth=2)
        teacher = {t.teacher: t.metrics[metric].value for t in stats.teachers}
        _reference_lines(ax, teacher, 1.0 if metric == "optimality gap" else 0.0, vertical=True)
        ax.set_yticks(range(len(algorithms)), [a.label for a in algorithms] if ax is axes[0] else [])
        ax.set_title(metric + (" (lower is better)" if metric == "optimality gap" else ""))
        ax.set_xlabel("normalised score")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].legend(loc="best", fontsize=8)
    _save(fig, path)


def plot_profiles(
    path: Path, algorithms: Sequence[Algorithm], profiles: dict, taus: Sequence[float], teacher_iqm: dict
) -> None:
    """Each algorithm's performance profile over ``taus`` with its band; a random policy (0) and the
    teachers' IQM as vertical lines."""
    palette = colors(algorithms)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for a in algorithms:
        p = profiles[a]
        ax.plot(taus, p.value, color=palette[a], label=a.label)
        ax.fill_between(taus, p.low, p.high, color=palette[a], alpha=0.15)
    _reference_lines(ax, teacher_iqm, 0.0, vertical=True)
    ax.set_xlabel("normalised score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    _save(fig, path)


def plot_curves(path: Path, curves: PooledCurves, algorithms: Sequence[Algorithm], teacher_iqm: dict) -> None:
    """The IQM curves of the normalised score over all tasks with their bands; the teachers' IQM and a
    random policy (0) as horizontal lines."""
    palette = colors(algorithms)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for c in curves.curves:
        ax.plot(c.x, c.iqm.value, color=palette[c.algorithm], label=c.algorithm.label)
        ax.fill_between(c.x, c.iqm.low, c.iqm.high, color=palette[c.algorithm], alpha=0.15)
    _reference_lines(ax, teacher_iqm, 0.0, vertical=False)
    ax.set_xlabel("environment step" if curves.shared else "fraction of training")
    ax.set_ylabel("IQM of normalised score")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    _save(fig, path)


def plot_task_curves(path: Path, tasks: Sequence[TaskCurves]) -> None:
    """One panel per task: each algorithm's IQM of the score (the task's units) at each evaluation
    step, with its 95% bootstrap band; colour by method, line style by λ schedule
    (:data:`SCHEDULE_STYLES`: constant solid, linear decay dashed, trust dotted); the teacher's mean
    score (dashed black) and a random policy's (dotted red) as horizontal lines."""
    columns = min(3, len(tasks))
    rows_n = -(-len(tasks) // columns)
    fig, axes = plt.subplots(rows_n, columns, figsize=(5.2 * columns, 3.8 * rows_n), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        for c in task.curves:
            style = schedule_style(c.algorithm.lambda_schedule)
            color = METHOD_COLORS.get(c.algorithm.method, "tab:purple")
            ax.plot(c.x, c.iqm.value, style, color=color, label=c.algorithm.label)
            ax.fill_between(c.x, c.iqm.low, c.iqm.high, color=color, alpha=0.12)
        for label, mean in task.teachers:
            ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"teacher ({label})")
        ax.axhline(task.random, color="tab:red", linestyle=":", linewidth=1, label="random policy")
        ax.set_title(task.task, fontsize=9)
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
