"""`rlimm compare` end to end through the real entry point: outputs, resume, and bad input."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlimm.cli import main

from cli_helpers import config_variant, rlimm

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "grid_quick.yaml"
TINY = ["--seeds", "2", "--budgets", "2", "3", "--jobs", "1", "--no-progress"]


def write_config(tmp_path, **changes):
    return config_variant(QUICK, tmp_path, **changes)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_compare_writes_results_table_and_plot_and_resumes(tmp_path):
    out = tmp_path / "cmp"
    res = rlimm("compare", QUICK, "--out", out, *TINY)
    assert res.returncode == 0, res.stderr
    first = rows(out / "results.csv")
    # 3 methods × 2 budgets × 2 seeds, λ by the paper's rule (0.2 at these budgets), none at 0.
    assert len(first) == 12
    assert {r["method"] for r in first} == {"none", "naive", "imm"}
    assert {float(r["lambda_ratio"]) for r in first if r["method"] != "none"} == {0.2}
    assert {float(r["lambda_ratio"]) for r in first if r["method"] == "none"} == {0.0}
    for col in ["method", "algo", "budget", "seed", "lambda_ratio", "score"]:
        assert col in first[0]
    assert (out / "summary.md").read_text().count("|") > 10
    assert (out / "plot.png").stat().st_size > 10_000
    assert "| budget | none | naive | imm |" in res.stdout
    # The teacher's own score on the full env, one per seed, by the learners' evaluation protocol.
    import json

    from rlimm.rl.config import load_compare_config
    from rlimm.rl.environments import EVAL_SEED_OFFSET, evaluate, make_env, make_restriction
    from rlimm.rl.teacher_builder import TeacherActor, make_teacher

    record = json.loads((out / "teacher.json").read_text())
    assert record["teacher"] == "fib-argmax" and len(record["scores"]) == 2
    config = load_compare_config(QUICK)
    env = make_env(config.env)
    actor = TeacherActor(make_teacher(config), make_restriction(config, env), 1)
    by_hand = evaluate(actor, env, 10, 22, 1 + EVAL_SEED_OFFSET, False).mean()
    assert record["scores"][1] == pytest.approx(by_hand)
    assert "Teacher (fib-argmax) on the full env" in (out / "summary.md").read_text()

    # Interrupted run: the last row is lost and a torn line is left behind.
    lines = (out / "results.csv").read_text().splitlines()
    (out / "results.csv").write_text("\n".join(lines[:-3]) + "\n" + lines[-3][:15])
    res = rlimm("compare", QUICK, "--out", out, *TINY)
    assert res.returncode == 0, res.stderr
    resumed = rows(out / "results.csv")
    key = lambda r: (r["method"], r["budget"], r["seed"], r["lambda_ratio"])  # noqa: E731
    assert sorted(map(key, resumed)) == sorted(map(key, first))
    # Finished runs are kept as they were, and rerun ones reproduce exactly (same seed).
    score = {key(r): r["score"] for r in first}
    assert all(score[key(r)] == r["score"] for r in resumed)

    # Nothing left to do: the file does not change.
    before = (out / "results.csv").read_text()
    assert rlimm("compare", QUICK, "--out", out, *TINY).returncode == 0
    assert (out / "results.csv").read_text() == before


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t: [t / "missing.yaml"], "config file not found"),
        (lambda t: [_write(t, "name: [unclosed\n")], "malformed YAML"),
        (lambda t: [write_config(t, colour="blue")], "'colour': unknown key"),
        (
            lambda t: [write_config(t, **{"algo.kwargs": {"n_step": 50}})],
            "'algo.kwargs.n_step': not an argument of reinforce",
        ),
        (lambda t: [write_config(t, methods=["none", "kd"])], "'methods.1'"),
        (lambda t: [write_config(t, **{"algo.name": "ddpg"})], "'algo.name'"),
        (
            lambda t: [write_config(t, **{"algo.name": "sac"})],
            "'algo.name': sac needs a Box (continuous) action space",
        ),
        (lambda t: [write_config(t, **{"env.id": "NoSuchEnv-v9"})], "NoSuchEnv-v9"),
        (lambda t: [write_config(t, **{"restriction.visible": ["z"]})], "'z'"),
        (lambda t: [write_config(t, lambda_ratio=1.0)], "lambda ratio must lie in [0, 1)"),
        (lambda t: [QUICK, "--lambda-ratios", "-0.1"], "lambda ratio must lie in [0, 1)"),
        (lambda t: [write_config(t, budgets=[0])], "'budgets'"),
        (lambda t: [write_config(t, lambda_until=0)], "'lambda_until': Input should be greater than 0"),
        (lambda t: [write_config(t, lambda_until=1.5)], "'lambda_until': Input should be less than or equal"),
        (lambda t: [write_config(t, lambda_schedule="sometimes")], "'lambda_schedule'"),
        (lambda t: [write_config(t, **{"trust.fall": -1})], "'trust.fall': Input should be greater than 0"),
        (
            lambda t: [write_config(t, **{"trust.threshold": "high"})],
            "'trust.threshold': Input should be a valid",
        ),
        (lambda t: [QUICK, "--set", "trust.memory=-0.5"], "'trust.memory'"),
        (lambda t: [QUICK, "--set", "lambda_until=abc"], "'lambda_until'"),
        (lambda t: [write_config(t, teacher={"solver": "model", "path": str(t / "nope.zip")})], "not found"),
        (lambda t: [write_config(t, teacher={"solver": "fib", "path": "x.zip"})], "'path' does not apply"),
        (
            lambda t: [write_config(t, teacher={"solver": "model", "path": _full_state_model(t)})],
            "observes Discrete(121) but the restriction has 11",
        ),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, make_args, message):
    # In-process through the CLI's main(); the real entry point is exercised below and above.
    out = tmp_path / "out"
    code = main(["compare", *map(str, make_args(tmp_path)), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("rlimm: error:"), err
    assert message in err[0]
    assert not out.exists()


@pytest.mark.parametrize("flag", [["--jobs", "0"], ["--jobs", "two"], ["--seeds", "0"]])
def test_bad_flag_values_are_refused_by_the_parser(tmp_path, capsys, flag):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(QUICK), "--out", str(out), *flag])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert len(err) == 1 and f"argument {flag[0]}: expected a whole number >= 1" in err[0], err
    assert not out.exists()


def test_bad_input_through_the_console_script(tmp_path):
    out = tmp_path / "out"
    res = rlimm("compare", write_config(tmp_path, methods=["none", "kd"]), "--out", out)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "rlimm: error:" in res.stderr and "kd" in res.stderr
    assert not out.exists()


def _full_state_model(tmp_path):
    # A model of the *full* grid cannot serve as a restricted teacher of the column.
    import gymnasium as gym
    import stable_baselines3 as sb3

    import rlimm.envs as E

    path = tmp_path / "full.zip"
    sb3.A2C("MlpPolicy", gym.make(E.GRID_ID), n_steps=4).save(path)
    return str(path)


def _write(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


def test_results_folder_of_another_experiment_is_refused(tmp_path):
    out = tmp_path / "cmp"
    assert (
        rlimm(
            "compare",
            QUICK,
            "--out",
            out,
            "--seeds",
            "1",
            "--budgets",
            "1",
            "--methods",
            "none",
            "--jobs",
            "1",
            "--no-progress",
        ).returncode
        == 0
    )
    other = write_config(tmp_path, **{"teacher.solver": "qmdp"})
    res = rlimm(
        "compare", other, "--out", out, "--seeds", "1", "--budgets", "1", "--jobs", "1", "--no-progress"
    )
    assert res.returncode == 2
    assert "different experiment" in res.stderr and "teacher" in res.stderr


def _interrupt_after_rows(cmd, results, n_rows, sig):
    """Start ``cmd`` in its own process group and send ``sig`` to the group (as Ctrl-C in a terminal
    does) once ``results`` holds ``n_rows`` finished runs."""
    import signal
    import time

    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # A shell's background jobs inherit SIGINT ignored; a terminal's Ctrl-C reaches a process that
        # handles it, so restore the default handling (Python then turns it into KeyboardInterrupt).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) > n_rows:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the comparison finished before it could be interrupted"
    os.killpg(proc.pid, sig)
    proc.wait(timeout=60)
    return proc


INTERRUPTED = ["--seeds", "2", "--budgets", "3", "6", "--no-progress"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    assert rlimm("compare", QUICK, "--out", out, *INTERRUPTED, "--jobs", "2").returncode == 0
    return out


def test_compare_set_reaches_keys_that_have_a_flag_too_and_the_flag_wins(tmp_path):
    base = ["compare", QUICK, "--budgets", "2", "--methods", "none", "--jobs", "1"]
    res = rlimm(*base, "--out", tmp_path / "set", "--set", "seeds=2", "evaluation.episodes=2")
    assert res.returncode == 0, res.stderr
    assert _seeds(tmp_path / "set") == {0, 1}
    res = rlimm(
        *base, "--out", tmp_path / "flag", "--set", "seeds=3", "evaluation.episodes=2", "--seeds", "1"
    )
    assert res.returncode == 0, res.stderr
    assert _seeds(tmp_path / "flag") == {0}


def _seeds(out):
    with (out / "results.csv").open() as f:
        return {int(row["seed"]) for row in csv.DictReader(f)}


def test_compare_set_changes_any_key_and_a_folder_from_before_a_new_key_still_resumes(tmp_path):
    import json

    out = tmp_path / "set"
    args = ["compare", QUICK, "--out", out, "--seeds", "1", "--budgets", "2", "--methods", "none", "imm"]
    res = rlimm(
        *args, "--set", "induction.method=knn", "induction.k=3", "evaluation.episodes=2", "--jobs", "1"
    )
    assert res.returncode == 0, res.stderr
    saved = json.loads((out / "config.json").read_text())
    assert saved["induction"]["method"] == "knn" and saved["induction"]["k"] == 3
    assert saved["evaluation"]["episodes"] == 2
    # A folder written before induction.estimator existed: the key left at its default still matches.
    del saved["induction"]["estimator"], saved["induction"]["samples"]
    (out / "config.json").write_text(json.dumps(saved))
    res = rlimm(
        *args, "--set", "induction.method=knn", "induction.k=3", "evaluation.episodes=2", "--jobs", "1"
    )
    assert res.returncode == 0, res.stderr
    res = rlimm(
        *args, "--set", "induction.method=knn", "induction.k=4", "evaluation.episodes=2", "--jobs", "1"
    )
    assert res.returncode == 2 and "differs in: induction" in res.stderr
    bad = rlimm(*args, "--set", "induction.k", "--jobs", "1")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "rlimm: error: --set: expected dotted.key=value, got 'induction.k'"


@pytest.mark.parametrize("sig_name", ["SIGINT", "SIGKILL"])
def test_interrupted_compare_resumes_to_the_same_results(tmp_path, uninterrupted, sig_name):
    import signal

    args = INTERRUPTED

    out = tmp_path / "cut"
    cmd = [sys.executable, "-m", "rlimm", "compare", str(QUICK), "--out", str(out), *args, "--jobs", "2"]
    proc = _interrupt_after_rows(cmd, out / "results.csv", 2, getattr(signal, sig_name))
    if sig_name == "SIGINT":
        assert proc.returncode == 130 and "rerun the same command to resume" in proc.stderr.read()
    cut = rows(out / "results.csv")
    assert 2 <= len(cut) < 12
    assert rlimm("compare", QUICK, "--out", out, *args, "--jobs", "2").returncode == 0

    def table(path):
        return sorted(
            (r["method"], r["budget"], r["seed"], r["lambda_ratio"], r["score"], r["score_std"])
            for r in rows(path / "results.csv")
        )

    assert table(out) == table(uninterrupted)
