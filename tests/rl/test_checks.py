"""check_against_env: what a config asks of its environment is refused, in one line naming the key,
before any teacher is built, by every command (train, compare, tune, suite, teacher)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import rlimm.rl.teacher_builder as builder
from rlimm.cli import main
from rlimm.common.config import parse_mapping
from rlimm.errors import RlimmError
from rlimm.rl.checks import check_against_env
from rlimm.rl.config import CompareConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[2]
#: A trained teacher: building it would train PPO for minutes.
CARTPOLE = {
    "name": "c",
    "env": {"id": "CartPole-v1"},
    "restriction": {"visible": ["theta", "theta_dot"]},
    "teacher": {"solver": "trained", "algo": "ppo", "timesteps": 100000},
    "algo": {"name": "ppo", "kwargs": {"n_steps": 64}},
    "methods": ["none", "imm"],
    "budgets": [128],
    "seeds": 1,
}


@pytest.fixture
def no_teacher(monkeypatch):
    """Any teacher built fails the test: the checks must come first."""

    def never(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a teacher was built before the config was checked against its env")

    monkeypatch.setattr(builder, "build_teacher", never)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"algo": {"name": "ppo", "kwargs": {"n_stepz": 64}}}, "n_stepz"),
        ({"algo": {"name": "sac"}}, "sac needs a Box"),
        ({"restriction": {"visible": ["omega"]}}, "omega"),
        ({"induction": {"belief": "on_policy"}}, "on_policy"),
    ],
)
def test_the_config_is_refused_against_its_env_without_a_teacher(no_teacher, change, message):
    config = parse_mapping(CompareConfig, {**CARTPOLE, **change}, "test")
    with pytest.raises(RlimmError, match=message):
        check_against_env(config)


def test_a_good_config_passes_and_gives_its_restriction(no_teacher):
    restriction = check_against_env(parse_mapping(CompareConfig, CARTPOLE, "test"))
    assert restriction is not None and restriction.describe()
    train = parse_mapping(TrainConfig, {k: CARTPOLE[k] for k in ("env", "algo")}, "test")
    assert check_against_env(train) is None  # no restriction: nothing the teacher would see


def _write(tmp_path: Path, data: dict, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _one_line_error(capsys, key: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rlimm: error:") and key in err[0], err


def test_compare_refuses_a_bad_algorithm_argument_before_training_its_teacher(tmp_path, capsys, no_teacher):
    bad = _write(tmp_path, {**CARTPOLE, "algo": {"name": "ppo", "kwargs": {"n_stepz": 64}}})
    out = tmp_path / "out"
    assert main(["compare", str(bad), "--out", str(out), "--jobs", "1", "--no-progress"]) == 2
    _one_line_error(capsys, "n_stepz")
    assert not out.exists()


def test_train_refuses_a_bad_algorithm_argument_before_training_its_teacher(tmp_path, capsys, no_teacher):
    data = {k: CARTPOLE[k] for k in ("env", "restriction", "teacher")}
    bad = _write(tmp_path, {**data, "algo": {"name": "ppo", "kwargs": {"n_stepz": 64}}, "regularizer": "imm"})
    out = tmp_path / "run"
    assert main(["train", "-conf", str(bad), "--out", str(out), "--no-progress"]) == 2
    _one_line_error(capsys, "n_stepz")
    assert not out.exists()


def test_teacher_refuses_a_bad_config_before_training_the_teacher(tmp_path, capsys, no_teacher):
    bad = _write(tmp_path, {**CARTPOLE, "restriction": {"visible": ["theta", "omega"]}})
    out = tmp_path / "t.pt"
    assert main(["teacher", "-conf", str(bad), "-o", str(out)]) == 2
    _one_line_error(capsys, "omega")
    assert not out.exists()


def test_suite_refuses_a_bad_task_naming_it_before_any_task_runs(tmp_path, capsys, no_teacher):
    _write(tmp_path, {**CARTPOLE, "name": "good", "reference_score": 500}, "good.yaml")
    bad = {
        **CARTPOLE,
        "name": "bad",
        "reference_score": 500,
        "algo": {"name": "ppo", "kwargs": {"n_stepz": 1}},
    }
    _write(tmp_path, bad, "bad.yaml")
    suite = _write(tmp_path, {"tasks": ["good.yaml", "bad.yaml"]}, "suite.yaml")
    out = tmp_path / "out"
    assert main(["suite", str(suite), "--out", str(out), "--jobs", "1", "--no-progress"]) == 2
    _one_line_error(capsys, "bad.yaml")
    assert not (out / "good").exists()
