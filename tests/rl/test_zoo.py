"""The RL Zoo's hyperparameters (``algo.hyperparams: zoo``): read from the installed package's YAML
without importing it, its strings parsed without evaluating code, merged under the config's own
``algo.kwargs``, and bad input (``n_envs``, ``vec_env``, an env the Zoo does not cover) refused in one
line before anything is written."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from stable_baselines3.common.utils import LinearSchedule
from torch import nn

from rlimm.cli import main
from rlimm.errors import RlimmError
from rlimm.rl import zoo
from rlimm.rl.config import load_train_config
from rlimm.rl.training import prepare, train
from rlimm.rl.zoo import constructor_kwargs, normalize_kwargs, zoo_hyperparams

pytest.importorskip("rl_zoo3")  # the optional extra rlimm[zoo] (in the dev extra)


def test_the_yaml_is_read_without_importing_rl_zoo3():
    code = (
        "import sys; from rlimm.rl.zoo import zoo_hyperparams; "
        "h = zoo_hyperparams('ppo', 'CartPole-v1'); assert h.n_envs == 8, h; "
        "assert 'rl_zoo3' not in sys.modules"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_an_entry_splits_into_constructor_arguments_and_the_rest():
    h = zoo_hyperparams("ppo", "CartPole-v1")
    assert h.n_envs == 8 and h.n_timesteps == 100_000 and h.normalize is False
    assert h.kwargs["learning_rate"] == "lin_0.001" and h.kwargs["n_steps"] == 32
    assert not {"n_envs", "n_timesteps", "policy", "normalize"} & set(h.kwargs)
    assert zoo_hyperparams("ppo", "MountainCar-v0").normalize is True


@pytest.mark.parametrize("text", ["lin_0.001", "lin_1e-3"])
def test_lin_strings_become_sb3_linear_schedules_to_zero(text):
    schedule = constructor_kwargs({"learning_rate": text})["learning_rate"]
    assert isinstance(schedule, LinearSchedule)  # SB3's own class: stock SB3 loads the saved model
    assert schedule(1.0) == pytest.approx(0.001) and schedule(0.5) == pytest.approx(0.0005)
    assert schedule(0.0) == pytest.approx(0.0)


def test_policy_kwargs_strings_are_parsed_with_a_whitelist_of_names():
    text = (
        "dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU, net_arch=dict(pi=[64, 64], vf=[64]))"
    )
    assert constructor_kwargs({"policy_kwargs": text})["policy_kwargs"] == {
        "log_std_init": -2,
        "ortho_init": False,
        "activation_fn": nn.ReLU,
        "net_arch": {"pi": [64, 64], "vf": [64]},
    }
    for bad in ["dict(x=__import__('os').system('true'))", "dict(activation_fn=nn.Foo)", "dict(a=1 + 2)"]:
        with pytest.raises(RlimmError, match="is not accepted"):
            constructor_kwargs({"policy_kwargs": bad})
    with pytest.raises(RlimmError, match="'algo.kwargs.learning_rate'"):
        constructor_kwargs({"learning_rate": "lin_fast"})


def test_normalize_takes_the_algorithms_gamma_as_the_zoo_does():
    assert normalize_kwargs(False, {"gamma": 0.9}) is None
    assert normalize_kwargs(True, {"gamma": 0.9}) == {"gamma": 0.9}
    assert normalize_kwargs({"norm_reward": False}, {}) == {"norm_reward": False}
    assert zoo._literal("{'norm_obs': True, 'norm_reward': False}", "normalize") == {
        "norm_obs": True,
        "norm_reward": False,
    }


def test_the_configs_own_kwargs_and_n_envs_win_and_the_zoo_budget_is_the_default():
    zoo_only = load_train_config(None, {"env": {"id": "CartPole-v1"}, "algo": {"hyperparams": "zoo"}})
    assert zoo_only.algo.n_envs == 8 and zoo_only.n_timesteps == 100_000
    assert zoo_only.algo.kwargs["gamma"] == 0.98
    mine = load_train_config(
        None,
        {
            "env": {"id": "CartPole-v1"},
            "algo": {"hyperparams": "zoo", "n_envs": 2, "kwargs": {"gamma": 0.9}},
            "n_timesteps": 500,
        },
    )
    assert mine.algo.n_envs == 2 and mine.n_timesteps == 500 and mine.algo.kwargs["gamma"] == 0.9
    assert mine.algo.kwargs["n_steps"] == 32  # the rest is the Zoo's
    # A resolved config (as config.yaml records it) loads again to the same settings.
    assert type(mine).model_validate(mine.model_dump(mode="json")) == mine


def test_what_the_zoo_has_not_or_rlimm_does_not_apply_is_refused(monkeypatch):
    with pytest.raises(RlimmError, match=r"no ppo settings for env 'NoSuchEnv-v0'; it covers .*CartPole-v1"):
        zoo_hyperparams("ppo", "NoSuchEnv-v0")
    with pytest.raises(RlimmError, match="no settings for reinforce"):
        zoo_hyperparams("reinforce", "CartPole-v1")
    with pytest.raises(RlimmError, match="use env_wrapper"):
        zoo_hyperparams("sac", "CarRacing-v3")
    monkeypatch.setattr(zoo, "zoo_file", lambda algo: {"Dict-v0": {"policy": "MultiInputPolicy"}})
    with pytest.raises(RlimmError, match="policy MultiInputPolicy; rlimm takes MlpPolicy only"):
        zoo_hyperparams("ppo", "Dict-v0")


def test_a_zoo_run_trains_with_the_zoos_settings_and_records_them(tmp_path):
    config = load_train_config(
        None, {"env": {"id": "CartPole-v1"}, "algo": {"hyperparams": "zoo"}, "n_timesteps": 256}
    )
    prepared = prepare(config)
    model = prepared.model
    assert model.n_envs == 8 and model.n_steps == 32 and model.gamma == 0.98
    assert model.learning_rate(0.5) == pytest.approx(0.0005)
    train(prepared, tmp_path / "run")
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["algo"]["n_envs"] == 8 and saved["algo"]["kwargs"]["learning_rate"] == "lin_0.001"


@pytest.mark.parametrize(
    ("algo", "message"),
    [
        ({"n_envs": 0}, "'algo.n_envs': Input should be greater than or equal to 1 (got 0)"),
        ({"vec_env": "threads"}, "'algo.vec_env': Input should be 'dummy' or 'subproc' (got 'threads')"),
        (
            {"hyperparams": "zoo"},
            "the RL Zoo (hyperparams: zoo) has no ppo settings for env 'rlimm/ToroidalGrid-v0'",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, algo, message):
    conf = tmp_path / "conf.yaml"
    conf.write_text(yaml.safe_dump({"algo": algo}))
    logs = tmp_path / "logs"
    code = main(["train", "-conf", str(conf), "-f", str(logs), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("rlimm: error:"), err
    assert message in err[0]
    assert not logs.exists()


@pytest.mark.parametrize("command", ["train", "compare"])
def test_n_envs_flag_below_one_is_refused(tmp_path, capsys, command):
    if command == "train":
        argv = ["train", "--n-envs", "0", "-f", str(tmp_path / "out"), "--no-progress"]
    else:
        conf = tmp_path / "c.yaml"
        conf.write_text(yaml.safe_dump({"name": "c", "methods": ["none"], "budgets": [1], "seeds": 1}))
        argv = ["compare", str(conf), "--n-envs", "0", "--out", str(tmp_path / "out"), "--no-progress"]
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "'algo.n_envs'" in err[0] and "(got 0)" in err[0], err
    assert not (tmp_path / "out").exists()
