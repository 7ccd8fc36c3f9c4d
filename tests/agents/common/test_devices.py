"""Devices (``--device auto|cpu|cuda[:N]`` and the ``device`` config key): validated once, refused in
one line where CUDA is missing, and everything a training step touches lives on the requested device.

The device tests run on the CPU everywhere and on CUDA too where torch has it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from rlimm.cli import main
from rlimm.common.device import ACCEPTED, check_device, resolve_device
from rlimm.errors import RlimmError

from cli_helpers import config_variant

ROOT = Path(__file__).resolve().parents[3]
QUICK = ROOT / "configs" / "grid_quick.yaml"
LM_TINY = ROOT / "configs" / "lm_tiny.yaml"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def no_cuda(monkeypatch):
    """A machine without CUDA, whatever this one has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch):
    """A machine with one CUDA device (only resolved, never used)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_auto_is_the_cpu_without_cuda_and_cuda_with_it(no_cuda, monkeypatch):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


@pytest.mark.parametrize("text", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_refused_naming_what_is_accepted(no_cuda, text):
    with pytest.raises(RlimmError) as err:
        resolve_device(text)
    assert str(err.value) == f"device '{text}' requested but CUDA is not available; accepted: {ACCEPTED}"


def test_a_cuda_index_beyond_the_devices_is_refused(one_gpu):
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(RlimmError, match=r"device 'cuda:1' requested but this machine has 1 CUDA device"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "cuda:-1", "mps", "", "cpu:0", 3])
def test_malformed_devices_are_refused(text):
    with pytest.raises(RlimmError) as err:
        check_device(text)
    assert str(err.value) == f"device '{text}' is not understood; accepted: {ACCEPTED}"


def _lm_config(tmp_path: Path, **changes) -> Path:
    return config_variant(LM_TINY, tmp_path, **changes)


# Each command, with what it needs besides --device; all refuse before writing anything.
COMMANDS = {
    "train": lambda t: ["train", "--algo", "reinforce", "-n", "10", "-f", t / "out"],
    "compare": lambda t: ["compare", QUICK, "--out", t / "out", "--seeds", "1", "--budgets", "1"],
    "tune": lambda t: ["tune", QUICK, "--out", t / "out", "--budgets", "1", "--seeds", "1"],
    "lm": lambda t: ["lm", LM_TINY, "--out", t / "out"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda:0", f"device 'cuda:0' requested but CUDA is not available; accepted: {ACCEPTED}"),
        ("cuda", f"device 'cuda' requested but CUDA is not available; accepted: {ACCEPTED}"),
        ("gpu", f"device 'gpu' is not understood; accepted: {ACCEPTED}"),
    ],
)
def test_every_command_refuses_a_bad_device_in_one_line(tmp_path, capsys, no_cuda, command, device, message):
    argv = [*map(str, COMMANDS[command](tmp_path)), "--device", device, "--no-progress"]
    if command == "lm":
        argv[-1] = "--quiet"
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"rlimm: error: {message}"]
    assert not (tmp_path / "out").exists()


def test_the_config_key_is_checked_on_load_and_against_the_machine(tmp_path, capsys, no_cuda):
    bad = config_variant(QUICK, tmp_path, device="gpu")
    assert main(["compare", str(bad), "--out", str(tmp_path / "a")]) == 2
    assert f"'device': device 'gpu' is not understood; accepted: {ACCEPTED}" in capsys.readouterr().err
    cuda = config_variant(QUICK, tmp_path, device="cuda")
    assert main(["compare", str(cuda), "--out", str(tmp_path / "b"), "--seeds", "1", "--budgets", "1"]) == 2
    assert "device 'cuda' requested but CUDA is not available" in capsys.readouterr().err
    lm = _lm_config(tmp_path, device="cuda:1")
    assert main(["lm", str(lm), "--out", str(tmp_path / "c"), "--quiet"]) == 2
    assert "device 'cuda:1' requested but CUDA is not available" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in "abc")


def _tensors(obj) -> dict[str, torch.Tensor]:
    """Every tensor attribute of ``obj`` (one level deep)."""
    return {k: v for k, v in vars(obj).items() if isinstance(v, torch.Tensor)}


def _on(device: torch.device, tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors that are not on ``device``."""
    return [f"{name} on {t.device}" for name, t in tensors.items() if t.device.type != device.type]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ["imm", "noising"])
