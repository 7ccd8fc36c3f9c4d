"""Aggregate statistics (rliable's, Agarwal et al. 2021) against hand computations (checking the
matrices and functions handed to rliable), the seeded stratified bootstrap, the per-task
normalisation and its defaults, and compare's single-task lines."""

import numpy as np
import pandas as pd
import pytest

from rlimm.rl.aggregate import (
    Algorithm,
    by_task,
    comparisons,
    improvement_interval,
    interval,
    iqm_curve,
    label_algorithms,
    profile,
    runs_matrix,
    single_task_lines,
)
from rlimm.rl.config import EnvConfig, EvalConfig
from rlimm.rl.result_folders import missing_runs, normalise, random_scores, registered_threshold

REPS = 200  # few resamples: the tests check structure and bounds, not the third decimal


def point(metric: str, *tasks: np.ndarray) -> float:
    return interval(metric, list(tasks), reps=REPS).value


def poi(xs: list[np.ndarray], ys: list[np.ndarray]) -> float:
    return improvement_interval(xs, ys, reps=REPS).value


def test_iqm_is_the_25_percent_trimmed_mean_of_all_runs_of_all_tasks():
    assert point("IQM", np.arange(1.0, 9.0)) == pytest.approx(4.5)  # 3, 4, 5, 6
    # Pooled 0 1 2 3 10 100: int(0.25 · 6) = 1 run cut from each end → mean(1, 2, 3, 10).
    assert point("IQM", np.array([0.0, 10.0, 100.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(4.0)
    assert point("IQM", np.array([7.0])) == 7.0


def test_mean_and_optimality_gap_average_per_task_first():
    assert point("mean", np.array([1.0, 3.0]), np.array([10.0, 20.0])) == pytest.approx(8.5)  # (2 + 15) / 2
    # Clipped at 1: task 1 → mean(0.5, 1) = 0.75, task 2 → mean(0, 0.5) = 0.25; gap = 1 − 0.5.
    assert point("optimality gap", np.array([0.5, 1.5]), np.array([0.0, 0.5])) == pytest.approx(0.5)
    assert point("optimality gap", np.array([2.0, 3.0])) == 0.0


def test_tasks_with_different_run_counts_keep_the_first_runs_of_each():
    tasks = [np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0])]
    assert runs_matrix(tasks).tolist() == [[1.0, 4.0], [2.0, 5.0]]  # runs × tasks
    assert point("mean", *tasks) == pytest.approx(3.0)  # (1.5 + 4.5) / 2: run 3 of task 1 left out
    curves = [np.zeros((3, 4)), np.ones((2, 4))]
    assert runs_matrix(curves).shape == (2, 2, 4)  # runs × tasks × steps
    rows = pd.DataFrame(
        {
            "task": ["b", "a", "a", "a"],
            "seed": [0, 2, 0, 1],
            "folder": "f",
            "normalised": [9.0, 2.0, 0.0, 1.0],
        }
    )
    assert [t.tolist() for t in by_task(rows, ["a", "b", "c"])] == [[0.0, 1.0, 2.0], [9.0]]  # by seed


def test_probability_of_improvement_counts_pairs_ties_half_then_averages_tasks():
    x1, y1 = np.array([2.0, 3.0]), np.array([2.0, 2.0, 1.0])
    assert poi([x1], [y1]) == pytest.approx(5 / 6)  # .5 + .5 + 1 + 1 + 1 + 1 over 6
    x2, y2 = np.array([0.0, 4.0]), np.array([1.0, 2.0, 3.0])
    assert poi([x2], [y2]) == pytest.approx(3 / 6)
    assert poi([x1, x2], [y1, y2]) == pytest.approx((5 / 6 + 3 / 6) / 2)
    assert poi([x1], [x1]) == 0.5  # identical samples: rliable's 0.5
    assert poi([y1], [x1]) == pytest.approx(1 - 5 / 6)


def test_bootstrap_resamples_runs_within_each_task_and_is_seeded():
    tasks = [np.array([5.0, 5.0]), np.array([0.0, 1.0])]
    est = interval("mean", tasks, reps=REPS, seed=3)
    assert est.value == pytest.approx(2.75)
    # Task 1's runs are all 5, so every resample keeps its mean: the mean stays within (5 + [0, 1]) / 2.
    assert 2.5 <= est.low <= est.value <= est.high <= 3.0 and est.low < est.high
    state = np.random.get_state()[1].copy()
    assert interval("mean", tasks, reps=REPS, seed=3) == est
    wide = [np.arange(10.0) ** 2]
    assert interval("IQM", wide, reps=REPS, seed=3) != interval("IQM", wide, reps=REPS, seed=4)
    assert (np.random.get_state()[1] == state).all()  # numpy's global generator is given back as it was
    flat = interval("IQM", [np.full(6, 0.4)], reps=REPS)
    assert (flat.value, flat.low, flat.high) == pytest.approx((0.4, 0.4, 0.4))
    imp = improvement_interval([np.array([3.0, 4.0])], [np.array([1.0, 2.0])], reps=REPS)
    assert (imp.value, imp.low, imp.high) == (1.0, 1.0, 1.0)
    assert imp.cell() == "1.00 [1.00, 1.00]"


def test_profile_is_the_fraction_of_runs_above_each_threshold():
    taus = np.array([-1.0, 0.5, 1.5, 3.0])
    prof = profile([np.array([0.0, 1.0]), np.array([2.0, 2.0])], taus, reps=REPS)
    assert prof.value == pytest.approx([1.0, 0.75, 0.5, 0.0])
    assert prof.low.shape == (4,) and (prof.low <= prof.value).all() and (prof.value <= prof.high).all()
    again = profile([np.array([0.0, 1.0]), np.array([2.0, 2.0])], taus, reps=REPS)
    assert np.array_equal(again.low, prof.low) and np.array_equal(again.high, prof.high)  # seeded


def test_iqm_curve_is_the_iqm_at_each_step():
    runs = np.array([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0], [0.0, 4.0]])
    curve = iqm_curve([runs], reps=REPS)
    assert curve.value == pytest.approx([0.0, 2.5])
    assert curve.low.shape == (2,) and curve.low[0] == 0.0 and curve.high[1] <= 4.0


