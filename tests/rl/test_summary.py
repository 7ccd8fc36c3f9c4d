"""Compare's summary (:mod:`rlimm.rl.summary`): percentiles, paired differences by seed, sweep detection,
and the plot file."""

import numpy as np
import pandas as pd
import pytest

from rlimm.rl.summary import markdown_table, paired_differences, plot, summarize


def frame(rows):
    return pd.DataFrame(rows, columns=["method", "budget", "seed", "lambda_ratio", "score"])


def test_summary_and_paired_differences_by_seed():
    rows = [("none", 10, s, 0.0, float(s)) for s in range(5)]
    rows += [("imm", 10, s, 0.2, float(s) + 2 + 0.1 * s) for s in range(5)]
    rows += [("naive", 10, s, 0.2, 1.0) for s in range(5)]
    df = frame(rows)
    summary = summarize(df)
    none = summary[summary.method == "none"].iloc[0]
    assert none["runs"] == 5 and none["mean"] == pytest.approx(2.0)
    assert none["p10"] == pytest.approx(np.quantile(np.arange(5.0), 0.1))
    diffs = paired_differences(df).set_index("comparison")
    d = 2 + 0.1 * np.arange(5)
    assert diffs.loc["imm − none", "mean"] == pytest.approx(d.mean())
    half = 2.776445 * d.std(ddof=1) / np.sqrt(5)  # t(0.975, 4) = 2.7764 (tables): 5 seeds
    assert diffs.loc["imm − none", "low"] == pytest.approx(d.mean() - half, rel=1e-6)
    assert diffs.loc["imm − naive", "mean"] == pytest.approx((np.arange(5) + d - 1).mean())
    assert diffs.loc["imm − none", "pairs"] == 5


def test_table_shows_one_ratio_per_budget_or_a_sweep(tmp_path):
    per_budget = frame(
        [("none", b, s, 0.0, 1.0) for b in (50, 200) for s in range(3)]
        + [("imm", 50, s, 0.2, 2.0) for s in range(3)]
        + [("imm", 200, s, 0.1, 3.0) for s in range(3)]
    )
    table = markdown_table(summarize(per_budget))
    assert table.splitlines()[0] == "| budget | none | imm |"
    assert "50: 0.20, 200: 0.10" in table
    sweep = frame(
        [("none", 50, s, 0.0, 1.0) for s in range(3)]
        + [("imm", 50, s, r, 2.0 + r) for s in range(3) for r in (0.1, 0.5)]
    )
    table = markdown_table(summarize(sweep))
    assert table.splitlines()[0] == "| budget | λ ratio | none | imm |"
    assert len(table.splitlines()) == 4  # header, rule, one row per ratio
    for df in (per_budget, sweep):
        path = plot(summarize(df), tmp_path / "p.png", "t")
        assert path.stat().st_size > 5_000


def test_summary_md_names_an_induced_teachers_expert_and_the_end_of_run_measures(tmp_path):
    import json

    from rlimm.rl.comparison import COLUMNS, MEASURE_COLUMNS
    from rlimm.rl.summary import write_report

    rows, measures = [], []
    for method in ("none", "imm"):
        for seed in (0, 1):
            rows.append(
                {"method": method, "algo": "ppo", "budget": 100, "seed": seed,
                 "lambda_ratio": 0.0 if method == "none" else 0.5, "score": 1.0 + seed, "score_std": 0.0,
                 "teacher": "t", "updates": 1, "timesteps": 100, "train_seconds": 1.0}
            )  # fmt: skip
            measures.append(
                {"method": method, "budget": 100, "seed": seed, "lambda_ratio": rows[-1]["lambda_ratio"],
                 "induced_kl": 0.1 * (seed + 1), "pointwise_kl": 1.0, "hidden_left": 0.5, "states": 2048}
            )  # fmt: skip
    pd.DataFrame(rows, columns=COLUMNS).to_csv(tmp_path / "results.csv", index=False)
    pd.DataFrame(measures, columns=MEASURE_COLUMNS).to_csv(tmp_path / "measures.csv", index=False)
    expert = {"algo": "ppo", "timesteps": 60000, "score": 500.0, "score_std": 0.0, "episodes": 10}
    about = {"expert": expert, "hidden_kl": 0.25, "hidden_kl_states": 20000}
    (tmp_path / "teacher.json").write_text(
        json.dumps({"teacher": "t", "scores": [30.0, 32.0], "about": about})
    )
    md = write_report(tmp_path / "results.csv")[0].read_text()
    assert "full-state expert (ppo, 60000 steps) that scores 500.00 ± 0.00 (sd over 10 episodes)" in md
    assert "over 20000 states it visits: 0.2500 nats" in md
    assert "| 100 | imm | 2 | 0.1500 | 1.0000 | 0.500 |" in md and "| 100 | none | 2 | 0.1500 |" in md


def test_the_plot_draws_curves_files_from_before_the_budget_column(tmp_path):
    df = frame([("none", 50, s, 0.0, 1.0) for s in range(3)] + [("imm", 50, s, 0.2, 2.0) for s in range(3)])
    old_curves = pd.DataFrame(
        [{"method": m, "lambda_ratio": r, "seed": s, "step": step, "score": step / 10}
         for m, r in (("none", 0.0), ("imm", 0.2)) for s in range(3) for step in (10, 20, 30)]
    )  # fmt: skip
    path = plot(summarize(df), tmp_path / "p.png", "t", curves=old_curves)
    assert path.stat().st_size > 5_000
