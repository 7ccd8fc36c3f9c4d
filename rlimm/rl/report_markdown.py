"""``report.md`` of ``rlimm report``, written from the numbers of :mod:`rlimm.rl.report_stats`: the tasks,
the aggregate final scores, the probabilities of improvement, the per-task tables with their paired
differences, and the figures with their captions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlimm.common.stats import PairedDifference
from rlimm.rl.aggregate import METRICS
from rlimm.rl.per_task import TaskTable
from rlimm.rl.report_stats import ReportStats

#: What each figure of :mod:`rlimm.rl.report_figures` shows, under it in report.md.
CAPTIONS = {
    "aggregates.png": "IQM, mean and optimality gap with 95% intervals; dashed: the teacher, dotted: a "
    "random policy.",
    "profiles.png": "Performance profiles: fraction of runs scoring above τ, with 95% bands; vertical "
    "lines: a random policy (0) and the teacher's IQM.",
    "curves.png": "IQM of the normalised score during training, with 95% bands (every folder's "
    "curves.csv); horizontal lines: the teacher's IQM and a random policy (0).",
    "curves_by_task.png": "Per task, the IQM of the score (the task's units) during training with 95% "
    "bands; solid: constant λ (and `none`), dashed: linearly decaying λ, dotted: `trust`; horizontal "
    "lines: the teacher's mean score and a random policy's.",
    "consistency.png": "IMM − none (circles) and IMM − naive (triangles) per task, final score (top) and "
    "curve mean (bottom), normalised by the task's reference − random score, with paired 95% intervals; "
    "left: against the teacher's own normalised score, right: against the share of the hidden part left "
    "once the visible part is known, for the learner alone at the end (tasks without measures.csv are "
    "left out on the right); faded: a λ schedule other than constant.",
}


def report_markdown(stats: ReportStats, tasks: Sequence[Any], figures: Sequence[str]) -> str:
    """The text of report.md: ``stats`` of ``tasks`` (:class:`rlimm.rl.report_inputs.Task`, for the
    induction each task's IMM runs used) with ``figures`` (file names of :data:`CAPTIONS`) linked."""
    lines = [
        "# rlimm report",
        "",
        f"Scores normalised per task: 0 = a uniform random policy, 1 = the task's reference score, both "
        "measured with the learners' evaluation protocol (the random policy on the same evaluation "
        f"seeds). Final scores: each folder's largest budget. Statistics and intervals: rliable's, 95% "
        f"stratified bootstrap (runs resampled within each task), {stats.reps} resamples, seed {stats.seed}.",
        "",
        *task_lines(stats),
        *final_score_lines(stats),
        *improvement_lines(stats),
        "",
        "## Per task: final scores and paired differences",
        "",
    ]
    for table, task in zip(stats.per_task, tasks, strict=True):
        lines += [f"### {table.task}", "", *induction_lines(task), *task_table_lines(table), ""]
        lines += measure_lines(table)
    lines += ["## Plots", ""]
    for png in figures:
        lines += [f"![{png[:-4]}]({png})", "", CAPTIONS[png], ""]
    if stats.no_curves:
        lines += [f"No learning curves: no curves.csv in {', '.join(stats.no_curves)}.", ""]
    lines += [
        "Per-run scores: [scores.csv](scores.csv); the random policy's scores: [random.json](random.json).",
        "",
    ]
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def task_lines(stats: ReportStats) -> list[str]:
    """The tasks' table, and the folders still being written with the runs they lack."""
    lines = [
        "## Tasks",
        "",
        "| task | folders | budget | runs | random policy (= 0) | reference (= 1) | reference from |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for t in stats.tasks:
        budgets = ", ".join(map(str, t.budgets))
        folders = ", ".join(f"`{f}`" for f in t.folders)
        lines.append(
            _row(
                [
                    t.task,
                    folders,
                    budgets,
                    str(t.runs),
                    f"{t.random:.3f}",
                    f"{t.reference:g}",
                    t.reference_from,
                ]
            )
        )
    if stats.left_out:
        lines += [
            "",
            "**Left out** (folders still being written: these runs are not in results.csv yet):",
            "",
        ]
        lines += [f"- `{folder}`: {missing}" for folder, missing in stats.left_out]
    return lines


def final_score_lines(stats: ReportStats) -> list[str]:
    """The aggregate metrics of each algorithm, each teacher and a random policy, then the runs the
    statistics leave out."""
    lines = [
        "",
        "## Final scores (normalised)",
        "",
        "| algorithm | tasks | runs | IQM | mean | optimality gap |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for a in stats.aggregates:
        cells = [a.metrics[m].cell() for m in METRICS]
        lines.append(f"| {a.algorithm.label} | {a.tasks} | {a.runs} | " + " | ".join(cells) + " |")
    for t in stats.teachers:
        lines.append(
            f"| *teacher ({t.teacher})* | | | " + " | ".join(t.metrics[m].cell() for m in METRICS) + " |"
        )
    lines.append("| *random policy* | | | 0 | 0 | 1 |")
    if stats.truncated:
        lines += [
            "",
            "**Runs left out of the statistics** (rliable takes the same number of runs on every task):",
            "",
        ]
        lines += [f"- {note}" for note in stats.truncated]
    return lines


def improvement_lines(stats: ReportStats) -> list[str]:
    """The table of P(X > Y) (nothing without a pair to compare)."""
    if not stats.improvements:
        return []
    return [
        "",
        "## Probability of improvement",
        "",
        "P(X > Y): the chance that a run of X scores above a run of Y on the same task (ties count "
        "half), averaged over tasks; above 0.5 favours X.",
        "",
        "| X | Y | tasks | P(X > Y) |",
        "|---|---|---:|---:|",
        *(f"| {i.x.label} | {i.y.label} | {i.tasks} | {i.probability.cell()} |" for i in stats.improvements),
    ]


def _difference(d: PairedDifference) -> str:
    return f"{d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}]"


def task_table_lines(table: TaskTable) -> list[str]:
    """One task's final scores (its units) and paired differences; a curve-mean column with curves."""
    curves = table.has_curves
    extra = " |" if curves else ""
    lines = [
        "| algorithm | runs | mean | IQM [95% CI] |" + (" curve mean |" if curves else ""),
        "|---|---:|---:|---:|" + ("---:|" if curves else ""),
    ]
    for s in table.scores:
        cell = (f" {s.curve_mean:.2f} |" if s.curve_mean is not None else " |") if curves else ""
        lines.append(f"| {s.algorithm.label} | {s.runs} | {s.mean:.2f} | {s.iqm.cell()} |{cell}")
    for t in table.teachers:
        lines.append(f"| *teacher ({t.teacher})* | {t.runs} | {t.mean:.2f} | |{extra}")
    if table.about:
        e = table.about["expert"]
        budget = f"{e['timesteps']} steps" if e["timesteps"] else "exact"
        lines.append(f"| *its expert ({e['algo']}, {budget}, full state)* | 1 | {e['score']:.2f} | |{extra}")
    lines.append(f"| *random policy* | {table.random_runs} | {table.random:.2f} | |{extra}")
    if table.differences:
        lines += [
            "",
            "| paired difference | seeds | final score [95% CI] |"
            + (" curve mean [95% CI] |" if curves else ""),
            "|---|---:|---:|" + ("---:|" if curves else ""),
        ]
        for d in table.differences:
            cell = f"| {d.x.label} − {d.y.label} | {d.final.n} | {_difference(d.final)} |"
            if curves:
                cell += f" {_difference(d.curve)} |" if d.curve is not None else " |"
            lines.append(cell)
    return lines


def measure_lines(table: TaskTable) -> list[str]:
    """The induced teacher's hidden-part information, and each algorithm's learners against the
    teacher at the end (:mod:`rlimm.rl.hidden_part`)."""
    lines = []
    if table.about:
        a = table.about
        lines += [
            f"The hidden part's information, E[KL(expert ‖ teacher)] over {a['hidden_kl_states']} states "
            f"the expert visits: {a['hidden_kl']:.4f} nats (its expert: {a['expert']['score']:.2f} over "
            f"{a['expert']['episodes']} episodes).",
            "",
        ]
    if table.measures:
        lines += [
            f"At the end, on {table.measures[0].states} states each learner visits: E[KL(P̄ ‖ Q̄)] (its "
            "induced policy against the teacher: what IMM matches), E[KL(P̄ ‖ π)] (itself against the "
            "teacher: what naive matches) and the share of the hidden part left once the visible part is "
            "known (1: none of it known).",
            "",
            "| algorithm | runs | E[KL(P̄ ‖ Q̄)] | E[KL(P̄ ‖ π)] | hidden part left |",
            "|---|---:|---:|---:|---:|",
            *(
                f"| {m.algorithm.label} | {m.runs} | {m.induced_kl:.4f} | {m.pointwise_kl:.4f} | "
                f"{m.hidden_left:.3f} |"
                for m in table.measures
            ),
            "",
        ]
    return lines


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
