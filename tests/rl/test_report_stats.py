"""``rlimm report``'s numbers (:mod:`rlimm.rl.report_stats`) from the hand-made runs of
``report_runs.py``, checked against hand computations; and computed without matplotlib."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from report_runs import SCORES, hand_made_inputs

from rlimm.rl.report_stats import report_stats

HERE = Path(__file__).resolve().parent
#: Student's t(0.975, n − 1) from tables: 2 and 3 seeds.
T95 = {2: 12.706205, 3: 4.302653}


def _by_pair(table) -> dict[str, tuple]:
    return {f"{d.x.label} − {d.y.label}": d for d in table.differences}


def _expected(diffs: list[float]) -> tuple[float, float, float]:
    d = np.asarray(diffs)
    half = T95[len(d)] * d.std(ddof=1) / np.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


@pytest.fixture(scope="module")
def stats():
    return report_stats(hand_made_inputs(), reps=200, seed=0)


def test_paired_differences_per_task_are_per_seed_differences_with_t_intervals(stats):
    assert [t.task for t in stats.per_task] == ["A", "B"]
    expected = {
        # X − Y per seed 0, 1, 2 (SCORES)
        "A": {"imm − naive": [2, 1, 1], "imm − none": [3, 1, 3], "naive − none": [1, 0, 2]},
        "B": {"imm − naive": [4, 6, -6], "imm − none": [6, 6, -4], "naive − none": [2, 0, 2]},
    }
    for table in stats.per_task:
        pairs = _by_pair(table)
        assert list(pairs) == ["imm − naive", "imm − none", "naive − none"]  # POI_PAIRS' order
        for name, diffs in expected[table.task].items():
            d = pairs[name]
            assert d.final.n == 3 and d.curve is None
            np.testing.assert_allclose([d.final.mean, d.final.low, d.final.high], _expected(diffs), rtol=1e-6)


def test_per_task_rows_hold_each_algorithm_the_teacher_and_the_random_policy(stats):
    a = stats.per_task[0]
    assert [(s.algorithm.label, s.runs) for s in a.scores] == [("none", 3), ("naive", 3), ("imm", 3)]
    assert [s.mean for s in a.scores] == pytest.approx([2.0, 3.0, 13 / 3])
    # Three runs: the IQM (25% cut at each end of 3) keeps them all.
    assert a.scores[2].iqm.value == pytest.approx(13 / 3)
    assert [(t.teacher, t.runs, t.mean) for t in a.teachers] == [("t", 3, 9.0)]
    assert (a.random_runs, a.random, a.has_curves) == (3, 0.0, False)


def test_probability_of_improvement_counts_pairs_of_runs_per_task_then_averages(stats):
    # A: imm [4, 3, 6] against naive [2, 2, 5]: 2 + 2 + 3 of 9 pairs; B: [8, 10, 2] against [4, 4, 8]:
    # 2.5 (a tie counts half) + 3 + 0 of 9.
    expected = {
        ("imm", "naive"): (7 / 9 + 5.5 / 9) / 2,
        ("imm", "none"): (8.5 / 9 + 6.5 / 9) / 2,
        ("naive", "none"): (6 / 9 + 6 / 9) / 2,
    }
    got = {(i.x.label, i.y.label): i for i in stats.improvements}
    assert list(got) == list(expected)
    for pair, p in expected.items():
        iv = got[pair].probability
        assert got[pair].tasks == 2
        assert iv.value == pytest.approx(p) and iv.low <= iv.value <= iv.high


def test_aggregates_of_normalised_scores_and_the_teacher(stats):
    imm = next(a for a in stats.aggregates if a.algorithm.label == "imm")
    assert (imm.tasks, imm.runs) == (2, 6)
    # Normalised (A / 10, B / 20): 0.4, 0.3, 0.6 and 0.4, 0.5, 0.1; the IQM drops one run at each end.
    assert imm.metrics["IQM"].value == pytest.approx(0.4)
    assert imm.metrics["mean"].value == pytest.approx((1.3 / 3 + 1.0 / 3) / 2)
    assert imm.metrics["optimality gap"].value == pytest.approx(1 - (1.3 / 3 + 1.0 / 3) / 2)
    (teacher,) = stats.teachers
    assert teacher.teacher == "t" and stats.teacher_iqm() == {"t": pytest.approx(0.9)}
    assert stats.truncated == [] and stats.curves is None and stats.no_curves == ["/runs/A", "/runs/B"]


def test_tasks_table_and_profiles(stats):
    assert [(t.task, t.runs, t.budgets, t.reference, t.reference_from) for t in stats.tasks] == [
        ("A", 9, [100], 10.0, "--reference"),
        ("B", 9, [100], 20.0, "--reference"),
    ]
    assert stats.taus[0] == pytest.approx(-0.1) and stats.taus[-1] == pytest.approx(1.1)
    imm = np.array([0.4, 0.3, 0.6, 0.4, 0.5, 0.1])
    profile = stats.profiles[next(a for a in stats.algorithms if a.method == "imm")]
    np.testing.assert_allclose(profile.value, [(imm > t).mean() for t in stats.taus])


def test_a_task_with_fewer_runs_truncates_the_statistics_and_says_so():
    stats = report_stats(hand_made_inputs(drop=("B", "imm", 2)), reps=50, seed=0)
    assert stats.truncated == [
        "imm: the tasks have different numbers of runs (A: 3, B: 2); its statistics use the 2 runs of "
        "the lowest seeds of each task."
    ]
    imm = next(a for a in stats.aggregates if a.algorithm.label == "imm")
    assert (imm.tasks, imm.runs) == (2, 5)  # the table counts every run
    # imm's first two seeds: A [4, 3] against naive [2, 2, 5]: 4 of 6 pairs; B [8, 10]: 5.5 of 6.
    p = next(i for i in stats.improvements if (i.x.label, i.y.label) == ("imm", "naive"))
    assert p.probability.value == pytest.approx((4 / 6 + 5.5 / 6) / 2)
    # Paired by seed: B's imm − naive over seeds 0 and 1 only.
    d = _by_pair(stats.per_task[1])["imm − naive"].final
    np.testing.assert_allclose([d.n, d.mean, d.low, d.high], [2, *_expected([4, 6])], rtol=1e-6)


def test_curves_give_curve_means_and_iqm_curves():
    stats = report_stats(hand_made_inputs(curves=True), reps=50, seed=0)
    a = stats.per_task[0]
    assert a.has_curves
    # A curve is the final score × 0, ½, 1: its mean is half the final score.
    assert [s.curve_mean for s in a.scores] == pytest.approx([1.0, 1.5, 13 / 6])
    d = _by_pair(a)["imm − naive"].curve
    np.testing.assert_allclose([d.mean, d.low, d.high], _expected([1, 0.5, 0.5]), rtol=1e-6)
    assert stats.curves.shared and stats.curves.notes == []
    imm = next(c for c in stats.curves.curves if c.algorithm.label == "imm")
    np.testing.assert_allclose(imm.x, [0, 100, 200])
    np.testing.assert_allclose(imm.iqm.value, [0.0, 0.2, 0.4])  # the IQM of the finals, 0.4, × 0, ½, 1
    by_task = {t.task: t for t in stats.task_curves}
    assert by_task["B"].teachers == [("t", 18.0)] and by_task["B"].random == 0.0
    imm_a = next(c for c in by_task["A"].curves if c.algorithm.label == "imm")
    np.testing.assert_allclose(imm_a.iqm.value, np.array([0, 0.5, 1]) * np.mean(SCORES["A"]["imm"]))


def test_the_same_seed_gives_the_same_intervals(stats):
    again = report_stats(hand_made_inputs(), reps=200, seed=0)
    assert [i.probability for i in again.improvements] == [i.probability for i in stats.improvements]
    assert [a.metrics for a in again.aggregates] == [a.metrics for a in stats.aggregates]


def test_the_statistics_and_the_markdown_need_no_matplotlib():
    """Import and compute in a fresh interpreter where importing matplotlib fails (rliable's own
    dependencies try it, and carry on without it)."""
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "from report_runs import hand_made_inputs\n"
        "from rlimm.rl.report_markdown import report_markdown\n"
        "from rlimm.rl.report_stats import report_stats\n"
        "inputs = hand_made_inputs(curves=True)\n"
        "stats = report_stats(inputs, reps=20)\n"
        "md = report_markdown(stats, inputs.tasks, [])\n"
        "print(len(stats.improvements), len(stats.curves.curves), '| imm − naive | 3 |' in md)\n"
        "try:\n"
        "    import rlimm.rl.report_figures\n"
        "except ImportError:\n"
        "    print('blocked')  # the figures do need it: the block holds\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "3", "True", "blocked"]
