"""`rlimm teacher` end to end: build, save, reuse in `train` and `compare`; bad input."""

import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from rlimm.agents.teachers import load_model, load_teacher, pomdp_teacher
from rlimm.cli import main

from cli_helpers import rlimm

ROOT = Path(__file__).resolve().parents[2]


def test_exact_teacher_file_equals_the_solver_and_serves_train_and_compare(
    tmp_path, grid_env, grid_restriction
):
    path = tmp_path / "fib_x.npz"
    res = rlimm("teacher", "qmdp:policy=softmax,temperature=0.5", "--visible", "x", "-o", path)
    assert res.returncode == 0, res.stderr
    assert f"saved {path}" in res.stdout
    expected = pomdp_teacher(grid_env, grid_restriction, "qmdp", "softmax", 0.5)
    saved = load_teacher(path)
    np.testing.assert_array_equal(saved.teacher.table, expected.table)
    assert saved.meta["visible"] == ["x"] and saved.meta["solver"] == "qmdp"

    # Reused by train ...
    res = rlimm(
        "train", "--algo", "a2c", "--regularizer", "imm", "--visible", "x", "--teacher", path, "-n", "10",
        "-f", tmp_path / "logs", "--no-progress",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    # ... and by compare (solver: file), where the results name the file.
    config = yaml.safe_load((ROOT / "configs" / "grid_quick.yaml").read_text())
    config["teacher"] = {"solver": "file", "path": str(path)}
    cfg = tmp_path / "cmp.yaml"
    cfg.write_text(yaml.safe_dump(config))
    out = tmp_path / "cmp"
    args = ["--out", out, "--seeds", "1", "--budgets", "2", "--methods", "imm", "--jobs", "1"]
    args.append("--no-progress")
    res = rlimm("compare", cfg, *args)
    assert res.returncode == 0, res.stderr
    with open(out / "results.csv", newline="") as f:
        assert [r["teacher"] for r in csv.DictReader(f)] == ["file:fib_x.npz"]


def test_trained_teacher_saves_its_model_beside_the_table(tmp_path):
    path = tmp_path / "a2c.npz"
    res = rlimm("teacher", "trained:algo=a2c,timesteps=50,policy=softmax", "--visible", "y", "-o", path)
    assert res.returncode == 0, res.stderr
    saved = load_teacher(path)
    assert saved.teacher.table.shape == (11, 4) and saved.meta["solver"] == "trained"
    model = load_model(path.with_suffix(".zip"))
    assert model.observation_space == gym.spaces.Discrete(11)


def test_a_config_file_gives_env_restriction_and_teacher(tmp_path):
    path = tmp_path / "t.npz"
    code = main(["teacher", "-conf", str(ROOT / "configs" / "grid_quick.yaml"), "-o", str(path)])
    assert code == 0
    assert load_teacher(path).meta["solver"] == "fib"


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t: ["fib", "-o", str(t / "t.npz")], "--visible"),
        (lambda t: ["fib", "--visible", "x", "-o", str(t / "t.json")], "must end in .npz"),
        (lambda t: ["oracle", "--visible", "x", "-o", str(t / "t.npz")], "'teacher.solver'"),
        (lambda t: ["fib:temp=2", "--visible", "x", "-o", str(t / "t.npz")], "'teacher.temp': unknown key"),
        (lambda t: ["fib", "--visible", "z", "-o", str(t / "t.npz")], "'z'"),
        (lambda t: ["fib", "--env", "CartPole-v1", "--visible", "x", "-o", str(t / "t.npz")], "CartPole"),
        (
            lambda t: ["induced_optimal", "--env", "CartPole-v1", "--visible", "x", "-o", str(t / "t.pt")],
            "neither tabular_model() nor a transition table",
        ),
        (lambda t: ["-conf", str(t / "missing.yaml"), "-o", str(t / "t.npz")], "config file not found"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, make_args, message):
    code = main(["teacher", *make_args(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("rlimm: error:"), err
    assert message in err[0]
    assert list(tmp_path.iterdir()) == []


def test_an_existing_teacher_file_is_kept_unless_forced(tmp_path, capsys):
    path = tmp_path / "t.npz"
    path.write_bytes(b"precious")
    assert main(["teacher", "fib", "--visible", "x", "-o", str(path)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert path.read_bytes() == b"precious"
    assert main(["teacher", "fib", "--visible", "x", "-o", str(path), "--force"]) == 0
    assert load_teacher(path).teacher.n_contexts == 11


@pytest.mark.parametrize(
    ("argv", "wrong", "right"),
    [
        (
            ["trained:timesteps=100000", "--env", "CartPole-v1", "--visible", "theta", "theta_dot"],
            ".npz",
            ".pt",
        ),
        (["fib", "--visible", "x"], ".pt", ".npz"),
    ],
)
def test_the_wrong_suffix_is_refused_before_the_teacher_is_built(
    tmp_path, capsys, monkeypatch, argv, wrong, right
):
    import rlimm.rl.teacher_builder as builder

    def never(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the teacher was built before the cheap suffix check")

    monkeypatch.setattr(builder, "build_teacher", never)
    out = tmp_path / f"teacher{wrong}"
    assert main(["teacher", *argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"use -o {out.with_suffix(right)}" in err[0]
    assert not out.exists()


# ------------------------------------------------------------------ induced teachers: what they are made from


def test_induced_optimal_records_its_expert_and_the_hidden_part_information(tmp_path, capsys):
    hidden = tmp_path / "hidden.npz"
    argv = ["teacher", "induced_optimal:discount=0.95", "--env", "Taxi-v4", "--visible"]
    assert main([*argv, "taxi_row", "taxi_col", "passenger", "-o", str(hidden)]) == 0
    assert "its expert (value_iteration" in capsys.readouterr().out
    about = load_teacher(hidden).teacher.about
    assert about["expert"]["score"] > 0  # the optimal taxi delivers its passengers
    assert about["hidden_kl"] > 0.1  # the destination decides the action once the passenger is in
    # Nothing hidden: each context is one state, the induced policy is the optimal one, KL = 0.
    every = tmp_path / "every.npz"
    assert main([*argv, "taxi_row", "taxi_col", "passenger", "destination", "-o", str(every)]) == 0
    assert load_teacher(every).teacher.about["hidden_kl"] == pytest.approx(0.0, abs=1e-12)


def test_induced_expert_saves_its_expert_beside_it_with_its_score(tmp_path, capsys):
    config = {
        "name": "t",
        "env": {"id": "CartPole-v1"},
        "restriction": {"visible": ["x", "theta"]},
        "teacher": {
            "solver": "induced_expert", "algo": "ppo", "timesteps": 256, "samples": 300,
            "kwargs": {"n_steps": 64, "batch_size": 32, "n_epochs": 1},
        },
        "algo": {"name": "ppo"},
        "methods": ["imm"],
        "budgets": [256],
        "budget_unit": "timesteps",
        "evaluation": {"episodes": 3},
    }  # fmt: skip
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    out = tmp_path / "t.pt"
    assert main(["teacher", "-conf", str(cfg), "-o", str(out)]) == 0
    assert "its expert (ppo, 256 steps)" in capsys.readouterr().out
    saved = load_teacher(out)
    about = saved.teacher.about
    assert about["expert"]["timesteps"] == 256 and about["expert"]["episodes"] == 3
    assert about["hidden_kl"] >= 0 and about["hidden_kl_states"] == 300
    # The expert beside it serves as the teacher's `path`: the same expert, not trained again.
    assert load_model(out.with_suffix(".zip")).num_timesteps == 256


def test_an_expert_of_another_observation_space_is_refused(tmp_path, capsys):
    from stable_baselines3 import PPO

    expert = tmp_path / "pendulum.zip"
    PPO("MlpPolicy", gym.make("Pendulum-v1"), n_steps=64).save(expert)
    config = {
        "name": "t",
        "env": {"id": "CartPole-v1"},
        "restriction": {"visible": ["x", "theta"]},
        "teacher": {"solver": "induced_expert", "path": str(expert)},
        "algo": {"name": "ppo"},
        "methods": ["imm"],
        "budgets": [256],
        "budget_unit": "timesteps",
    }
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    out = tmp_path / "t.pt"
    assert main(["teacher", "-conf", str(cfg), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rlimm: error: 'teacher.path'") and "observes" in err[0], err
    assert not out.exists()
