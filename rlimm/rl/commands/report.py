"""``rlimm report``: robust aggregate statistics of one or several ``rlimm compare`` folders (a suite,
one folder per task), after Agarwal et al. 2021: scores normalised per task (random policy = 0,
reference = 1), IQM, mean and optimality gap with stratified bootstrap intervals, probabilities of
improvement, performance profiles and IQM learning curves. The statistics are ``rliable``'s, called
from :mod:`rlimm.rl.aggregate`; this module checks the input, draws the plots and writes the report
folder whole or not at all."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlimm.common.command import non_negative_int, positive_int
from rlimm.errors import RlimmError

#: Bootstrap resamples by default (``rlimm.rl.aggregate.REPS``; not imported here so that ``rlimm
#: --help`` stays light).
REPS = 2000
#: Where the report caches the random policy's scores (reused when the same OUT is written again).
RANDOM_SCORES = "random.json"


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


@dataclass
class Task:
    """The folders of one env and evaluation protocol, with the scores that normalise them."""

    label: str
    folders: list
    seeds: list[int]
    reference: float = 0.0
    reference_from: str = ""
    random: float = 0.0
    random_scores: tuple[float, ...] = ()


def _check_out(out: Path, folders: list[Path]) -> None:
    resolved = out.resolve()
    for f in folders:
        f = f.resolve()
        if resolved == f or f.is_relative_to(resolved) or resolved.is_relative_to(f):
            raise RlimmError(
                f"--out {out} overlaps the input folder {f}: a report never writes into its input"
            )
    if out.exists() and not out.is_dir():
        raise RlimmError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "report.md").exists():
        raise RlimmError(f"--out {out} is a folder that holds something else than a report; choose another")


def _tasks(folders: list, references: dict[str, float]) -> list[Task]:
    from rlimm.rl.aggregate import registered_threshold

    groups: dict[str, list] = {}
    for f in folders:
        groups.setdefault(f.task, []).append(f)
    ids = [fs[0].record.env.id for fs in groups.values()]
    tasks = []
    for fs in groups.values():
        env = fs[0].record.env.id
        label = env if ids.count(env) == 1 else f"{env} ({fs[0].path.name})"
        seeds = sorted({s for f in fs for s in f.seeds})
        task = Task(label, fs, seeds)
        named = {f.record.reference_score for f in fs} - {None}
        if env in references:
            task.reference, task.reference_from = references[env], "--reference"
        elif len(named) > 1:
            raise RlimmError(
                f"the folders of task {label} name different reference scores ({sorted(named)}); "
                f"pass --reference {env}=SCORE"
            )
        elif named:
            task.reference, task.reference_from = named.pop(), "reference_score of the config"
        elif (threshold := registered_threshold(env)) is not None:
            task.reference, task.reference_from = float(threshold), "reward_threshold in gymnasium's registry"
        else:
            where = ", ".join(str(f.path) for f in fs)
            raise RlimmError(
                f"task {label} ({where}) has no reference score: gymnasium registers no reward_threshold "
                f"for it; pass --reference {env}=SCORE or set reference_score in its compare config"
            )
        tasks.append(task)
    return tasks


def _load_random(out: Path) -> list[dict]:
    path = out / RANDOM_SCORES
    if not path.exists():
        return []
    try:
        return list(json.loads(path.read_text())["tasks"])
    except (ValueError, KeyError, TypeError):
        return []  # a cache only: recomputed when unreadable


def _score_random(tasks: list[Task], cache: list[dict]) -> list[dict]:
    from rlimm.rl.aggregate import random_scores

    records = []
    for task in tasks:
        record = task.folders[0].record
        env, evaluation = record.env.model_dump(), record.evaluation.model_dump()
        known: dict[int, float] = {}
        for entry in cache:
            if entry.get("env") == env and entry.get("evaluation") == evaluation:
                known.update(zip(map(int, entry["seeds"]), map(float, entry["scores"]), strict=True))
        todo = [s for s in task.seeds if s not in known]
        known.update(zip(todo, random_scores(record.env, record.evaluation, todo), strict=True))
        task.random_scores = tuple(known[s] for s in task.seeds)
        task.random = float(sum(task.random_scores) / len(task.random_scores))
        if task.random == task.reference:
            raise RlimmError(
                f"task {task.label}: the reference score {task.reference:g} equals a random policy's "
                f"score; pass --reference {record.env.id}=SCORE with another score"
            )
        records.append(
            {
                "task": task.label,
                "env": env,
                "evaluation": evaluation,
                "seeds": task.seeds,
                "scores": list(task.random_scores),
                "mean": task.random,
            }
        )
    return records


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
    import pandas as pd

    from rlimm.rl import aggregate as agg

    _check_out(out, folders)
    loaded = [agg.load_folder(f) for f in folders]
    no_curves = [str(f.path) for f in loaded if f.curves is None]
    if require_curves and no_curves:
        raise RlimmError(f"--curves: no curves.csv in {', '.join(no_curves)}")
    tasks = _tasks(loaded, references or {})
    random_records = _score_random(tasks, _load_random(out))

    # Long tables of final scores, teacher scores and curves, normalised per task.
    finals, teachers, curves = [], [], []
    seen: set[tuple[str, str]] = set()
    for task in tasks:
        for f in task.folders:
            norm = _normaliser(task)
            rows = f.final.assign(
                task=task.label, folder=str(f.path), lambda_schedule=f.record.lambda_schedule
            )
            finals.append(rows.assign(normalised=norm(rows["score"])))
            # A task's folders (one per λ schedule) share its teacher: its scores once.
            if f.teacher is not None and (task.label, f.teacher["teacher"]) not in seen:
                seen.add((task.label, f.teacher["teacher"]))
                scores = [float(s) for s in f.teacher["scores"]]
                teachers.append(
                    pd.DataFrame(
                        {
                            "task": task.label,
                            "teacher": f.teacher["teacher"],
                            "score": scores,
                            "normalised": norm(pd.Series(scores)),
                        }
                    )
                )
    final = pd.concat(finals, ignore_index=True)
    final["algorithm"] = agg.label_algorithms(final)
    teacher = pd.concat(teachers, ignore_index=True) if teachers else pd.DataFrame()
    if not no_curves:
        keys = final.drop_duplicates(["folder", "method", "lambda_ratio"]).set_index(
            ["folder", "method", "lambda_ratio"]
        )["algorithm"]
        for task in tasks:
            for f in task.folders:
                c = f.curves.assign(task=task.label, folder=str(f.path))
                c["algorithm"] = [
                    keys.get((str(f.path), m, r)) for m, r in zip(c["method"], c["lambda_ratio"], strict=True)
                ]
                c = c[c["algorithm"].notna()]
                curves.append(c.assign(normalised=_normaliser(task)(c["score"].astype(float))))
    curve_rows = pd.concat(curves, ignore_index=True) if curves else None

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write(tmp, tasks, loaded, final, teacher, curve_rows, no_curves, random_records, reps, seed)
        _replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _normaliser(task: Task) -> Callable[[Any], Any]:
    from rlimm.rl.aggregate import normalise

    return lambda scores: normalise(scores, task.random, task.reference)


def _replace_folder(tmp: Path, out: Path) -> None:
    # os.replace cannot put a folder over a non-empty one: move the old one aside first.
    old = out.with_name(f".{out.name}.{os.getpid()}.old")
    if out.exists():
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old.exists():
            os.replace(old, out)  # the previous report stays as it was
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write(tmp, tasks, loaded, final, teacher, curve_rows, no_curves, random_records, reps, seed) -> None:  # noqa: ANN001
    import numpy as np

    from rlimm.rl import aggregate as agg
    from rlimm.rl import per_task

    algorithms = sorted(final["algorithm"].unique())
    task_order = [t.label for t in tasks]
    per_alg = {a: final[final["algorithm"] == a] for a in algorithms}

    truncated: list[str] = []

    def runs(rows, label: str, order=("seed", "folder")) -> list:  # noqa: ANN001
        arrays = agg.by_task(rows, task_order, order=order)
        note = _truncation(label, [t for t in task_order if (rows["task"] == t).any()], arrays)
        if note and note not in truncated:
            truncated.append(note)
        return arrays

    alg_runs = {a: runs(per_alg[a], a.label) for a in algorithms}
    stats = {a: {m: agg.interval(m, alg_runs[a], reps, seed) for m in agg.METRICS} for a in algorithms}
    teacher_labels = sorted(teacher["teacher"].unique()) if len(teacher) else []
    teacher_stats = {}
    for label in teacher_labels:
        # teacher.json lists the scores in the order of the seeds.
        tr = runs(teacher[teacher["teacher"] == label], f"teacher ({label})", order=())
        teacher_stats[label] = {m: agg.interval(m, tr, reps, seed) for m in agg.METRICS}

    pois = []
    for x, y in agg.comparisons(algorithms):
        common = [
            t for t in task_order if (per_alg[x]["task"] == t).any() and (per_alg[y]["task"] == t).any()
        ]
        if common:
            xs = runs(per_alg[x][per_alg[x]["task"].isin(common)], x.label)
            ys = runs(per_alg[y][per_alg[y]["task"].isin(common)], y.label)
            pois.append((x, y, len(common), agg.improvement_interval(xs, ys, reps, seed)))

    all_scores = final["normalised"].to_numpy()
    taus = np.linspace(min(-0.1, all_scores.min()), max(1.1, all_scores.max()), 101)
    profiles = {a: agg.profile(alg_runs[a], taus, reps, seed) for a in algorithms}
    teacher_iqm = {label: s["IQM"].value for label, s in teacher_stats.items()}

    pngs = ["aggregates.png", "profiles.png"]
    _plot_aggregates(tmp / "aggregates.png", algorithms, stats, teacher_stats)
    _plot_profiles(tmp / "profiles.png", algorithms, profiles, taus, teacher_iqm)
    curve_note = ""
    if curve_rows is not None:
        for note in _plot_curves(tmp / "curves.png", curve_rows, algorithms, teacher_iqm, reps, seed):
            if note not in truncated:
                truncated.append(note)
        pngs.append("curves.png")
        per_task.plot_curves(tmp / "curves_by_task.png", curve_rows, tasks, algorithms, teacher, reps, seed)
        pngs.append("curves_by_task.png")
    else:
        curve_note = f"No learning curves: no curves.csv in {', '.join(no_curves)}."
    task_lines = per_task.final_tables(final, teacher, tasks, algorithms, reps, seed, curve_rows)

    final.assign(algorithm=final["algorithm"].map(lambda a: a.label))[
        ["task", "folder", "algorithm", "method", "budget", "lambda_ratio", "seed", "score", "normalised"]
    ].to_csv(tmp / "scores.csv", index=False)
    (tmp / RANDOM_SCORES).write_text(
        json.dumps(
            {
                "policy": "uniform random actions from the env's action space, seeded like the "
                "learners' evaluation",
                "tasks": random_records,
            },
            indent=1,
        )
        + "\n"
    )
    md = _markdown(
        tasks, loaded, final, algorithms, stats, teacher_stats, pois, pngs, curve_note, truncated, reps, seed
    )
    md = md.replace("\n## Plots\n", "\n" + "\n".join(task_lines) + "\n## Plots\n", 1)
    (tmp / "report.md").write_text(md)


def _truncation(label: str, task_labels: list[str], tasks: list) -> str:
    """A line for report.md when ``tasks`` (per task, the runs of ``label``) differ in their number of
    runs, which rliable's (runs × tasks) matrices cannot hold; empty otherwise."""
    counts = [len(t) for t in tasks]
    if len(set(counts)) <= 1:
        return ""
    where = ", ".join(f"{t}: {n}" for t, n in zip(task_labels, counts, strict=True))
    return (
        f"{label}: the tasks have different numbers of runs ({where}); its statistics use the "
        f"{min(counts)} runs of the lowest seeds of each task."
    )


