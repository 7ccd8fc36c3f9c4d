"""``rlimm report`` end to end: on two small compare folders (two tasks), with learning curves, a folder
still being written, the random policy's cache, and bad input (one line, exit 2, nothing written)."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from rlimm.cli import main

from cli_helpers import rlimm, run_in_process

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ["--reference", "rlimm/ToroidalGrid-v0=20"]


def write_curves(folder: Path) -> None:
    """A hand-written curves.csv: every final run's curve at steps 0, 1250, 2500."""
    results = pd.read_csv(folder / "results.csv", keep_default_na=False)
    rows = []
    for r in results.itertuples():
        for i, step in enumerate((0, 1250, 2500)):
            score = r.score * i / 2
            rows.append((r.method, r.algo, r.teacher, r.lambda_ratio, "constant", r.seed, step, score, 220))
    cols = [
        "method",
        "algo",
        "teacher",
        "lambda_ratio",
        "lambda_schedule",
        "seed",
        "step",
        "score",
        "eval_steps",
    ]
    pd.DataFrame(rows, columns=cols).to_csv(folder / "curves.csv", index=False)


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> tuple[Path, Path]:
    """grid_quick (3 seeds, budget 50) and a copy recorded as another task (a 9×9 grid)."""
    base = tmp_path_factory.mktemp("suite")
    a, b = base / "grid11", base / "grid9"
    code = run_in_process(
        "compare", ROOT / "configs/grid_quick.yaml", "--out", a, "--seeds", 3, "--budgets", 50,
        "--jobs", 1, "--no-progress",
    )  # fmt: skip
    assert code == 0
    shutil.copytree(a, b)
    config = json.loads((b / "config.json").read_text())
    config["env"]["kwargs"].update(height=9, width=9)
    (b / "config.json").write_text(json.dumps(config))
    write_curves(a)
    write_curves(b)
    return a, b


def snapshot(*folders: Path) -> dict:
    return {p: p.read_bytes() for f in folders for p in sorted(f.rglob("*")) if p.is_file()}


def test_report_on_two_tasks_with_curves(suite, tmp_path):
    before = snapshot(*suite)
    out = tmp_path / "report"
    proc = rlimm("report", *suite, "--out", out, *REFERENCE, "--reps", 50, "--seed", 1)
    assert proc.returncode == 0, proc.stderr
    assert snapshot(*suite) == before  # the input folders are never written
    assert sorted(p.name for p in out.iterdir()) == [
        "aggregates.png", "consistency.png", "curves.png", "curves_by_task.png", "profiles.png",
        "random.json", "report.md", "scores.csv",
    ]  # fmt: skip
    md = (out / "report.md").read_text()
    for line in ("| rlimm/ToroidalGrid-v0 (grid11) |", "| rlimm/ToroidalGrid-v0 (grid9) |"):
        assert line in md
    assert md.count("| --reference |") == 2
    assert "| imm | 2 | 6 |" in md and "| imm | naive | 2 |" in md and "*teacher (fib-argmax)*" in md
    for png in ("aggregates.png", "profiles.png", "curves.png", "consistency.png"):
        assert f"]({png})" in md
    assert "Left out" not in md
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 18 and set(scores["algorithm"]) == {"none", "naive", "imm"}
    random = json.loads((out / "random.json").read_text())["tasks"]
    assert [t["seeds"] for t in random] == [[0, 1, 2], [0, 1, 2]]
    task = scores[scores["task"].str.contains("grid11")]
    r, ref = random[0]["mean"], 20.0
    assert task["normalised"].to_numpy() == pytest.approx((task["score"].to_numpy() - r) / (ref - r))


def test_reference_score_of_the_config_and_the_random_cache(suite, tmp_path, capsys):
    a, _ = suite
    folder = tmp_path / "grid"
    shutil.copytree(a, folder)
    (folder / "curves.csv").unlink()
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "reference_score": 25.0}))
    out = tmp_path / "report"
    assert main(["report", str(folder), "--out", str(out), "--reps", "20"]) == 0
    md = (out / "report.md").read_text()
    assert "| 25 | reference_score of the config |" in md
    assert "No learning curves: no curves.csv in" in md and not (out / "curves.png").exists()
    # A second report into the same OUT reuses the random policy's scores cached there.
    cache = json.loads((out / "random.json").read_text())
    cache["tasks"][0]["scores"] = [5.0, 5.0, 5.0]
    (out / "random.json").write_text(json.dumps(cache))
    assert main(["report", str(folder), "--out", str(out), "--reps", "20"]) == 0
    assert "| 5.000 | 25 |" in (out / "report.md").read_text()


