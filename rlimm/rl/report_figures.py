"""The PNG figures of ``rlimm report``, drawn with matplotlib from the numbers of
:mod:`rlimm.rl.report_stats`: the aggregate metrics with their intervals, the performance profiles,
the IQM learning curves over all tasks and those of each task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    points = consistency_points(stats)
    if points:
        plot_consistency(folder / "consistency.png", points)
        names.append("consistency.png")
    return names


@dataclass(frozen=True)
class ConsistencyPoint:
    """IMM − Y on one task (Y: none or naive), normalised by the task's reference − random, with its
    paired interval, at the task's teacher score (normalised) and hidden part left (``nan``: not
    measured)."""

    task: str
    versus: str
    schedule: str
    measure: str
    mean: float
    low: float
    high: float
    teacher: float
    hidden_left: float


def consistency_points(stats: ReportStats) -> list[ConsistencyPoint]:
    """The points of :func:`plot_consistency`: every paired difference imm − none and imm − naive of
    every task, final score and curve mean."""
    out = []
    for table, row in zip(stats.per_task, stats.tasks, strict=True):
        scale = row.reference - row.random
        if not table.teachers or scale == 0:
            continue
        teacher = (table.teachers[0].mean - row.random) / scale
        none = [m.hidden_left for m in table.measures if m.algorithm.method == "none"]
        left = none[0] if none else float("nan")
        for d in table.differences:
            if d.x.method != "imm" or d.y.method not in ("none", "naive"):
                continue
            for measure, pd_ in (("final score", d.final), ("curve mean", d.curve)):
                if pd_ is None:
                    continue
                out.append(
                    ConsistencyPoint(
                        table.task,
                        d.y.method,
                        d.x.lambda_schedule or "constant",
                        measure,
                        pd_.mean / scale,
                        pd_.low / scale,
                        pd_.high / scale,
                        teacher,
                        left,
                    )
                )
    return out


#: The x axes of :func:`plot_consistency`: the attribute of a point and its label.
AXES = (
    ("teacher", "teacher's own score (normalised)"),
    ("hidden_left", "hidden part left (none's learners)"),
)


def plot_consistency(path: Path, points: Sequence[ConsistencyPoint]) -> None:
    """IMM − none and IMM − naive (rows: final score, curve mean; normalised, paired 95% intervals)
    against the teacher's normalised score (left) and the hidden part left for the learner alone
    (right): one point per task and λ schedule."""
    measures = [m for m in ("final score", "curve mean") if any(p.measure == m for p in points)]
    fig, axes = plt.subplots(len(measures), 2, figsize=(11, 3.6 * len(measures)), squeeze=False)
    styles = {"none": ("o", "tab:blue"), "naive": ("^", "tab:orange")}
    schedules = sorted({p.schedule for p in points})
    span = {}
    for attr, _ in AXES:
        xs = [getattr(p, attr) for p in points if getattr(p, attr) == getattr(p, attr)]  # noqa: PLR0124
        span[attr] = (max(xs) - min(xs)) or 1.0 if xs else 1.0
    for r, measure in enumerate(measures):
        for c, (attr, xlabel) in enumerate(
            (
                ("teacher", "teacher's own score (normalised)"),
                ("hidden_left", "hidden part left (none's learners)"),
            )
        ):
            ax = axes[r][c]
            for versus, (marker, color) in styles.items():
                for schedule in schedules:
                    sel = [
                        p
                        for p in points
                        if p.measure == measure
                        and p.versus == versus
                        and p.schedule == schedule
                        and getattr(p, attr) == getattr(p, attr)  # noqa: PLR0124 - drops nan
                    ]
                    if not sel:
                        continue
                    # Points of one task sit side by side: offsets by comparison and schedule.
                    shift = (2 * list(styles).index(versus) + schedules.index(schedule)) * 0.006 * span[attr]
                    x = [getattr(p, attr) + shift for p in sel]
                    y = [p.mean for p in sel]
                    err = [[p.mean - p.low for p in sel], [p.high - p.mean for p in sel]]
                    ax.errorbar(
                        x,
                        y,
                        yerr=err,
                        fmt=marker,
                        color=color,
                        alpha=1.0 if schedule == "constant" else 0.5,
                        capsize=3,
                        label=f"imm − {versus} ({schedule})",
                    )
            ax.axhline(0, color="black", linewidth=1)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{measure} difference (normalised)")
            ax.grid(alpha=0.3)
        axes[r][0].legend(fontsize=7, loc="best")
    _save(fig, path)


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