def test_normalisation_puts_random_at_0_and_the_reference_at_1():
    assert normalise(7.0, random=2.0, reference=12.0) == pytest.approx(0.5)
    assert normalise(np.array([2.0, 12.0]), 2.0, 12.0) == pytest.approx([0.0, 1.0])


def test_reference_defaults_to_gymnasiums_reward_threshold():
    assert registered_threshold("CartPole-v1") == 475.0
    assert registered_threshold("rlimm/ToroidalGrid-v0") is None  # the grid registers none
    assert registered_threshold("NoSuchEnv-v9") is None


def test_random_policy_is_seeded_and_uses_the_evaluation_protocol():
    env = EnvConfig(kwargs={"height": 5, "width": 5})
    ev = EvalConfig(episodes=3, steps=7)
    a = random_scores(env, ev, [0, 1])
    assert a == random_scores(env, ev, [0, 1]) and a[1] == random_scores(env, ev, [1])[0]
    assert a[0] != a[1]
    # CartPole-v1: random actions end episodes after ~20 steps, far below the 475 threshold.
    (cartpole,) = random_scores(EnvConfig(id="CartPole-v1"), EvalConfig(episodes=5), [0])
    assert 5 < cartpole < 100


def test_missing_runs_names_the_holes_of_the_grid():
    rows = [("none", 50, s, 0.0) for s in range(3)] + [("imm", 50, s, 0.2) for s in (0, 2)]
    rows += [("none", 100, s, 0.0) for s in range(3)]
    df = pd.DataFrame(rows, columns=["method", "budget", "seed", "lambda_ratio"])
    assert missing_runs(df) == [
        "method=imm budget=50 λ ratio=0.2: seeds 1",
        "method=imm budget=100: no run finished",
    ]


def test_algorithms_show_a_setting_only_where_runs_differ():
    rows = pd.DataFrame(
        {
            "folder": ["a"] * 4,
            "method": ["none", "imm", "imm", "naive"],
            "lambda_ratio": [0.0, 0.1, 0.3, 0.1],
            "lambda_schedule": ["constant"] * 4,
            "algo": ["ppo"] * 4,
            "teacher": ["", "fib-argmax", "fib-argmax", "fib-argmax"],
        }
    )
    algs = list(label_algorithms(rows))
    assert [a.label for a in algs] == [
        "none",
        "imm (λ ratio 0.1)",
        "imm (λ ratio 0.3)",
        "naive (λ ratio 0.1)",
    ]
    pairs = [(x.label, y.label) for x, y in comparisons(sorted(set(algs)))]
    assert pairs == [
        ("imm (λ ratio 0.1)", "naive (λ ratio 0.1)"),
        ("imm (λ ratio 0.1)", "none"),
        ("imm (λ ratio 0.3)", "none"),
        ("naive (λ ratio 0.1)", "none"),
    ]
    assert Algorithm(2, "imm").label == "imm"


def test_a_suite_with_one_teacher_and_algorithm_per_task_pools_each_method():
    rows = pd.DataFrame(
        {
            "task": ["cartpole", "cartpole", "pendulum", "pendulum"],
            "folder": ["a", "a", "b", "b"],
            "method": ["none", "imm", "none", "imm"],
            "lambda_ratio": [0.0, 0.5, 0.0, 0.5],
            "lambda_schedule": ["constant"] * 4,
            "algo": ["ppo", "ppo", "sac", "sac"],
            "teacher": ["", "trained-softmax", "", "trained-gaussian"],
        }
    )
    assert [a.label for a in label_algorithms(rows)] == ["none", "imm", "none", "imm"]
    # One task run with two algorithms: the algorithm tells them apart.
    both = rows.assign(task="cartpole", teacher=["", "t", "", "t"])
    assert [a.label for a in label_algorithms(both)] == ["none (ppo)", "imm (ppo)", "none (sac)", "imm (sac)"]


