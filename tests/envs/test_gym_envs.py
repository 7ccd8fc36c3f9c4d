"""``rlimm train`` on stock gymnasium environments, as a new user would run it: a few hundred steps
with no regulariser and with IMM, then an evaluation to the env's own end; bad restrictions and
continuous actions with a regulariser get one line and exit 2."""

import json

import gymnasium as gym
import pytest

from rlimm.cli import main

FAST = ["-params", "n_steps:64", "batch_size:32", "n_epochs:1", "--eval-episodes", "2", "--no-progress"]
TEACHER = "trained:timesteps=128,kwargs={n_steps: 64}"

CASES = {
    "Taxi-v4": (["--visible", "taxi_row", "taxi_col", "passenger", "--teacher", "fib"], []),
    "CartPole-v1": (["--visible", "theta", "theta_dot", "--teacher", TEACHER], []),
    "CartPole-v1-novel": (["--visible", "novel", "--teacher", TEACHER, "--induction", "marginal:k=4"], []),
    "FrozenLake-v1": (["--visible", "row", "--teacher", "qmdp"], []),
    "CliffWalking-v1": (["--visible", "row", "--teacher", "fib"], ["--eval-steps", "50"]),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("regularizer", ["none", "imm"])
def test_train_then_evaluate_to_the_episodes_end(tmp_path, capsys, case, regularizer):
    env = case.removesuffix("-novel")
    imm_args, extra = CASES[case]
    args = ["train", "--env", env, "-n", "128", "-f", str(tmp_path), *FAST, *extra]
    if regularizer == "imm":
        args += ["--regularizer", "imm", *imm_args]
    assert main(args) == 0, capsys.readouterr().err
    (run,) = tmp_path.glob("ppo/*")
    result = json.loads((run / "result.json").read_text())
    assert result["timesteps"] == 128 and not result["interrupted"]
    assert isinstance(result["mean_return"], float)
    assert (run / "model.zip").is_file()
    if regularizer == "imm":
        assert list(run.glob("teacher.*"))


@pytest.mark.parametrize("regularizer", ["none", "imm"])
def test_continuous_actions_train_with_and_without_a_regularizer(tmp_path, capsys, regularizer):
    args = ["train", "--env", "Pendulum-v1", "-n", "128", "-f", str(tmp_path), *FAST]
    if regularizer == "imm":  # a Gaussian teacher on (cos θ, sin θ), the KL to the mixture by mc
        args += ["--regularizer", "imm", "--visible", "novel", "--teacher", "trained:timesteps=64"]
    assert main(args) == 0, capsys.readouterr().err
    run = next(tmp_path.glob("ppo/*"))
    result = json.loads((run / "result.json").read_text())
    assert result["mean_return"] < 0  # Pendulum's returns are negative; 200-step episodes
    if regularizer == "imm":
        assert (run / "teacher.pt").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "CartPole-v1", "--visible", "7"], "out of range"),
        (["--env", "CartPole-v1", "--visible", "2", "2"], "repeated"),
        (["--env", "CartPole-v1", "--visible", "speed"], "speed"),
        (["--env", "Taxi-v4", "--visible", "0", "1"], "Taxi-v4"),
        (["--env", "CartPole-v1", "--visible", "theta", "--induction", "knn:k=0"], "'induction.k'"),
        (["--env", "CartPole-v1", "--visible", "theta", "--induction", "exact"], "can be enumerated"),
        (
            ["--env", "Pendulum-v1", "--visible", "novel", "--teacher", "trained:algo=sac,timesteps=64"],
            "is a squashed (SAC) Gaussian but PPO's Gaussian acts on the raw action",
        ),
        (
            ["--env", "Pendulum-v1", "--visible", "novel", "--induction", "knn:samples=0"],
            "'induction.samples'",
        ),
        (["--env", "rlimm/ToroidalGrid-v0", "--env-kwargs", "height:0"], "height"),
        (["--env", "CartPole-v1", "-params", "learning_rate:abc"], "learning_rate"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, message):
    logs = tmp_path / "logs"
    full = ["train", *args, "-n", "64", "-f", str(logs), "--no-progress"]
    if "--visible" in args:
        full += ["--regularizer", "imm"]
    code = main(full)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("rlimm: error:") and message in err[0], err
    assert not logs.exists()


def test_an_unwritable_log_folder_is_one_line(tmp_path, capsys):
    # A log folder that cannot be created (under a file; a read-only file system fails the same way).
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["train", "--env", "CartPole-v1", "-n", "64", "-f", str(blocker / "logs"), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("rlimm: error:")]
    assert code == 2 and errors == err[-1:] and "cannot write" in err[-1], err
    assert blocker.read_text() == ""


def test_an_env_whose_simulator_is_not_installed_is_one_line(tmp_path, capsys, monkeypatch):
    # MuJoCo's envs import their simulator (and imageio) only when made: without the extra, an ImportError.
    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'imageio'")

    monkeypatch.setattr(gym, "make", missing)
    logs = tmp_path / "logs"
    code = main(["train", "--env", "InvertedPendulum-v5", "-n", "64", "-f", str(logs), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("rlimm: error: cannot make environment 'InvertedPendulum-v5': No module named")
    assert "pip install -e '.[mujoco]'" in err[0] and not logs.exists()
