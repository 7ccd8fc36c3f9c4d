"""`rlimm train` end to end through the real entry point: run folder, overrides, reload, bad input."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import rlimm.envs as E
from rlimm.agents import PPO
from rlimm.agents.teachers import TabularTeacher, load_teacher, save_teacher
from rlimm.cli import main

from cli_helpers import rlimm

FAST = ["-params", "n_steps:32", "batch_size:32", "n_epochs:1", "--no-progress"]


def test_train_saves_model_teacher_config_command_and_tensorboard(tmp_path):
    args = ["train", "--algo", "ppo", "--regularizer", "imm", "--visible", "x", "--teacher", "fib"]
    args += ["-n", "64", "--seed", "3", "--eval-freq", "32", "--save-freq", "32", "-tb", tmp_path / "tb"]
    args += ["-f", tmp_path / "logs", *FAST]
    res = rlimm(*args)
    assert res.returncode == 0, res.stderr
    run = tmp_path / "logs" / "ppo" / "rlimm-ToroidalGrid-v0-imm_1"
    assert f"saved to {run}" in res.stdout
    for name in ["model.zip", "teacher.npz", "config.yaml", "command.txt", "result.json", "evaluations.npz"]:
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "model_32_steps.zip",
        "model_64_steps.zip",
    ]
    assert (run / "command.txt").read_text().startswith("rlimm train --algo ppo --regularizer imm")
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["algo"] == {
        "name": "ppo",
        "kwargs": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
        "n_envs": 1,
        "vec_env": "dummy",
        "hyperparams": "default",
        "normalize": False,
    }
    assert (config["regularizer"], config["seed"], config["restriction"]["visible"]) == ("imm", 3, ["x"])
    assert [p.name for p in (tmp_path / "tb").iterdir()] == ["PPO_imm_1"]
    result = json.loads((run / "result.json").read_text())
    assert result["timesteps"] == 64 and not result["interrupted"]

    # The saved teacher is the FIB teacher of the column, and the model loads with it and trains on.
    saved = load_teacher(run / "teacher.npz")
    assert saved.meta["visible"] == ["x"] and saved.meta["solver"] == "fib"
    assert saved.teacher.table.shape == (11, 4)
    model = PPO.load(run / "model.zip", env=gym.make(E.GRID_ID), teacher=saved.teacher)
    model.learn(32)

    # The resolved config reproduces the run: same seed, same final evaluation.
    res = rlimm("train", "-conf", run / "config.yaml", "-f", tmp_path / "logs", "--no-progress")
    assert res.returncode == 0, res.stderr
    again = json.loads((run.with_name("rlimm-ToroidalGrid-v0-imm_2") / "result.json").read_text())
    assert again["mean_return"] == result["mean_return"]


def test_flags_override_the_conf_file_and_teacher_flag_replaces_its_teacher(tmp_path):
    conf = tmp_path / "train.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "algo": {"name": "a2c", "kwargs": {"n_steps": 8, "learning_rate": 0.01}},
                "restriction": {"visible": ["x"]},
                "teacher": {"solver": "qmdp", "discount": 0.8},
                "regularizer": "naive",
                "n_timesteps": 16,
            }
        )
    )
    res = rlimm(
        "train", "-conf", conf, "-params", "learning_rate:0.001", "--teacher", "fib:policy=softmax",
        "-n", "24", "-f", tmp_path / "logs", "--no-progress",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    config = yaml.safe_load((tmp_path / "logs/a2c/rlimm-ToroidalGrid-v0-naive_1/config.yaml").read_text())
    assert config["algo"]["kwargs"] == {"n_steps": 8, "learning_rate": 0.001}
    assert config["teacher"]["solver"] == "fib" and config["teacher"]["policy"] == "softmax"
    assert config["teacher"]["discount"] == 0.9  # the file's qmdp settings do not leak into fib
    assert config["n_timesteps"] == 24


def _teacher_file(tmp_path, visible, contexts=11):
    table = np.full((contexts, 4), 0.25)
    return str(save_teacher(TabularTeacher(table, "flat"), tmp_path / "t.npz", {"visible": visible}))


def _malformed(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("algo: {name: ppo\n")
    return str(path)


def _unknown_key(tmp_path):
    path = tmp_path / "unknown.yaml"
    path.write_text("algo: {name: ppo}\nlearning_rate: 0.1\n")
    return str(path)


IMM = ["--regularizer", "imm", "--visible", "x"]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t: ["--algo", "ddpg"], "'algo.name'"),
        (lambda t: ["--algo", "sac"], "'algo.name': sac needs a Box (continuous) action space"),
        (lambda t: ["--env", "NoSuchEnv-v9"], "NoSuchEnv-v9"),
        (lambda t: ["-params", "n_step:5"], "'algo.kwargs.n_step': not an argument of ppo"),
        (lambda t: ["-params", "n_steps"], "-params: expected key:value, got 'n_steps'"),
        (lambda t: ["--regularizer", "imm"], "needs restriction.visible"),
        (lambda t: ["--regularizer", "kd"], "'regularizer'"),
        (lambda t: [*IMM, "--lambda-ratio", "1"], "lambda ratio must lie in [0, 1)"),
        (lambda t: [*IMM, "--visible", "z"], "'z'"),
        (lambda t: [*IMM, "--teacher", "oracle"], "'teacher.solver'"),
        (lambda t: [*IMM, "--teacher", str(t / "missing.npz")], "teacher file not found"),
        (lambda t: [*IMM, "--teacher", str(t / "missing.zip")], "teacher model file not found"),
        (lambda t: [*IMM, "--teacher", _teacher_file(t, ["y"])], "built for visible fields ['y']"),
        (lambda t: [*IMM, "--teacher", _teacher_file(t, ["x"], 7)], "covers 7 visible contexts"),
        (lambda t: ["-conf", str(t / "missing.yaml")], "config file not found"),
        (lambda t: ["-conf", _malformed(t)], "malformed YAML"),
        (lambda t: ["-conf", _unknown_key(t)], "'learning_rate': unknown key"),
        (lambda t: ["-n", "0"], "'n_timesteps'"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, make_args, message):
    logs = tmp_path / "logs"
    code = main(["train", *make_args(tmp_path), "-f", str(logs), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("rlimm: error:"), err
    assert message in err[0]
    assert not logs.exists()


def test_usage_errors_are_one_line_exit_2(tmp_path):
    res = rlimm("train", "--n-timesteps", "many", "-f", tmp_path / "logs")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "invalid int value: 'many'" in res.stderr
    assert not (tmp_path / "logs").exists()


def test_teacher_of_the_full_state_is_refused_through_the_console_script(tmp_path):
    import stable_baselines3 as sb3

    full = tmp_path / "full.zip"
    sb3.A2C("MlpPolicy", gym.make(E.GRID_ID), n_steps=4).save(full)
    res = rlimm("train", *IMM, "--teacher", full, "-f", tmp_path / "logs")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "observes Discrete(121)" in res.stderr
    assert not (tmp_path / "logs").exists()


def test_run_folders_number_up(tmp_path):
    from rlimm.common.config import parse_mapping
    from rlimm.rl.config import TrainConfig
    from rlimm.rl.training import new_run_dir

    config = parse_mapping(TrainConfig, {"algo": {"name": "a2c"}})
    first = new_run_dir(tmp_path, config)
    assert first == Path(tmp_path, "a2c", "rlimm-ToroidalGrid-v0-none_1")
    first.mkdir(parents=True)
    (first.parent / "rlimm-ToroidalGrid-v0-none_7").mkdir()
    assert new_run_dir(tmp_path, config).name == "rlimm-ToroidalGrid-v0-none_8"


def test_ctrl_c_saves_the_model_and_exits_130(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) stops training early: the model
    trained so far is saved and evaluated, and the exit code is 130."""
    import os
    import signal
    import subprocess
    import sys
    import time

    logs = tmp_path / "logs"
    cmd = [sys.executable, "-m", "rlimm", "train", "--algo", "reinforce", "-n", "100000000"]
    cmd += ["--regularizer", "imm", "--visible", "x", "--save-freq", "500", "-f", str(logs), "--no-progress"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list(logs.glob("*/*/checkpoints/*.zip")):  # training is under way
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    (run,) = logs.glob("reinforce/*")
    result = json.loads((run / "result.json").read_text())
    assert result["interrupted"] is True
    assert 500 <= result["timesteps"] < 100_000_000
    assert (run / "model.zip").is_file() and (run / "teacher.npz").is_file()
    assert "interrupted after" in out


def test_an_existing_out_folder_is_refused_before_the_teacher_is_trained(tmp_path, capsys, monkeypatch):
    import rlimm.rl.training as training
    from rlimm.cli import main

    def never(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("prepare (teacher training) ran before the cheap --out check")

    monkeypatch.setattr(training, "prepare", never)
    out = tmp_path / "run"
    out.mkdir()
    argv = ["train", "--env", "CartPole-v1", "--regularizer", "imm", "--visible", "x", "theta"]
    code = main([*argv, "--teacher", "trained:timesteps=100000", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--out:" in err[0] and "exists" in err[0]