def _markdown(
    tasks, loaded, final, algorithms, stats, teacher_stats, pois, pngs, curve_note, truncated, reps, seed
) -> str:  # noqa: ANN001
    from rlimm.rl.aggregate import METRICS

    lines = [
        "# rlimm report",
        "",
        f"Scores normalised per task: 0 = a uniform random policy, 1 = the task's reference score, both "
        "measured with the learners' evaluation protocol (the random policy on the same evaluation "
        f"seeds). Final scores: each folder's largest budget. Statistics and intervals: rliable's, 95% "
        f"stratified bootstrap (runs resampled within each task), {reps} resamples, seed {seed}.",
        "",
        "## Tasks",
        "",
        "| task | folders | budget | runs | random policy (= 0) | reference (= 1) | reference from |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for t in tasks:
        budgets = ", ".join(sorted({str(f.budget) for f in t.folders}))
        n = int((final["task"] == t.label).sum())
        folders = ", ".join(f"`{f.path}`" for f in t.folders)
        cells = [t.label, folders, budgets, str(n), f"{t.random:.3f}", f"{t.reference:g}", t.reference_from]
        lines.append("| " + " | ".join(cells) + " |")
    missing = [(f, m) for f in loaded for m in f.missing]
    if missing:
        lines += [
            "",
            "**Left out** (folders still being written: these runs are not in results.csv yet):",
            "",
        ]
        lines += [f"- `{f.path}`: {m}" for f, m in missing]
    lines += [
        "",
        "## Final scores (normalised)",
        "",
        "| algorithm | tasks | runs | IQM | mean | optimality gap |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for a in algorithms:
        rows = final[final["algorithm"] == a]
        cells = [stats[a][m].cell() for m in METRICS]
        lines.append(f"| {a.label} | {rows['task'].nunique()} | {len(rows)} | " + " | ".join(cells) + " |")
    for label, s in teacher_stats.items():
        lines.append(f"| *teacher ({label})* | | | " + " | ".join(s[m].cell() for m in METRICS) + " |")
    lines.append("| *random policy* | | | 0 | 0 | 1 |")
    if truncated:
        lines += [
            "",
            "**Runs left out of the statistics** (rliable takes the same number of runs on every task):",
            "",
        ]
        lines += [f"- {note}" for note in truncated]
    if pois:
        lines += [
            "",
            "## Probability of improvement",
            "",
            "P(X > Y): the chance that a run of X scores above a run of Y on the same task (ties count "
            "half), averaged over tasks; above 0.5 favours X.",
            "",
            "| X | Y | tasks | P(X > Y) |",
            "|---|---|---:|---:|",
        ]
        lines += [f"| {x.label} | {y.label} | {n} | {iv.cell()} |" for x, y, n, iv in pois]
    lines += ["", "## Plots", ""]
    captions = {
        "aggregates.png": "IQM, mean and optimality gap with 95% intervals; dashed: the teacher, dotted: a "
        "random policy.",
        "profiles.png": "Performance profiles: fraction of runs scoring above τ, with 95% bands; vertical "
        "lines: a random policy (0) and the teacher's IQM.",
        "curves.png": "IQM of the normalised score during training, with 95% bands (every folder's "
        "curves.csv); horizontal lines: the teacher's IQM and a random policy (0).",
        "curves_by_task.png": "Per task, the IQM of the score (the task's units) during training with 95% "
        "bands; solid: constant λ (and `none`), dashed: linearly decaying λ, dotted: `trust`; horizontal "
        "lines: the teacher's mean score and a random policy's.",
    }
    for png in pngs:
        lines += [f"![{png[:-4]}]({png})", "", captions[png], ""]
    if curve_note:
        lines += [curve_note, ""]
    lines += [
        "Per-run scores: [scores.csv](scores.csv); the random policy's scores: [random.json](random.json).",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- plots


def _colors(algorithms: list) -> dict:
    import matplotlib.pyplot as plt

    from rlimm.rl.report import METHOD_COLORS

    palette = plt.get_cmap("tab10").colors
    counts = {}
    for a in algorithms:
        counts[a.method] = counts.get(a.method, 0) + 1
    out = {}
    for i, a in enumerate(algorithms):
        out[a] = METHOD_COLORS.get(a.method, palette[i % 10]) if counts[a.method] == 1 else palette[i % 10]
    return out


def _save(fig, path: Path) -> None:  # noqa: ANN001
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _reference_lines(ax, teacher: dict[str, float], random: float, vertical: bool) -> None:  # noqa: ANN001
    line = ax.axvline if vertical else ax.axhline
    for label, value in teacher.items():
        line(value, color="black", linestyle="--", linewidth=1, label=f"teacher ({label})")
    line(random, color="tab:red", linestyle=":", linewidth=1, label="random policy")


def _plot_aggregates(path: Path, algorithms: list, stats: dict, teacher_stats: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlimm.rl.aggregate import METRICS

    colors = _colors(algorithms)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 0.5 * len(algorithms) + 1.8))
    for ax, metric in zip(axes, METRICS, strict=True):
        for i, a in enumerate(algorithms):
            iv = stats[a][metric]
            ax.barh(i, iv.high - iv.low, left=iv.low, height=0.6, color=colors[a], alpha=0.6)
            ax.plot([iv.value, iv.value], [i - 0.3, i + 0.3], color="black", linewidth=2)
        teacher = {label: s[metric].value for label, s in teacher_stats.items()}
        _reference_lines(ax, teacher, 1.0 if metric == "optimality gap" else 0.0, vertical=True)
        ax.set_yticks(range(len(algorithms)), [a.label for a in algorithms] if ax is axes[0] else [])
        ax.set_title(metric + (" (lower is better)" if metric == "optimality gap" else ""))
        ax.set_xlabel("normalised score")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].legend(loc="best", fontsize=8)
    _save(fig, path)


def _plot_profiles(path: Path, algorithms: list, profiles: dict, taus, teacher_iqm: dict) -> None:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = _colors(algorithms)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for a in algorithms:
        p = profiles[a]
        ax.plot(taus, p.value, color=colors[a], label=a.label)
        ax.fill_between(taus, p.low, p.high, color=colors[a], alpha=0.15)
    _reference_lines(ax, teacher_iqm, 0.0, vertical=True)
    ax.set_xlabel("normalised score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    _save(fig, path)


def _plot_curves(path: Path, rows, algorithms: list, teacher_iqm: dict, reps: int, seed: int) -> list[str]:  # noqa: ANN001
    """Draw the IQM curves; returns the report's lines on runs left out (see :func:`_truncation`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from rlimm.rl.aggregate import iqm_curve

    notes = []
    colors = _colors(algorithms)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    grids = {tuple(sorted(g["step"].unique())) for _, g in rows.groupby("task")}
    shared = len(grids) == 1  # else each task's steps as a fraction of its last one
    frac = np.linspace(0, 1, 21)
    for a in algorithms:
        sel = rows[rows["algorithm"] == a]
        if sel.empty:
            continue
        groups = list(sel.groupby("task", sort=False))
        # Runs by seed (then folder): the IQM keeps the runs of the lowest seeds where tasks differ.
        tables = [
            g.pivot_table(index=["seed", "folder"], columns="step", values="normalised").dropna(axis=1)
            for _, g in groups
        ]
        note = _truncation(f"{a.label} (curves)", [t for t, _ in groups], tables)
        if note:
            notes.append(note)
        if shared:
            # Runs still being written have fewer steps: keep the steps every run has.
            common = sorted(set.intersection(*(set(t.columns) for t in tables)))
            tasks = [t[common].to_numpy() for t in tables]
            x = np.asarray(common, dtype=float)
        else:
            tasks = []
            for t in tables:
                steps = t.columns.to_numpy(dtype=float)
                tasks.append(np.array([np.interp(frac * steps.max(), steps, r) for r in t.to_numpy()]))
            x = frac
        curve = iqm_curve(tasks, reps, seed)
        ax.plot(x, curve.value, color=colors[a], label=a.label)
        ax.fill_between(x, curve.low, curve.high, color=colors[a], alpha=0.15)
    _reference_lines(ax, teacher_iqm, 0.0, vertical=False)
    ax.set_xlabel("environment step" if shared else "fraction of training")
    ax.set_ylabel("IQM of normalised score")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    _save(fig, path)
    return notes