def test_every_tensor_of_an_lm_training_step_is_on_the_device(tmp_path, monkeypatch, device, method):
    from rlimm.lm import train as train_module
    from rlimm.lm.config import parse_config
    from rlimm.lm.experiment import fit_teacher, load_corpus, run_method
    from rlimm.lm.train import Trainer

    data = yaml.safe_load(LM_TINY.read_text())
    data["train"].update({"max_batches_per_epoch": 3, "epochs": 1})
    config = parse_config(data)
    corpus = load_corpus(config)
    kn = fit_teacher(corpus)
    dev = resolve_device(device)

    seen: dict[str, torch.Tensor] = {}
    real_loss = train_module.imm_loss_for

    def recording(model, teacher, contexts, histories):
        seen.update(contexts=contexts, histories=histories, **_tensors(teacher))
        return real_loss(model, teacher, contexts, histories)

    monkeypatch.setattr(train_module, "imm_loss_for", recording)
    trainer = Trainer(config, method, corpus.train, corpus.valid, kn, corpus.vocab.eos_id, device=device)
    trainer.run(max_batches=2)
    assert trainer.device == dev
    off = _on(dev, dict(trainer.model.named_parameters()))
    off += _on(dev, {"source": trainer.source, "valid": trainer.valid})
    off += _on(dev, {f"hidden.{i}": h for i, h in enumerate(trainer.progress.hidden)})
    off += _on(dev, {f"kn.{k}": v for k, v in _tensors(trainer.kn).items()})
    for group in trainer.optimizer.state.values():
        off += _on(dev, {f"optimizer.{k}": v for k, v in group.items() if isinstance(v, torch.Tensor)})
    if method == "imm":
        assert seen, "no IMM term was computed"
        off += _on(dev, {f"imm.{k}": v for k, v in seen.items()})
        off += _on(dev, {f"index.{k}": v for k, v in _tensors(trainer.index).items()})
    else:
        off += _on(dev, {f"noiser.{k}": v for k, v in vars(trainer.noiser).items()})
    assert not off, off
    assert dev.type == "cpu" or next(trainer.best_model().parameters()).device.type == dev.type

    # A whole method, evaluation included, records where it ran.
    metrics = run_method(config, method, corpus, kn, tmp_path / method, device=device)
    assert metrics["device"] == str(dev)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("algo", ["reinforce", "ppo"])
def test_an_rl_agent_and_its_regulariser_tables_are_on_the_device(device, algo):
    from rlimm.rl.config import load_compare_config
    from rlimm.rl.environments import make_env, make_restriction
    from rlimm.rl.runs import build_agent
    from rlimm.rl.teacher_builder import make_teacher

    kwargs = {"reinforce": {"n_steps": 20}, "ppo": {"n_steps": 32, "batch_size": 16, "n_epochs": 1}}[algo]
    config = load_compare_config(QUICK, {"algo": {"name": algo, "kwargs": kwargs}, "device": device})
    env = make_env(config.env, config.env.episode_steps)
    restriction = make_restriction(config, env)
    dev = resolve_device(config.device)
    model = build_agent(config.algo, env, "imm", make_teacher(config), restriction, 0.25, 0, None, dev)
    assert model.device.type == dev.type
    tables = _tensors(model.teacher_regularizer)
    assert tables, "the regulariser holds no tables"
    off = _on(dev, tables) + _on(dev, dict(model.policy.named_parameters()))
    assert not off, off
    model.learn(kwargs["n_steps"] * 2)  # trains there
    assert not _on(dev, dict(model.policy.named_parameters()))


def test_an_algorithm_device_argument_and_the_device_key_are_not_both_given(tmp_path, capsys):
    cfg = config_variant(QUICK, tmp_path, **{"algo.kwargs": {"n_steps": 50, "device": "cpu"}})
    assert main(["compare", str(cfg), "--out", str(tmp_path / "o"), "--seeds", "1", "--budgets", "1"]) == 2
    assert "'algo.kwargs.device' and 'device' are both set" in capsys.readouterr().err
