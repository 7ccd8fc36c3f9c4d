"""The per-task numbers of ``rlimm report`` (:mod:`rlimm.rl.per_task`): final scores in the task's units
and paired differences, checked against a hand computation."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from rlimm.rl import aggregate as agg
from rlimm.rl import per_task


def _rows() -> tuple[pd.DataFrame, list]:
    scores = {"none": [10.0, 20.0, 30.0], "naive": [12.0, 19.0, 40.0], "imm": [15.0, 26.0, 35.0]}
    rows = pd.DataFrame(
        [
            {"task": "T", "method": m, "lambda_ratio": 0.5, "lambda_schedule": "constant", "algo": "ppo",
             "teacher": "" if m == "none" else "t", "folder": "f", "seed": seed, "score": s}
            for m, values in scores.items()
            for seed, s in enumerate(values)
        ]
    )  # fmt: skip
    rows["algorithm"] = agg.label_algorithms(rows)
    return rows, sorted(rows["algorithm"].unique())


def test_paired_differences_are_per_seed_differences():
    rows, algorithms = _rows()
    imm, naive = (next(a for a in algorithms if a.method == m) for m in ("imm", "naive"))
    d = per_task.paired(rows, imm, naive)
    diffs = np.array([15 - 12, 26 - 19, 35 - 40], dtype=float)
    # Student's t, 2 degrees of freedom: t(0.975, 2) = 4.3027 (tables), as compare's summary.
    half = 4.302653 * diffs.std(ddof=1) / np.sqrt(3)
    assert d.n == 3
    np.testing.assert_allclose(
        [d.mean, d.low, d.high], [diffs.mean(), diffs.mean() - half, diffs.mean() + half], rtol=1e-6
    )


def test_task_tables_list_each_algorithm_the_teacher_and_the_pairs():
    rows, algorithms = _rows()
    teacher = pd.DataFrame({"task": ["T"] * 3, "teacher": ["t"] * 3, "score": [5.0, 6.0, 7.0]})
    task = SimpleNamespace(label="T", random=1.5, random_scores=(1.0, 2.0))
    (table,) = per_task.task_tables(rows, teacher, [task], algorithms, reps=50, seed=0)
    assert [(s.algorithm.label, s.runs, s.mean) for s in table.scores] == [
        ("none", 3, 20.0), ("naive", 3, 71 / 3), ("imm", 3, 76 / 3),
    ]  # fmt: skip
    assert all(s.curve_mean is None for s in table.scores) and not table.has_curves
    assert [(t.teacher, t.runs, t.mean) for t in table.teachers] == [("t", 3, 6.0)]
    assert (table.random_runs, table.random) == (2, 1.5)
    pairs = {(d.x.label, d.y.label): d for d in table.differences}
    assert list(pairs) == [("imm", "naive"), ("imm", "none"), ("naive", "none")]
    assert pairs["imm", "naive"].final.mean == pytest.approx((3 + 7 - 5) / 3)  # 15−12, 26−19, 35−40


def test_a_pair_with_fewer_than_two_common_seeds_is_left_out():
    rows, algorithms = _rows()
    rows = rows[(rows["method"] != "imm") | (rows["seed"] == 0)]
    task = SimpleNamespace(label="T", random=0.0, random_scores=(0.0,))
    (table,) = per_task.task_tables(rows, pd.DataFrame(), [task], algorithms, reps=20, seed=0)
    assert [(d.x.method, d.y.method) for d in table.differences] == [("naive", "none")]
    assert table.teachers == []


def test_curve_means_average_each_run_over_the_steps_every_run_has():
    rows, algorithms = _rows()
    none, imm = (next(a for a in algorithms if a.method == m) for m in ("none", "imm"))
    curves = pd.DataFrame(
        [
            {"task": "T", "algorithm": a, "seed": seed, "folder": "f", "step": step, "score": score}
            for a, points in ((none, {0: [1, 2, 3], 1: [2, 2, 2]}), (imm, {0: [3, 4, 5], 1: [4, 4, 4, 9]}))
            for seed, scores in points.items()
            for step, score in zip((100, 200, 300, 400), scores, strict=False)
        ]
    )  # imm seed 1 has a step (400) the others lack: left out of its mean
    means = per_task.curve_means(curves, "T")
    by = {(m.algorithm.method, m.seed): m.score for m in means.itertuples()}
    assert by == {("none", 0): 2.0, ("none", 1): 2.0, ("imm", 0): 4.0, ("imm", 1): 4.0}
    d = per_task.paired(means, imm, none)
    assert (d.n, d.mean, d.low, d.high) == (2, 2.0, 2.0, 2.0)


def test_a_seed_run_in_two_folders_pairs_once():
    """``none`` in each of two folders of one task (they differ only in λ ratio): one pair per seed."""
    rows, algorithms = _rows()
    none, imm = (next(a for a in algorithms if a.method == m) for m in ("none", "imm"))
    again = rows[rows["algorithm"] == none].assign(folder="g", score=lambda r: r["score"] + 2.0)
    d = per_task.paired(pd.concat([rows, again]), imm, none)
    diffs = np.array([15 - 11, 26 - 21, 35 - 31], dtype=float)  # none's per-seed mean: its score + 1
    half = 4.302653 * diffs.std(ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert d.n == 3
    np.testing.assert_allclose(
        [d.mean, d.low, d.high], [diffs.mean(), diffs.mean() - half, diffs.mean() + half], rtol=1e-6
    )
