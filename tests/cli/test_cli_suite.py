"""``rlimm suite`` end to end on two small grid tasks: the timing and the expected wall time printed
first, one folder per task and λ schedule (no ``none`` runs in the decaying one), the report, resuming
without running or timing anything again, ``--estimate``, and bad suite files (one line, exit 2,
nothing written)."""

from pathlib import Path

import pytest

from rlimm.cli import main

from cli_helpers import rlimm

ROOT = Path(__file__).resolve().parents[2]
GRID = ROOT / "configs" / "grid_quick.yaml"
SMALL = ["--seeds", "2", "--set", "budgets=[20]", "evaluation.every=500", "reference_score=20"]
SMALL += ["--jobs", "1", "--no-progress", "--reps", "50"]


def write_suite(folder: Path) -> Path:
    """A suite of grid_quick and a 9×9 copy of it (another task)."""
    nine = folder / "grid9.yaml"
    nine.write_text(
        GRID.read_text().replace("name: grid_quick", "name: grid9").replace("11, width: 11", "9, width: 9")
    )
    suite = folder / "suite.yaml"
    suite.write_text(f"name: small\ntasks: [{GRID}, grid9.yaml]\n")
    return suite


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> tuple[Path, Path, str]:
    base = tmp_path_factory.mktemp("suite")
    suite, out = write_suite(base), base / "out"
    proc = rlimm("suite", suite, "--out", out, *SMALL)
    assert proc.returncode == 0, proc.stderr
    return suite, out, proc.stdout


def test_the_suite_times_each_task_then_runs_and_reports(ran):
    _, out, stdout = ran
    assert "expected wall time of the whole suite" in stdout and "of what is left" in stdout
    for task in ("grid_quick", "grid9"):
        assert any(line.startswith(task) for line in stdout.splitlines())
    assert sorted(p.name for p in out.iterdir()) == [
        "grid9", "grid9_decay", "grid_quick", "grid_quick_decay", "report", "timings.json",
    ]  # fmt: skip
    constant = (out / "grid_quick" / "results.csv").read_text()
    decayed = (out / "grid_quick_decay" / "results.csv").read_text()
    assert ",none," not in decayed.replace("\n", ",") and "\nnone," in constant
    # 2 seeds: none, naive and imm with constant λ, naive and imm decaying.
    assert len(constant.splitlines()) == 1 + 3 * 2 and len(decayed.splitlines()) == 1 + 2 * 2
    md = (out / "report" / "report.md").read_text()
    assert "imm (linear_decay)" in md and "imm (constant)" in md
    assert "### rlimm/ToroidalGrid-v0 (grid9)" in md and "](curves_by_task.png)" in md
    # Every table names how IMM induced: the report's per-task tables and each folder's summary.
    assert "IMM's induction: " in md
    assert "IMM's induction: " in (out / "grid9_decay" / "summary.md").read_text()
    assert "λ schedule: linear_decay" in (out / "grid9_decay" / "summary.md").read_text()


def test_rerunning_the_suite_runs_and_times_nothing_again(ran):
    suite, out, _ = ran
    results = {p: p.read_bytes() for p in out.rglob("results.csv")}
    timings = (out / "timings.json").read_bytes()
    proc = rlimm("suite", suite, "--out", out, *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert "timing" not in proc.stderr and "0 runs to do" in proc.stderr
    assert {p: p.read_bytes() for p in out.rglob("results.csv")} == results
    assert (out / "timings.json").read_bytes() == timings


def test_estimate_stops_after_the_timing_runs(tmp_path):
    out = tmp_path / "out"
    proc = rlimm("suite", write_suite(tmp_path), "--out", out, "--estimate", *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert "expected wall time of the whole suite" in proc.stdout
    # One timed run per task (imm, seed 0), kept; no decaying folder, no report yet.
    assert sorted(p.name for p in out.iterdir()) == ["grid9", "grid_quick", "timings.json"]
    assert len((out / "grid9" / "results.csv").read_text().splitlines()) == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("tasks: [missing.yaml]\n", "'tasks': missing.yaml is not a file next to"),
        (f"tasks: [{GRID}, {GRID}]\n", "'tasks': entries must be distinct"),
        (f"tasks: [{GRID}]\nschedules: [cosine]\n", "'schedules"),
        (f"tasks: [{GRID}]\nrepeat: 2\n", "repeat"),
        (f"tasks: [{GRID}]\nlambda_until: 0\n", "'lambda_until'"),
        (f"tasks: [{GRID}]\nschedules: [trust, trust]\n", "'schedules': entries must be distinct"),
    ],
)
def test_bad_suite_files_are_one_line_and_write_nothing(tmp_path, capsys, text, message):
    suite = tmp_path / "suite.yaml"
    suite.write_text(text)
    assert main(["suite", str(suite), "--out", str(tmp_path / "out"), *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlimm: error:") and len(err.strip().splitlines()) == 1
    assert message in err
    assert not (tmp_path / "out").exists()


def test_a_task_without_a_reference_score_is_refused_before_anything_runs(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"tasks: [{GRID}]\n")
    assert main(["suite", str(suite), "--out", str(tmp_path / "out"), "--set", "budgets=[20]"]) == 2
    assert "has no reference_score" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_two_tasks_of_one_name_are_refused(tmp_path, capsys):
    copy = tmp_path / "copy.yaml"
    copy.write_text(GRID.read_text())
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"tasks: [{GRID}, copy.yaml]\n")
    assert main(["suite", str(suite), "--out", str(tmp_path / "out"), *SMALL]) == 2
    assert "both named 'grid_quick'" in capsys.readouterr().err


def test_each_schedule_has_its_folder_and_the_suite_sets_the_decays_until(tmp_path):
    from rlimm.rl.suite import load_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text(f"tasks: [{GRID}]\nschedules: [constant, linear_decay, trust]\nlambda_until: 0.5\n")
    loaded = load_suite(suite, tmp_path / "out", {"reference_score": 20})
    entries = {e.folder.name: e.config for e in loaded}
    assert list(entries) == ["grid_quick", "grid_quick_decay", "grid_quick_trust"]
    assert [c.lambda_schedule for c in entries.values()] == ["constant", "linear_decay", "trust"]
    assert entries["grid_quick_decay"].lambda_until == 0.5
    assert entries["grid_quick"].methods == ["none", "naive", "imm"]
    assert entries["grid_quick_trust"].methods == ["naive", "imm"]
