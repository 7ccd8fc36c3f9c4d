"""The per-task part of ``rlimm report``: final scores in the task's units and paired differences,
checked against a hand computation."""

from types import SimpleNamespace

import numpy as np
import pandas as pd

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


def test_final_tables_list_each_algorithm_the_teacher_and_the_pairs():
    rows, algorithms = _rows()
    teacher = pd.DataFrame({"task": ["T"] * 3, "teacher": ["t"] * 3, "score": [5.0, 6.0, 7.0]})
    record = SimpleNamespace(induction={"method": "knn", "k": 8})
    task = SimpleNamespace(
        label="T", random=1.5, random_scores=(1.0, 2.0), folders=[SimpleNamespace(record=record)]
    )
    md = "\n".join(per_task.final_tables(rows, teacher, [task], algorithms, reps=50, seed=0))
    assert "| imm | 3 | 25.33 |" in md and "| none | 3 | 20.00 |" in md
    assert "| *teacher (t)* | 3 | 6.00 | |" in md and "| *random policy* | 2 | 1.50 | |" in md
    # imm − naive: differences 3, 7, −5 → mean +1.67
    assert "| imm − naive | 3 | +1.67 [" in md
    assert "| imm − none | 3 |" in md and "| naive − none | 3 |" in md
    assert (
        "IMM's induction: knn, k = 8; own-episode exclusion: none; pool: 1" in md
    )  # a folder from before both keys


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


def test_each_schedule_has_its_own_line_style():
    styles = [per_task.schedule_style(s) for s in ("constant", "linear_decay", "trust", "cosine", None)]
    assert styles == ["-", "--", ":", "-.", "-"]
