"""`rlimm tune` end to end: Optuna studies in SQLite that resume, the fitted rule, bad input."""

import csv
from pathlib import Path

import pytest
import yaml

from rlimm.cli import main
from rlimm.common.config import parse_mapping
from rlimm.rl.config import CompareConfig, LinearRatioRule
from rlimm.rl.tuning import BudgetBest, fit_rule

from cli_helpers import rlimm

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "grid_quick.yaml"
TINY = ["--budgets", "2", "4", "--seeds", "1", "--jobs", "1", "--no-progress"]


def trials(out):
    with open(out / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_tune_resumes_its_sqlite_study_and_fits_a_rule_compare_accepts(tmp_path):
    out = tmp_path / "tune"
    res = rlimm("tune", QUICK, "--out", out, "--trials", "2", *TINY)
    assert res.returncode == 0, res.stderr
    assert (out / "optuna.db").is_file()
    first = trials(out)
    assert [(r["budget"], r["trial"]) for r in first] == [("2", "0"), ("2", "1"), ("4", "0"), ("4", "1")]
    assert "| budget (updates) | best λ-ratio of imm |" in res.stdout

    # Resuming with more trials keeps the finished ones and adds new draws.
    res = rlimm("tune", QUICK, "--out", out, "--trials", "3", *TINY)
    assert res.returncode == 0, res.stderr
    second = trials(out)
    assert len(second) == 6
    assert [r for r in second if r["trial"] != "2"] == first
    new = [float(r["lambda_ratio"]) for r in second if r["trial"] == "2"]
    assert not set(new) & {float(r["lambda_ratio"]) for r in first}

    # The rule goes through the best ratio of each budget and compare accepts it.
    tuned = yaml.safe_load((out / "tuned.yaml").read_text())
    best = {
        b: max((r for r in second if r["budget"] == b), key=lambda r: float(r["score"])) for b in ("2", "4")
    }
    rule = LinearRatioRule(**tuned["lambda_ratio"])
    for budget, row in best.items():
        assert rule.ratio(int(budget)) == pytest.approx(float(row["lambda_ratio"]), abs=1e-5)
    config = yaml.safe_load(QUICK.read_text())
    config.update(lambda_ratio=tuned["lambda_ratio"], budgets=[2, 4], seeds=1)
    ratios = {(s.method, s.budget): s.lambda_ratio for s in parse_mapping(CompareConfig, config).runs()}
    assert ratios[("imm", 4)] == pytest.approx(rule.ratio(4))
    assert ratios[("none", 4)] == 0.0


def test_a_storage_url_holds_the_studies(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    res = rlimm("tune", QUICK, "--out", tmp_path / "a", "--storage", url, "--trials", "1", *TINY)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "shared.db").is_file() and not (tmp_path / "a" / "optuna.db").exists()
    # A second machine (another --out) continues the same studies.
    res = rlimm("tune", QUICK, "--out", tmp_path / "b", "--storage", url, "--trials", "2", *TINY)
    assert res.returncode == 0, res.stderr
    assert len(trials(tmp_path / "b")) == 4


def test_a_study_of_another_setting_is_refused(tmp_path):
    out = tmp_path / "tune"
    assert rlimm("tune", QUICK, "--out", out, "--trials", "1", *TINY).returncode == 0
    res = rlimm("tune", QUICK, "--out", out, "--trials", "1", *TINY[:-5], "--seeds", "2", "--jobs", "1")
    assert res.returncode == 2 and "another setting" in res.stderr


def test_fit_rule_is_least_squares_and_clips():
    best = [BudgetBest(50, 0.2, 0, 1), BudgetBest(100, 0.1, 0, 1), BudgetBest(200, 0.0, 0, 1)]
    rule = fit_rule(best, 0.0, 0.9)
    # Least squares by hand.
    xs, ys = [50, 100, 200], [0.2, 0.1, 0.0]
    mx, my = sum(xs) / 3, sum(ys) / 3
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    assert rule.slope == pytest.approx(slope, rel=1e-6)
    assert rule.intercept == pytest.approx(my - slope * mx, rel=1e-6)
    assert rule.ratio(10_000) == 0.0  # clipped at low
    assert fit_rule([BudgetBest(50, 0.3, 0, 1)], 0.0, 0.9).ratio(999) == 0.3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budgets", "-3"], "'budgets'"),
        (["--budgets", "0"], "'budgets'"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code = main(["tune", str(QUICK), "--out", str(out), "--no-progress", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("flag", [["--jobs", "0"], ["--trials", "-1"], ["--seeds", "x"]])
def test_bad_flag_values_are_refused_by_the_parser(tmp_path, capsys, flag):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main(["tune", str(QUICK), "--out", str(out), *flag])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and f"argument {flag[0]}" in err[0], err
    assert not out.exists()


def test_bad_tune_section_is_refused(tmp_path, capsys):
    config = yaml.safe_load(QUICK.read_text())
    config["tune"] = {"low": 0.5, "high": 0.2}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["tune", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "'tune': low (0.5) must be below high (0.2)" in capsys.readouterr().err
