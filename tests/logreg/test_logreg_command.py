"""`rlimm logreg` end to end on a tiny config, and bad input refused with a message naming the key."""

import argparse
import csv
import json
from pathlib import Path

import pytest

from rlimm.errors import ConfigError, RlimmError
from rlimm.logreg.config import load_logreg_config

from cli_helpers import config_variant
from cli_helpers import run_in_process as run

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "logreg_quick.yaml"
FULL = ROOT / "configs" / "logreg.yaml"


def test_logreg_writes_csv_markdown_and_plots(tmp_path, capsys):
    out = tmp_path / "lr"
    assert run("logreg", QUICK, "--out", out, "--runs", "6", "--quiet") == 0
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["part", "n", "run", "method", "lambda_ratio", "teacher", "accuracy"]
    assert {r["run"] for r in rows} == {str(i) for i in range(6)}
    assert {r["part"] for r in rows} == {"size", "sweep", "teacher"}
    size = [r for r in rows if r["part"] == "size"]
    # 3 sizes x 4 methods x 6 runs
    assert len(size) == 72 and {r["method"] for r in size} == {"baseline", "imm", "noising", "interpolation"}
    # Measured mean accuracy over the 6 runs (seeded). Decisions are thresholds of float32 logits, so
    # another CPU's rounding could at most flip a test point on the boundary, worth < 1e-6 here.
    measured = {
        (4, "baseline"): 0.6878360745624588,
        (4, "imm"): 0.7089491510903723,
        (4, "noising"): 0.6611108573790277,
        (4, "interpolation"): 0.7053101257200923,
        (16, "baseline"): 0.8515767857746169,
        (16, "imm"): 0.8611538579181718,
        (16, "noising"): 0.8357041966632889,
        (16, "interpolation"): 0.8515644261554763,
        (64, "baseline"): 0.8631106755451249,
        (64, "imm"): 0.8659007502114658,
        (64, "noising"): 0.8411668075438228,
        (64, "interpolation"): 0.8602319727456457,
    }
    for (n, method), accuracy in measured.items():
        got = [float(r["accuracy"]) for r in size if r["n"] == str(n) and r["method"] == method]
        assert len(got) == 6 and sum(got) / 6 == pytest.approx(accuracy, abs=1e-6), (n, method)
    sweep_ratios = {float(r["lambda_ratio"]) for r in rows if r["part"] == "sweep" and r["method"] == "imm"}
    assert sweep_ratios == {0.2, 0.8}

    setting = json.loads((out / "setting.json").read_text())
    # Both are float64 functions of the seeded test set: exact up to summation order.
    assert setting["bayes_accuracy"] == pytest.approx(0.8771056249124548, rel=1e-9)
    assert setting["restricted_accuracy"] == pytest.approx(0.6935835454181717, rel=1e-9)
    assert setting["config"]["runs"] == 6

    summary = (out / "summary.md").read_text()
    for heading in (
        "Accuracy against training set size",
        "Paired differences",
        "λ sweep",
        "Population",
        "Teacher",
    ):
        assert heading in summary
    assert "| n | baseline | imm | noising | interpolation |" in summary
    assert "| n | baseline | imm | noising | interpolation |" in capsys.readouterr().out
    for name in ("logreg_size.png", "logreg_lambda.png", "logreg_teacher.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / name).stat().st_size > 10_000
    assert (out / "population.csv").read_text().startswith("method,lambda_ratio")


def _config(tmp_path, **changes):
    return config_variant(QUICK, tmp_path, **changes)


def test_the_shipped_configs_are_valid():
    full = load_logreg_config(FULL)
    assert full.runs == 300 and len(full.sizes) >= 8 and min(full.sizes) <= 5 and max(full.sizes) >= 1000
    assert full.sweep and full.teacher_quality
    load_logreg_config(QUICK)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train.stpes": 10}, "'train.stpes': unknown key"),
        ({"lambda_ratio": 1.0}, "'lambda_ratio': lambda ratio must lie in [0, 1)"),
        ({"sizes": [4, 0]}, "'sizes': entries must be positive"),
        ({"sizes": [4, 4]}, "'sizes': entries must be distinct"),
        ({"sweep.lambda_ratios": [0.5, -0.1]}, "'sweep.lambda_ratios': lambda ratio must lie in [0, 1)"),
        (
            {"teacher_quality.restricted_samples": []},
            "'teacher_quality.restricted_samples': give at least one",
        ),
        ({"methods": ["imm", "noising"]}, "'methods': must include baseline"),
        ({"methods": ["baseline", "kd"]}, "'methods.1'"),
        ({"model.weights": [1.0, 2.0]}, "'model.weights"),
        ({"train.momentum": 1.0}, "'train.momentum'"),
        ({"runs": 1}, "'runs'"),
    ],
)
def test_bad_config_names_the_key(tmp_path, change, message):
    with pytest.raises(ConfigError) as err:
        run("logreg", _config(tmp_path, **change), "--out", tmp_path / "out", "--quiet")
    assert message in str(err.value)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_bad_files_and_options(tmp_path, capsys):
    with pytest.raises(ConfigError, match="config file not found"):
        run("logreg", tmp_path / "missing.yaml", "--out", tmp_path / "o")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML at line"):
        run("logreg", bad, "--out", tmp_path / "o")
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        run("logreg", bad, "--out", tmp_path / "o")
    with pytest.raises(ConfigError, match="'runs'"):
        run("logreg", QUICK, "--out", tmp_path / "o", "--runs", "0")
    # --threads is checked by the parser (rlimm.common.command.positive_int): exit 2, naming the flag.
    with pytest.raises(SystemExit) as exit_:
        run("logreg", QUICK, "--out", tmp_path / "o", "--threads", "0")
    assert exit_.value.code == 2 and "--threads" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    with pytest.raises(RlimmError, match="must be a folder"):
        run("logreg", QUICK, "--out", tmp_path / "file")


def test_rlimm_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    from rlimm.cli import build_parser, main

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert "logreg" in sub.choices
    assert main(["logreg", str(_config(tmp_path, **{"train.stpes": 1})), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rlimm: error: ") and "'train.stpes': unknown key" in err[0]
