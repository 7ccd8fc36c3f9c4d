"""A comparison keeps its trained teacher (``teacher.pt``): resuming reads it instead of training it
again, with the same results as the teacher trained afresh."""

from pathlib import Path

import pytest

from rlimm.errors import RlimmError
from rlimm.rl import comparison
from rlimm.rl.comparison import read_results, run_matrix
from rlimm.rl.config import RunSpec, load_compare_config
from rlimm.rl.runs import run_budgets
from rlimm.rl.teacher_builder import make_teacher

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "cartpole_cart_hidden.yaml"
SMALL = {
    "budgets": [256],
    "seeds": 1,
    "methods": ["imm"],
    "lambda_ratio": 0.5,
    "teacher": {"timesteps": 256},
    "algo": {"kwargs": {"n_steps": 128, "batch_size": 64, "n_epochs": 1}},
    "evaluation": {"episodes": 2},
}


def test_a_resumed_comparison_reads_its_trained_teacher(tmp_path, monkeypatch):
    config = load_compare_config(CONFIG, SMALL)
    run_matrix(config, tmp_path, jobs=1, progress=False)
    assert (tmp_path / "teacher.pt").exists()
    fresh = make_teacher(config)

    def no_training(config):  # noqa: ANN001, ANN202
        raise AssertionError("the teacher was trained again")

    monkeypatch.setattr(comparison, "make_teacher", no_training)
    more = config.model_copy(update={"seeds": 2})
    run_matrix(more, tmp_path, jobs=1, progress=False)
    rows = {int(r["seed"]): float(r["score"]) for r in read_results(tmp_path / "results.csv")[0]}
    assert sorted(rows) == [0, 1]
    # The saved teacher trains seed 1 exactly as the teacher trained afresh does.
    expected = run_budgets(more, [RunSpec("imm", 256, 1, 0.5)], teacher=fresh)[0]["score"]
    assert rows[1] == expected
    # teacher.json is scored again for the seeds the comparison now has.
    assert len(comparison.json.loads((tmp_path / "teacher.json").read_text())["scores"]) == 2


def test_a_folder_of_another_teacher_is_refused_not_read(tmp_path):
    config = load_compare_config(CONFIG, SMALL)
    run_matrix(config, tmp_path, jobs=1, progress=False)
    other = load_compare_config(CONFIG, {**SMALL, "teacher": {"timesteps": 300}})
    assert comparison.saved_teacher(tmp_path, other) is None
    with pytest.raises(RlimmError, match="different experiment"):
        run_matrix(other, tmp_path, jobs=1, progress=False)