def test_a_folder_still_being_written_is_reported_with_the_runs_it_lacks(suite, tmp_path):
    a, _ = suite
    folder = tmp_path / "partial"
    shutil.copytree(a, folder)
    lines = (folder / "results.csv").read_text().splitlines()
    kept = [ln for ln in lines if not (ln.startswith("imm,") and ",50,1," in ln)]
    assert len(kept) == len(lines) - 1
    (folder / "results.csv").write_text("\n".join(kept) + "\n")
    out = tmp_path / "report"
    assert main(["report", str(folder), "--out", str(out), *REFERENCE, "--reps", "20"]) == 0
    md = (out / "report.md").read_text()
    assert "**Left out**" in md and "method=imm budget=50 λ ratio=0.2: seeds 1" in md
    assert "| imm | 1 | 2 |" in md


def _bad(suite: tuple[Path, Path], tmp_path: Path, case: str) -> tuple[list[str], str]:
    a, b = suite
    if case == "no results":
        empty = tmp_path / "empty"
        empty.mkdir()
        return [str(empty), *REFERENCE], "has no results.csv"
    if case == "no reference":
        return [str(a), str(b)], "has no reference score"
    if case == "curves missing":
        c = tmp_path / "nocurves"
        shutil.copytree(a, c)
        (c / "curves.csv").unlink()
        return [str(a), str(c), *REFERENCE, "--curves"], "--curves: no curves.csv in"
    if case == "bad reference":
        return [str(a), "--reference", "20"], "--reference: expected ENV=SCORE"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["no results", "no reference", "curves missing", "bad reference"])
def test_bad_input_one_line_exit_2_nothing_written(suite, tmp_path, capsys, case):
    before = snapshot(*suite)
    args, message = _bad(suite, tmp_path, case)
    out = tmp_path / "report"
    assert main(["report", *args, "--out", str(out), "--reps", "20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlimm: error: ") and err.count("\n") == 1 and message in err
    assert not out.exists() and snapshot(*suite) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]


def test_no_reference_names_the_task_and_how_to_set_it(suite, tmp_path, capsys):
    a, _ = suite
    assert main(["report", str(a), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "rlimm/ToroidalGrid-v0" in err and "--reference rlimm/ToroidalGrid-v0=SCORE" in err
    assert "reference_score" in err


def test_out_must_not_overlap_an_input_or_hold_something_else(suite, tmp_path, capsys):
    a, _ = suite
    before = snapshot(a)
    assert main(["report", str(a), "--out", str(a / "report"), *REFERENCE]) == 2
    assert "overlaps the input folder" in capsys.readouterr().err
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert main(["report", str(a), "--out", str(other), *REFERENCE]) == 2
    assert "holds something else than a report" in capsys.readouterr().err
    assert (other / "keep.txt").read_text() == "mine" and snapshot(a) == before


def test_curves_of_other_budgets_are_left_out(suite, tmp_path):
    from rlimm.rl.result_folders import load_folder

    a, _ = suite
    folder = tmp_path / "budgets"
    shutil.copytree(a, folder)
    curves = pd.read_csv(folder / "curves.csv", keep_default_na=False)
    both = pd.concat([curves.assign(budget=50), curves.assign(budget=25, score=99.0)])
    both.to_csv(folder / "curves.csv", index=False)
    loaded = load_folder(folder)
    assert set(loaded.curves["budget"]) == {50} and len(loaded.curves) == len(curves)
    assert loaded.curves["score"].max() < 99


def test_tasks_with_different_run_counts_are_truncated_to_the_common_count(suite, tmp_path):
    a, b = suite
    partial = tmp_path / "grid9"
    shutil.copytree(b, partial)
    lines = (partial / "results.csv").read_text().splitlines()
    (partial / "results.csv").write_text(
        "\n".join(ln for ln in lines if not (ln.startswith("imm,") and ",50,2," in ln)) + "\n"
    )
    out = tmp_path / "report"
    assert main(["report", str(a), str(partial), "--out", str(out), *REFERENCE, "--reps", "20"]) == 0
    md = (out / "report.md").read_text()
    assert "**Runs left out of the statistics**" in md
    assert (
        "- imm: the tasks have different numbers of runs (rlimm/ToroidalGrid-v0 (grid11): 3, "
        "rlimm/ToroidalGrid-v0 (grid9): 2); its statistics use the 2 runs of the lowest seeds of each task."
    ) in md
    assert "| imm | 2 | 5 |" in md  # the table still counts every run


def test_compare_records_the_reference_score_for_report_without_tying_the_folder_to_it(tmp_path):
    out = tmp_path / "ref"
    args = ["compare", ROOT / "configs/grid_quick.yaml", "--out", out, "--seeds", 1, "--budgets", 2]
    args += ["--methods", "none", "--jobs", 1, "--no-progress"]
    assert run_in_process(*args) == 0
    assert "reference_score" not in json.loads((out / "config.json").read_text())
    # Resuming the folder with a reference score: still the same experiment, and the score is recorded.
    assert run_in_process(*args, "--set", "reference_score=25") == 0
    assert json.loads((out / "config.json").read_text())["reference_score"] == 25.0
    report = tmp_path / "report"
    assert main(["report", str(out), "--out", str(report), "--reps", "20"]) == 0
    assert "| 25 | reference_score of the config |" in (report / "report.md").read_text()


def variant(
    source: Path, folder: Path, ratio: float | None = None, schedule: str = "constant", none: bool = True
) -> Path:
    """A copy of the compare folder ``source`` at ``folder``, its regularised runs (results and curves)
    recorded with λ ratio ``ratio`` and its config with λ schedule ``schedule``; without ``none``'s
    runs unless ``none`` (as a suite's decaying folder)."""
    shutil.copytree(source, folder)
    for name in ("results.csv", "curves.csv"):
        table = pd.read_csv(folder / name, keep_default_na=False)
        if ratio is not None:
            table.loc[table["method"] != "none", "lambda_ratio"] = ratio
        if "lambda_schedule" in table.columns:
            table["lambda_schedule"] = schedule
        if not none:
            table = table[table["method"] != "none"]
        table.to_csv(folder / name, index=False)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "lambda_schedule": schedule}))
    return folder


