"""What ``rlimm report`` reads, normalised: the ``rlimm compare`` folders grouped into tasks, each task's
reference score (``--reference``, else the folders' ``reference_score``, else gymnasium's
``reward_threshold``) and a uniform random policy's score (run on the task's env with the learners'
evaluation protocol, or taken from the cache a previous report left), and the long tables of final
scores, teacher scores and learning curves with their scores normalised per task (random = 0,
reference = 1). The statistics of these tables are :mod:`rlimm.rl.report_stats`'s."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rlimm.errors import RlimmError
from rlimm.rl import aggregate as agg
from rlimm.rl import result_folders


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

    def normalise(self, scores: Any) -> Any:
        """``scores`` on the task's scale: its random policy's score 0, its reference score 1."""
        return result_folders.normalise(scores, self.random, self.reference)


@dataclass
class ReportInputs:
    """Everything a report is computed from."""

    #: The compare folders, in the order given.
    folders: list[result_folders.Folder]
    tasks: list[Task]
    #: One row per final run (each folder's largest budget): results.csv's columns, ``task``,
    #: ``folder``, ``lambda_schedule``, ``normalised`` and ``algorithm`` (an :class:`agg.Algorithm`).
    final: pd.DataFrame
    #: One row per teacher score: ``task``, ``teacher``, ``score``, ``normalised`` (empty without any
    #: teacher.json).
    teacher: pd.DataFrame
    #: One row per (run, evaluation step) of the final runs, with ``task``, ``folder``, ``algorithm`` and
    #: ``normalised``; ``None`` unless every folder has a curves.csv.
    curves: pd.DataFrame | None
    #: The folders without a curves.csv.
    no_curves: list[str]
    #: The random policy's scores per task, as random.json records them (and the next report reuses).
    random_records: list[dict]


def load_inputs(
    paths: Sequence[Path],
    references: dict[str, float],
    require_curves: bool = False,
    random_cache: Sequence[dict] = (),
) -> ReportInputs:
    """Read and check every folder of ``paths``, group them into tasks with their reference and random
    policy's scores (those in ``random_cache`` are not run again) and build the normalised tables;
    raises :class:`RlimmError` on input a report cannot use."""
    loaded = [result_folders.load_folder(p) for p in paths]
    no_curves = [str(f.path) for f in loaded if f.curves is None]
    if require_curves and no_curves:
        raise RlimmError(f"--curves: no curves.csv in {', '.join(no_curves)}")
    tasks = group_tasks(loaded, references)
    random_records = score_random(tasks, random_cache)
    final, teacher = normalised_finals(tasks)
    curves = None if no_curves else normalised_curves(tasks, final)
    return ReportInputs(loaded, tasks, final, teacher, curves, no_curves, random_records)


def group_tasks(folders: Sequence[result_folders.Folder], references: dict[str, float]) -> list[Task]:
    """The tasks of ``folders`` (:attr:`result_folders.Folder.task`) in the order of their first folder, each
    with its reference score: ``references[env]``, else the one ``reference_score`` its folders name,
    else gymnasium's ``reward_threshold``."""
    groups: dict[str, list] = {}
    for f in folders:
        groups.setdefault(f.task, []).append(f)
    ids = [fs[0].record.env.id for fs in groups.values()]
    tasks = []
    for fs in groups.values():
        env = fs[0].record.env.id
        # Two tasks of one env (other restriction, say) are told apart by their first folder's name.
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
        elif (threshold := result_folders.registered_threshold(env)) is not None:
            task.reference, task.reference_from = float(threshold), "reward_threshold in gymnasium's registry"
        else:
            where = ", ".join(str(f.path) for f in fs)
            raise RlimmError(
                f"task {label} ({where}) has no reference score: gymnasium registers no reward_threshold "
                f"for it; pass --reference {env}=SCORE or set reference_score in its compare config"
            )
        tasks.append(task)
    return tasks


def score_random(
    tasks: Sequence[Task],
    cache: Sequence[dict] = (),
    scorer: Callable[..., list[float]] = result_folders.random_scores,
) -> list[dict]:
    """Set each task's random policy's scores (one per seed of the task) and their mean; returns the
    records random.json keeps. Scores of ``cache`` (random.json's records) for the same env and
    evaluation protocol are reused: only the seeds it lacks are run, by ``scorer``."""
    records = []
    for task in tasks:
        record = task.folders[0].record
        env, evaluation = record.env.model_dump(), record.evaluation.model_dump()
        known: dict[int, float] = {}
        for entry in cache:
            if entry.get("env") == env and entry.get("evaluation") == evaluation:
                known.update(zip(map(int, entry["seeds"]), map(float, entry["scores"]), strict=True))
        todo = [s for s in task.seeds if s not in known]
        known.update(zip(todo, scorer(record.env, record.evaluation, todo), strict=True))
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


def normalised_finals(tasks: Sequence[Task]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The final runs of every task's folders (see :attr:`ReportInputs.final`, labelled by
    :func:`agg.label_algorithms`) and the teachers' scores (:attr:`ReportInputs.teacher`)."""
    finals, teachers = [], []
    seen: set[tuple[str, str]] = set()
    for task in tasks:
        for f in task.folders:
            rows = f.final.assign(
                task=task.label, folder=str(f.path), lambda_schedule=f.record.lambda_schedule
            )
            finals.append(rows.assign(normalised=task.normalise(rows["score"])))
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
                            "normalised": task.normalise(pd.Series(scores)),
                        }
                    )
                )
    final = pd.concat(finals, ignore_index=True)
    final["algorithm"] = agg.label_algorithms(final)
    teacher = pd.concat(teachers, ignore_index=True) if teachers else pd.DataFrame()
    return final, teacher


def normalised_curves(tasks: Sequence[Task], final: pd.DataFrame) -> pd.DataFrame | None:
    """Every folder's curves.csv rows (every folder must have one) labelled with the algorithm of
    their final runs in ``final``; rows of no final run (another budget's) are left out."""
    keys = final.drop_duplicates(["folder", "method", "lambda_ratio"]).set_index(
        ["folder", "method", "lambda_ratio"]
    )["algorithm"]
    curves = []
    for task in tasks:
        for f in task.folders:
            c = f.curves.assign(task=task.label, folder=str(f.path))
            c["algorithm"] = [
                keys.get((str(f.path), m, r)) for m, r in zip(c["method"], c["lambda_ratio"], strict=True)
            ]
            c = c[c["algorithm"].notna()]
            curves.append(c.assign(normalised=task.normalise(c["score"].astype(float))))
    return pd.concat(curves, ignore_index=True) if curves else None
