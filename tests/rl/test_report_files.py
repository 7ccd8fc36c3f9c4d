"""The report folder (:mod:`rlimm.rl.report_files`): where it may go, the random policy's cache,
scores.csv, and writing it whole or not at all."""

import pandas as pd
import pytest
from report_runs import hand_made_inputs

from rlimm.errors import RlimmError
from rlimm.rl.report_files import (
    RANDOM_SCORES,
    SCORE_COLUMNS,
    check_out,
    read_random_cache,
    write_folder,
    write_random,
    write_scores,
)


def test_out_may_not_overlap_an_input_nor_hold_anything_else(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for out in (data, data / "report", tmp_path):
        with pytest.raises(RlimmError, match="overlaps the input folder"):
            check_out(out, [data])
    (tmp_path / "file").write_text("x")
    with pytest.raises(RlimmError, match="is not a folder"):
        check_out(tmp_path / "file", [data])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(RlimmError, match="holds something else than a report"):
        check_out(tmp_path / "notes", [data])
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "report.md").write_text("# rlimm report\n")
    check_out(tmp_path / "old", [data])  # a previous report: replaced
    check_out(tmp_path / "new", [data])


def test_the_random_cache_round_trips_and_an_unreadable_one_is_ignored(tmp_path):
    assert read_random_cache(tmp_path) == []
    records = [{"task": "A", "seeds": [0], "scores": [1.5]}]
    write_random(tmp_path / RANDOM_SCORES, records)
    assert read_random_cache(tmp_path) == records
    (tmp_path / RANDOM_SCORES).write_text("{not json")
    assert read_random_cache(tmp_path) == []


def test_scores_csv_names_each_run_s_algorithm(tmp_path):
    write_scores(tmp_path / "scores.csv", hand_made_inputs().final)
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert list(scores.columns) == SCORE_COLUMNS and len(scores) == 18
    assert set(scores["algorithm"]) == {"none", "naive", "imm"}


def test_a_failed_write_leaves_the_previous_report_and_no_temporary_folder(tmp_path):
    out = tmp_path / "report"
    write_folder(out, lambda folder: (folder / "report.md").write_text("first\n"))
    assert (out / "report.md").read_text() == "first\n"

    def fail(folder):
        (folder / "report.md").write_text("half")
        raise RuntimeError("drawing failed")

    with pytest.raises(RuntimeError):
        write_folder(out, fail)
    assert (out / "report.md").read_text() == "first\n"
    write_folder(out, lambda folder: (folder / "scores.csv").write_text("a\n"))
    assert sorted(p.name for p in out.iterdir()) == ["scores.csv"]  # replaced whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