def report_rows(out: Path) -> list[str]:
    """The algorithms of report.md's table of final scores (not the teacher's and random policy's rows)."""
    md = (out / "report.md").read_text()
    table = md.split("## Final scores (normalised)")[1].split("\n\n")[1]
    labels = [line.split(" | ")[0].lstrip("| ") for line in table.splitlines()[2:]]
    return [label for label in labels if not label.startswith("*")]


def test_two_folders_of_one_task_with_different_ratios_are_labelled_apart(suite, tmp_path):
    a, _ = suite
    low = variant(a, tmp_path / "grid_low", ratio=0.5)
    high = variant(a, tmp_path / "grid_high", ratio=0.8)
    out = tmp_path / "report"
    assert main(["report", str(low), str(high), "--out", str(out), *REFERENCE, "--reps", "20"]) == 0
    rows = report_rows(out)
    assert rows == [
        "none", "naive (λ ratio 0.5)", "naive (λ ratio 0.8)", "imm (λ ratio 0.5)", "imm (λ ratio 0.8)",
    ]  # fmt: skip
    md = (out / "report.md").read_text()
    assert "| imm (λ ratio 0.5) | 1 | 3 |" in md and "| imm (λ ratio 0.8) | 1 | 3 |" in md
    # Like with like: imm against naive at the same ratio only; each against none.
    assert "| imm (λ ratio 0.5) | naive (λ ratio 0.5) | 1 |" in md
    assert "| imm (λ ratio 0.8) | naive (λ ratio 0.8) | 1 |" in md
    assert "| imm (λ ratio 0.8) | naive (λ ratio 0.5)" not in md
    assert "| imm (λ ratio 0.8) − none | 3 |" in md and "| imm (λ ratio 0.5) − imm" not in md
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["algorithm"]) == {
        "none", "naive (λ ratio 0.5)", "naive (λ ratio 0.8)", "imm (λ ratio 0.5)", "imm (λ ratio 0.8)",
    }  # fmt: skip


def test_three_schedules_give_three_rows_per_regularised_method(suite, tmp_path):
    a, _ = suite
    folders = [
        variant(a, tmp_path / "grid", schedule="constant"),
        variant(a, tmp_path / "grid_decay", schedule="linear_decay", none=False),
        variant(a, tmp_path / "grid_trust", schedule="trust", none=False),
    ]
    out = tmp_path / "report"
    assert main(["report", *map(str, folders), "--out", str(out), *REFERENCE, "--reps", "20"]) == 0
    rows = report_rows(out)
    schedules = ("constant", "linear_decay", "trust")
    assert rows == ["none"] + [f"{m} ({s})" for m in ("naive", "imm") for s in schedules]
    md = (out / "report.md").read_text()
    for s in schedules:
        # One task: imm against naive of the same schedule, and against none (which has no schedule).
        assert f"| imm ({s}) | naive ({s}) | 1 |" in md and f"| imm ({s}) | none | 1 |" in md
        assert f"| imm ({s}) − naive ({s}) | 3 |" in md and f"| naive ({s}) − none | 3 |" in md
    assert "| imm (trust) | naive (constant)" not in md and "| imm (linear_decay) | naive (trust)" not in md
    assert (out / "curves_by_task.png").exists() and "dotted: `trust`" in md