def runs(task: str, folder: str, method: str, ratio: float, schedule: str = "constant") -> dict:
    """One row of the table label_algorithms reads."""
    return {
        "task": task, "folder": folder, "method": method, "lambda_ratio": 0.0 if method == "none" else ratio,
        "lambda_schedule": schedule, "algo": "ppo", "teacher": "" if method == "none" else "t",
    }  # fmt: skip


def test_two_folders_of_one_task_with_different_ratios_are_not_pooled():
    rows = pd.DataFrame(
        [runs("T", f, m, r) for f, r in (("low", 0.5), ("high", 0.8)) for m in ("none", "naive", "imm")]
    )
    assert [a.label for a in label_algorithms(rows)] == [
        "none", "naive (λ ratio 0.5)", "imm (λ ratio 0.5)",
        "none", "naive (λ ratio 0.8)", "imm (λ ratio 0.8)",
    ]  # fmt: skip
    pairs = {(x.label, y.label) for x, y in comparisons(sorted(set(label_algorithms(rows))))}
    assert ("imm (λ ratio 0.8)", "naive (λ ratio 0.8)") in pairs
    assert ("imm (λ ratio 0.8)", "naive (λ ratio 0.5)") not in pairs
    # Without a task column all rows are one task: the same.
    assert len(set(label_algorithms(rows.drop(columns="task")))) == 5
    # Two tasks of a suite, each with its own single ratio: each method pools over them.
    suite = pd.DataFrame([runs(t, t, m, r) for t, r in (("A", 0.5), ("B", 0.8)) for m in ("none", "imm")])
    assert [a.label for a in label_algorithms(suite)] == ["none", "imm", "none", "imm"]


def test_each_schedule_labels_the_regularised_methods_and_none_has_none():
    schedules = ("constant", "linear_decay", "trust")
    rows = pd.DataFrame(
        [runs("T", "grid", "none", 0.0)]
        + [runs("T", f"grid_{s}", m, 0.5, s) for s in schedules for m in ("naive", "imm")]
    )
    algs = sorted(set(label_algorithms(rows)))
    assert [a.label for a in algs] == ["none"] + [f"{m} ({s})" for m in ("naive", "imm") for s in schedules]
    assert algs[0].lambda_schedule is None and algs[0].lambda_ratio is None
    pairs = [(x.label, y.label) for x, y in comparisons(algs)]
    assert pairs == [(f"imm ({s})", f"naive ({s})") for s in schedules] + [
        (f"{m} ({s})", "none") for m in ("imm", "naive") for s in schedules
    ]
    # A schedule that only one task used still tells its runs apart from another task's.
    two = pd.DataFrame([runs("A", "a", "imm", 0.5), runs("B", "b", "imm", 0.5, "trust")])
    assert [a.label for a in label_algorithms(two)] == ["imm (constant)", "imm (trust)"]


def test_single_task_lines_give_iqm_and_probabilities_per_budget():
    rows = [("none", 10, s, 0.0, float(s)) for s in range(4)]
    rows += [("imm", 10, s, 0.2, 10.0 + s) for s in range(4)]
    rows += [("naive", 10, s, 0.2, 10.0 + s) for s in range(4)]
    df = pd.DataFrame(rows, columns=["method", "budget", "seed", "lambda_ratio", "score"])
    text = single_task_lines(df, reps=REPS)
    head, _, row = text.strip().splitlines()[-3:]
    assert (
        head
        == "| budget | IQM none | IQM naive | IQM imm | P(imm > naive) | P(imm > none) | P(naive > none) |"
    )
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "10" and cells[1].startswith("1.50 [")  # IQM of 0 1 2 3 = mean(1, 2)
    assert cells[4].startswith("0.50 [") and cells[5] == "1.00 [1.00, 1.00]"
    assert single_task_lines(df.iloc[:0]) == ""


def test_a_task_is_the_env_with_its_restriction_and_teacher():
    """CartPole with the cart hidden and CartPole without velocities are two tasks of one suite."""
    from pathlib import Path

    import pandas as pd

    from rlimm.rl.result_folders import Folder, FolderRecord

    def folder(visible: list[str], solver: str = "trained") -> Folder:
        record = FolderRecord.model_validate(
            {"env": {"id": "CartPole-v1"}, "restriction": {"visible": visible}, "teacher": {"solver": solver}}
        )
        return Folder(Path("x"), record, pd.DataFrame(), 6144)

    assert folder(["theta", "theta_dot"]).task != folder(["x", "theta"]).task
    assert folder(["x", "theta"]).task != folder(["x", "theta"], "induced_expert").task
    assert folder(["x", "theta"]).task == folder(["x", "theta"]).task
