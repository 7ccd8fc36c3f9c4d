"""``--eval-every`` end to end: ``rlimm train`` and ``rlimm compare`` write ``curves.csv``, the step
cap of an env without a time limit is stated everywhere, bad values are refused, and the plots."""

import csv
import json
from pathlib import Path

import pytest

from rlimm.cli import main
from rlimm.rl.evaluation import CURVE_COLUMNS

from cli_helpers import config_variant

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "grid_quick.yaml"


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_without_a_time_limit_caps_evaluations_and_writes_its_curve(tmp_path, capsys):
    out = tmp_path / "cliff"
    args = ["train", "--env", "CliffWalking-v1", "--algo", "a2c", "-n", "200", "--out", out]
    code = main([*map(str, args), "--eval-every", "100", "--eval-episodes", "2", "--no-progress"])
    stdout = capsys.readouterr().out
    assert code == 0
    assert "over 2 episodes of at most 1000 steps" in stdout and "2 evaluations" in stdout
    result = json.loads((out / "result.json").read_text())
    assert result["eval_steps"] == 1000 and [p["step"] for p in result["curve"]] == [100, 200]
    rows = _csv(out / "curves.csv")
    assert list(rows[0]) == CURVE_COLUMNS
    assert [(r["method"], r["algo"], r["budget"], r["step"], r["eval_steps"]) for r in rows] == [
        ("none", "a2c", "200", "100", "1000"),
        ("none", "a2c", "200", "200", "1000"),
    ]
    assert [float(r["score"]) for r in rows] == [p["score"] for p in result["curve"]]


@pytest.mark.parametrize(("every", "message"), [("0", "greater than 0"), ("500", "500 is larger than")])
def test_bad_every_one_line_exit_2_nothing_written(tmp_path, capsys, every, message):
    train_out, compare_out = tmp_path / "train", tmp_path / "compare"
    train = ["train", "-n", "200", "--out", str(train_out), "--eval-every", every, "--no-progress"]
    small = config_variant(QUICK, tmp_path, budgets=[2], seeds=1)  # 2 updates of 50 steps = 100 steps
    compare = ["compare", str(small), "--out", str(compare_out), "--eval-every", every, "--no-progress"]
    for argv, out in ((train, train_out), (compare, compare_out)):
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert len(err) == 1 and err[0].startswith("rlimm: error:"), err
        assert "'evaluation.every'" in err[0] and message in err[0]
        assert not out.exists()


def test_compare_with_curves_writes_curves_and_plots_them(tmp_path, capsys):
    cfg = config_variant(QUICK, tmp_path, budgets=[2, 4], seeds=2)
    out = tmp_path / "out"
    code = main(
        ["compare", str(cfg), "--out", str(out), "--eval-every", "50", "--jobs", "1", "--no-progress"]
    )
    assert code == 0, capsys.readouterr().err
    assert "episodes of at most 22 steps" in capsys.readouterr().err
    results, curves = _csv(out / "results.csv"), _csv(out / "curves.csv")
    assert len(results) == 12  # the grid's λ depends on the budget: one run per budget
    # Every run has its curve: 100 or 200 steps, one evaluation every 50.
    assert len(curves) == 2 * 3 * (2 + 4)
    assert {r["eval_steps"] for r in curves} == {"22"} and {r["teacher"] for r in curves} == {
        "",
        "fib-argmax",
    }
    assert (out / "plot.png").stat().st_size > 0 and (out / "teacher.json").exists()


def test_one_budget_without_curves_plots_a_point_per_method(tmp_path, capsys, monkeypatch):
    from rlimm.rl import summary

    drawn = []
    original = summary._points
    monkeypatch.setattr(summary, "_points", lambda ax, table: (drawn.append(len(table)), original(ax, table)))
    cfg = config_variant(QUICK, tmp_path, budgets=[2], seeds=2)
    out = tmp_path / "out"
    code = main(["compare", str(cfg), "--out", str(out), "--jobs", "1", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert drawn == [3] and not (out / "curves.csv").exists() and (out / "plot.png").exists()
