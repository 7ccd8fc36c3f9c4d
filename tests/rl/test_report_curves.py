"""The learning curves of ``rlimm report`` as numbers (:mod:`rlimm.rl.report_curves`): a shared step
axis or fractions of training, the steps every run has, per-task curves and the truncation note."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from report_runs import algorithm, hand_made_inputs

from rlimm.rl.report_curves import pooled_curves, task_curves, truncation_note


def test_truncation_note_only_when_run_counts_differ():
    assert truncation_note("imm", ["A", "B"], [[1, 2], [3, 4]]) == ""
    assert truncation_note("imm", ["A", "B"], [[1, 2, 3], [4]]) == (
        "imm: the tasks have different numbers of runs (A: 3, B: 1); its statistics use the 1 runs of "
        "the lowest seeds of each task."
    )


def test_tasks_with_other_steps_share_an_axis_of_fractions_of_training():
    inputs = hand_made_inputs(curves=True)
    curves = inputs.curves.copy()
    b = curves["task"] == "B"
    curves.loc[b, "step"] = curves.loc[b, "step"] * 10  # B evaluated at 0, 1000, 2000
    pooled = pooled_curves(curves, [algorithm(inputs, "imm")], reps=20, seed=0)
    (imm,) = pooled.curves
    assert not pooled.shared and len(imm.x) == 21 and imm.x[-1] == 1.0
    # Linear in the fraction on both tasks: the IQM of the normalised finals (0.4) × fraction.
    np.testing.assert_allclose(imm.iqm.value, 0.4 * imm.x)


def test_a_run_still_being_written_keeps_the_steps_every_run_has():
    inputs = hand_made_inputs(curves=True)
    imm = algorithm(inputs, "imm")
    curves = inputs.curves
    last = (
        (curves["algorithm"] == imm)
        & (curves["task"] == "A")
        & (curves["seed"] == 0)
        & (curves["step"] == 200)
    )
    pooled = pooled_curves(curves[~last], [imm], reps=20, seed=0)
    np.testing.assert_allclose(pooled.curves[0].x, [0, 100])
    task = SimpleNamespace(label="A", random=0.5)
    (a,) = task_curves(curves[~last], [task], [imm], pd.DataFrame(), reps=20, seed=0)
    assert a.teachers == [] and a.random == 0.5
    np.testing.assert_allclose(a.curves[0].x, [0, 100])
    assert a.curves[0].iqm.value[1] == pytest.approx(np.mean([4.0, 3.0, 6.0]) / 2)


def test_an_algorithm_without_curves_on_a_task_is_not_drawn_there():
    inputs = hand_made_inputs(curves=True)
    imm, none = algorithm(inputs, "imm"), algorithm(inputs, "none")
    curves = inputs.curves[~((inputs.curves["algorithm"] == imm) & (inputs.curves["task"] == "B"))]
    pooled = pooled_curves(curves, [none, imm], reps=20, seed=0)
    assert [c.algorithm for c in pooled.curves] == [none, imm]
    by_task = task_curves(curves, inputs.tasks, [none, imm], inputs.teacher, reps=20, seed=0)
    assert [[c.algorithm.method for c in t.curves] for t in by_task] == [["none", "imm"], ["none"]]
    assert by_task[0].teachers == [("t", 9.0)]
