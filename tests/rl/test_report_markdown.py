"""report.md (:mod:`rlimm.rl.report_markdown`) from the numbers of the hand-made runs of
``report_runs.py``: each table's rows, the sections in order, the per-task tables with and without
curves, the notes and the figures' captions."""

import pandas as pd
import pytest
from report_runs import hand_made_inputs

from rlimm.rl.report_markdown import CAPTIONS, report_markdown
from rlimm.rl.report_stats import report_stats


@pytest.fixture(scope="module")
def md() -> str:
    inputs = hand_made_inputs()
    return report_markdown(report_stats(inputs, reps=50, seed=3), inputs.tasks, ["aggregates.png"])


def test_sections_in_order_and_the_protocol(md):
    heads = [line for line in md.splitlines() if line.startswith("#")]
    assert heads == [
        "# rlimm report", "## Tasks", "## Final scores (normalised)", "## Probability of improvement",
        "## Per task: final scores and paired differences", "### A", "### B", "## Plots",
    ]  # fmt: skip
    assert "50 resamples, seed 3." in md and md.endswith("[random.json](random.json).\n")


def test_tasks_final_scores_and_improvements(md):
    assert "| A | `/runs/A` | 100 | 9 | 0.000 | 10 | --reference |" in md
    assert "| B | `/runs/B` | 100 | 9 | 0.000 | 20 | --reference |" in md
    assert "| imm | 2 | 6 | 0.40 [" in md  # the IQM of 0.4, 0.3, 0.6 and 0.4, 0.5, 0.1
    assert "| *teacher (t)* | | | 0.90 [" in md and "| *random policy* | | | 0 | 0 | 1 |" in md
    assert "| imm | naive | 2 | 0.69 [" in md  # (7/9 + 5.5/9) / 2
    assert "| naive | none | 2 | 0.67 [" in md
    assert "Runs left out of the statistics" not in md and "Left out" not in md


def test_per_task_tables_without_curves(md):
    a = md.split("### A")[1].split("### B")[0]
    assert "| algorithm | runs | mean | IQM [95% CI] |\n|---|---:|---:|---:|\n" in a
    assert "| imm | 3 | 4.33 | 4.33 [" in a
    assert "| *teacher (t)* | 3 | 9.00 | |" in a and "| *random policy* | 3 | 0.00 | |" in a
    assert "| paired difference | seeds | final score [95% CI] |\n" in a
    assert "| imm − naive | 3 | +1.33 [-0.10, +2.77] |" in a  # 2, 1, 1: ± t(0.975, 2) · sd / √3
    assert "No learning curves: no curves.csv in /runs/A, /runs/B." in md


def test_per_task_tables_with_curves_have_a_curve_mean_column():
    inputs = hand_made_inputs(curves=True)
    md = report_markdown(report_stats(inputs, reps=20), inputs.tasks, [])
    a = md.split("### A")[1].split("### B")[0]
    assert "| algorithm | runs | mean | IQM [95% CI] | curve mean |" in a
    assert "| imm | 3 | 4.33 | 4.33 [" in a and a.split("| imm | 3 | 4.33 |")[1].splitlines()[0].endswith(
        "| 2.17 |"
    )
    assert "| *teacher (t)* | 3 | 9.00 | | |" in a
    assert "| imm − naive | 3 | +1.33 [-0.10, +2.77] | +0.67 [-0.05, +1.38] |" in a
    assert "No learning curves" not in md


def test_figures_notes_and_induction():
    inputs = hand_made_inputs(drop=("B", "imm", 2))
    inputs.folders[0].missing = ["method=imm budget=100 λ ratio=0.5: seeds 2"]
    inputs.tasks[0].folders[0].record.induction = {"method": "knn", "k": 8}
    md = report_markdown(report_stats(inputs, reps=20), inputs.tasks, ["aggregates.png", "profiles.png"])
    assert "- `/runs/A`: method=imm budget=100 λ ratio=0.5: seeds 2" in md
    assert "- imm: the tasks have different numbers of runs (A: 3, B: 2)" in md
    # A folder from before both keys: the defaults of the time.
    assert "### A\n\nIMM's induction: knn, k = 8; own-episode exclusion: none; pool: 1" in md
    assert "### B\n\n| algorithm |" in md
    for png in ("aggregates.png", "profiles.png"):
        assert f"![{png[:-4]}]({png})\n\n{CAPTIONS[png]}\n" in md
    assert "curves.png" not in md


def test_an_induced_teacher_and_the_end_of_run_measures_are_reported():
    inputs = hand_made_inputs()
    final = inputs.final
    # measures on task A only, seed by seed: induced KL 0.1·seed, pointwise 0.2·seed, hidden left 0.5
    on_a = final["task"] == "A"
    final["induced_kl"] = (0.1 * final["seed"]).where(on_a)
    final["pointwise_kl"] = (0.2 * final["seed"]).where(on_a)
    final["hidden_left"] = pd.Series(0.5, index=final.index).where(on_a)
    final["states"] = pd.Series(2048.0, index=final.index).where(on_a)
    expert = {"algo": "ppo", "timesteps": 60000, "score": 500.0, "score_std": 0.0, "episodes": 10}
    inputs.tasks[0].folders[0].teacher = {
        "about": {"expert": expert, "hidden_kl": 0.25, "hidden_kl_states": 20000}
    }
    md = report_markdown(report_stats(inputs, reps=20, seed=3), inputs.tasks, [])
    a = md[md.index("### A") : md.index("### B")]
    assert "| *its expert (ppo, 60000 steps, full state)* | 1 | 500.00 | |" in a
    assert "E[KL(expert ‖ teacher)] over 20000 states the expert visits: 0.2500 nats" in a
    # means over seeds 0, 1, 2: induced 0.1, pointwise 0.2
    for method in ("none", "naive", "imm"):
        assert f"| {method} | 3 | 0.1000 | 0.2000 | 0.500 |" in a
    b = md[md.index("### B") :]
    assert "E[KL(P̄ ‖ Q̄)]" not in b and "its expert" not in b
