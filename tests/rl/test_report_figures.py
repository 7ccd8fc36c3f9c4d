"""The PNG figures of ``rlimm report`` (:mod:`rlimm.rl.report_figures`): which files, their colours
and line styles."""

import pytest
from report_runs import hand_made_inputs

from rlimm.rl import aggregate as agg
from rlimm.rl.report_figures import colors, consistency_points, draw_figures, schedule_style
from rlimm.rl.report_stats import report_stats
from rlimm.rl.summary import METHOD_COLORS


def test_each_schedule_has_its_own_line_style():
    styles = [schedule_style(s) for s in ("constant", "linear_decay", "trust", "cosine", None)]
    assert styles == ["-", "--", ":", "-.", "-"]


def test_a_method_keeps_its_colour_unless_it_has_variants():
    none, a, b = agg.Algorithm(0, "none"), agg.Algorithm(2, "imm", 0.2), agg.Algorithm(2, "imm", 0.5)
    assert colors([none, a])[a] == METHOD_COLORS["imm"]
    palette = colors([none, a, b])
    assert palette[none] == METHOD_COLORS["none"] and palette[a] != palette[b]


def test_the_curves_are_drawn_only_with_curves(tmp_path):
    without, with_curves = tmp_path / "without", tmp_path / "with"
    without.mkdir()
    with_curves.mkdir()
    assert draw_figures(without, report_stats(hand_made_inputs(), reps=20)) == [
        "aggregates.png",
        "profiles.png",
        "consistency.png",
    ]
    names = draw_figures(with_curves, report_stats(hand_made_inputs(curves=True), reps=20))
    assert names == ["aggregates.png", "profiles.png", "curves.png", "curves_by_task.png", "consistency.png"]
    assert sorted(p.name for p in with_curves.iterdir()) == sorted(names)
    assert all((with_curves / n).stat().st_size > 5_000 for n in names)


def test_the_consistency_points_are_the_paired_differences_normalised():
    stats = report_stats(hand_made_inputs(curves=True), reps=20)
    points = {(p.task, p.versus, p.measure): p for p in consistency_points(stats)}
    assert {(t, v) for t, v, _ in points} == {(t, v) for t in "AB" for v in ("none", "naive")}
    # Task A: imm − none by seed 3, 1, 3 (reference 10, random 0); teacher 8, 9, 10.
    a = points[("A", "none", "final score")]
    assert a.mean == pytest.approx(7 / 30) and a.teacher == pytest.approx(0.9)
    assert a.low < a.mean < a.high and a.hidden_left != a.hidden_left  # no measures: nan
    # A curve's mean is half its final score.
    assert points[("A", "none", "curve mean")].mean == pytest.approx(7 / 60)
    # Task B: imm − naive by seed 4, 6, −6 (reference 20).
    assert points[("B", "naive", "final score")].mean == pytest.approx(4 / 60)
