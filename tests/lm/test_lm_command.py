"""`rlimm lm` end to end on the tiny synthetic config (the LSTM and the Transformer, one seed and several),
resuming, and bad input refused in one line."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from rlimm.cli import main
from rlimm.common.stats import paired_difference
from rlimm.errors import ConfigError, RlimmError
from rlimm.lm.config import load_lm_config
from rlimm.lm.experiment import config_differences

from cli_helpers import config_variant
from cli_helpers import rlimm as _rlimm
from cli_helpers import run_in_process as run

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "lm_tiny.yaml"
#: The tiny config's LSTM turned into a Transformer of the same size (context = train.bptt = 10).
TRANSFORMER = {"model.kind": "transformer", "model.heads": 4}
#: What the single-seed run of the tiny config measures (see the first test): method → (val_ppl,
#: test_ppl, induced_bigram_test_ppl).
MEASURED = {
    "none": (4.0750753910520965, 3.980491945922671, 3.947598060130905),
    "noising": (4.062010510397529, 3.9332199808539654, 3.92134788316973),
    "imm": (3.7974586231286334, 3.652988012503371, 3.6573330037032705),
}


def rlimm(*args):
    return _rlimm(*args, cwd=ROOT)


def _config(tmp_path, **changes):
    return config_variant(TINY, tmp_path, **changes)


def test_lm_writes_results_and_summary_then_skips_finished_methods(tmp_path, capsys):
    out = tmp_path / "lm"
    # Two worker processes for three methods: imm in one, none then noising in the other.
    res = rlimm("lm", TINY, "--out", out, "--jobs", "2")
    assert res.returncode == 0, res.stderr
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == ["none", "noising", "imm"]
    for col in ("epochs", "val_ppl", "test_ppl", "induced_bigram_test_ppl", "kn_bigram_test_ppl"):
        assert col in rows[0]
    # One teacher, far better than a uniform guess (12); its perplexity is float64 and exact.
    assert {r["kn_bigram_test_ppl"] for r in rows} == {"3.4380517105070756"}
    # Measured on one CPU (each method is seeded on its own). Another x86-64 CPU's float32 kernels round
    # differently (measured: 2.7e-5 relative after four epochs), so the constants are compared at 2e-3:
    # still far tighter than the gaps between the methods (>= 1.2%). Bit-exact training is checked within
    # one machine in tests/lm/test_lm_train.py (IMM with λ = 0 trains exactly like none).
    for r in rows:
        assert int(r["epochs"]) == 4
        got = tuple(float(r[c]) for c in ("val_ppl", "test_ppl", "induced_bigram_test_ppl"))
        assert got == pytest.approx(MEASURED[r["method"]], rel=2e-3), r["method"]
    assert float(rows[2]["lambda"]) == pytest.approx(0.2, rel=1e-6) and float(rows[0]["lambda"]) == 0

    summary = (out / "summary.md").read_text()
    assert "## Perplexity" in summary and "## Restricted task" in summary
    assert "| IMM |" in summary and "| KN noising |" in summary
    teacher = json.loads((out / "kn_bigram.json").read_text())
    assert teacher["test_ppl"] == pytest.approx(float(rows[0]["kn_bigram_test_ppl"]), rel=1e-6)
    assert f"validation perplexity {teacher['val_ppl']:.2f}" in summary
    assert "| method | induced bigram | Kneser-Ney bigram | ratio |" in res.stdout
    for method in ("none", "noising", "imm"):
        metrics = json.loads((out / method / "metrics.json").read_text())
        assert metrics["epochs"] == 4 and len(metrics["history"]) == 4
        assert (out / method / "checkpoint.pt").is_file() and (out / method / "best_model.pt").is_file()

    # Rerunning (here in this process) skips every finished method and rewrites the same report.
    stamp = (out / "imm" / "checkpoint.pt").stat().st_mtime_ns
    assert run("lm", TINY, "--out", out) == 0
    assert capsys.readouterr().err.count("finished earlier, skipped") == 3
    assert (out / "imm" / "checkpoint.pt").stat().st_mtime_ns == stamp
    with open(out / "results.csv", newline="") as f:
        assert list(csv.DictReader(f)) == rows


@pytest.mark.parametrize(
    ("change", "argv", "message"),
    [
        ({"train.bptx": 5}, [], "'train.bptx': unknown key"),
        ({"data.source": "ptb"}, ["--data-dir", "/nonexistent/ptb-data"], "/nonexistent/ptb-data"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, change, argv, message):
    out = tmp_path / "out"
    res = rlimm("lm", _config(tmp_path, **change), "--out", out, *argv)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlimm: error: ") and message in lines[0]
    assert not out.exists()


def test_methods_and_epochs_overrides_and_resuming_with_more_epochs(tmp_path, capsys):
    out = tmp_path / "o"
    cfg = _config(tmp_path, **{"train.max_batches_per_epoch": 6})
    assert run("lm", cfg, "--out", out, "--methods", "none", "--epochs", "1", "--quiet", "--tensorboard") == 0
    assert any((out / "none" / "tensorboard").iterdir())
    first = json.loads((out / "none" / "metrics.json").read_text())
    assert first["epochs"] == 1 and not (out / "imm").exists()
    # More epochs: the finished method is resumed from its checkpoint, not restarted.
    assert run("lm", cfg, "--out", out, "--methods", "none", "--epochs", "2", "--quiet") == 0
    second = json.loads((out / "none" / "metrics.json").read_text())
    assert second["epochs"] == 2 and second["history"][0] == first["history"][0]
    with open(out / "results.csv", newline="") as f:
        assert [r["epochs"] for r in csv.DictReader(f)] == ["2"]
    # A different configuration in the same folder is refused before anything changes.
    other = _config(tmp_path, **{"train.max_batches_per_epoch": 6, "model.hidden": 8})
    with pytest.raises(RlimmError, match="model.hidden"):
        run("lm", other, "--out", out, "--quiet")
    assert "| none (dropout only) |" in capsys.readouterr().out


def test_the_shipped_configs_are_valid():
    paper = load_lm_config(ROOT / "configs" / "lm_paper.yaml")
    assert (paper.model.hidden, paper.model.layers, paper.model.dropout) == (1500, 2, 0.65)
    train = paper.train
    assert (train.bptt, train.batch_size, train.lr, train.lr_decay) == (35, 20, 1.0, 0.5)
    assert paper.train.clip == 5.0 and paper.imm.k == 10 and paper.imm.switch_on_below_ppl == 90
    assert paper.imm.lam == pytest.approx(0.2, rel=1e-5)
    cpu = load_lm_config(ROOT / "configs" / "lm_cpu.yaml")
    assert (cpu.model.hidden, cpu.model.layers, cpu.train.batch_size, cpu.train.bptt) == (200, 2, 20, 35)
    assert cpu.imm.k == 10 and cpu.data.source == "ptb"
    tiny = load_lm_config(TINY)
    assert tiny.data.source == "synthetic" and tiny.methods == ["none", "noising", "imm"]
    # Every existing config is the LSTM with one seed, as before the Transformer and seeds existed.
    for config in (paper, cpu, tiny):
        assert config.model.kind == "lstm" and config.train.seeds == 1 and config.context is None
    seeds = load_lm_config(ROOT / "configs" / "lm_cpu_seeds.yaml")
    assert seeds.model == cpu.model and seeds.imm == cpu.imm and seeds.seeds == [0, 1, 2]
    transformer = load_lm_config(ROOT / "configs" / "lm_transformer_cpu.yaml")
    m = transformer.model
    assert (m.kind, m.layers, m.hidden, m.heads, m.tie_weights) == ("transformer", 2, 128, 4, True)
    assert transformer.context == transformer.train.bptt == 35 and transformer.seeds == [0, 1, 2]


#: Bad model settings: (keys changed in the tiny config, the message, a test id).
BAD_MODELS = [
    ({"model.kind": "gru"}, "'model.kind': Input should be 'lstm' or 'transformer' (got 'gru')", "kind"),
    ({"model.heads": 4}, "'model.heads': only model.kind transformer has heads", "heads-lstm"),
    ({"model.context": 20}, "'model.context': only model.kind transformer has context", "context-lstm"),
    ({"model.kind": "transformer"}, "'model.heads': required with model.kind transformer", "no-heads"),
    (
        {**TRANSFORMER, "model.heads": 5},
        "'model.heads': 5 heads do not divide the width model.hidden (32); give one of 1, 2, 4, 8, 16, 32",
        "heads-divide",
    ),
    (
        {**TRANSFORMER, "imm.history_length": 11},
        "'imm.history_length': histories of 11 words exceed the Transformer's context of 10 positions "
        "(train.bptt, as model.context is unset)",
        "imm-history",
    ),
    (
        {**TRANSFORMER, "model.context": 12, "evaluation.history_length": 13},
        "'evaluation.history_length': histories of 13 words exceed the Transformer's context of 12 positions "
        "(model.context)",
        "evaluation-history",
    ),
    ({**TRANSFORMER, "model.context": 8}, "'train.bptt': windows of 10 words exceed", "bptt"),
]


@pytest.mark.parametrize(
    ("change", "message"), [(c, m) for c, m, _ in BAD_MODELS], ids=[i for *_, i in BAD_MODELS]
)
def test_a_bad_model_is_one_line_and_exit_2_with_nothing_written(tmp_path, capsys, change, message):
    out = tmp_path / "out"
    assert main(["lm", str(_config(tmp_path, **change)), "--out", str(out), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlimm: error: ") and message in lines[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"imm.lambda_ratio": 1.0}, "'imm.lambda_ratio': lambda ratio must lie in [0, 1)"),
        ({"imm.positions": 101}, "imm.positions (101) exceeds the 100 positions of a batch"),
        ({"imm.k": 0}, "'imm.k'"),
        ({"imm.switch_on_below_ppl": 0.5}, "'imm.switch_on_below_ppl'"),
        ({"methods": []}, "'methods': give at least one"),
        ({"methods": ["imm", "imm"]}, "'methods': entries must be distinct"),
        ({"methods": ["none", "kd"]}, "'methods.1'"),
        ({"model.dropout": 1.0}, "'model.dropout'"),
        ({"model.hidden": 0}, "'model.hidden'"),
        ({"train.lr_decay": 0}, "'train.lr_decay'"),
        ({"train.epochs": 0}, "'train.epochs'"),
        ({"train.max_batches_per_epoch": 0}, "'train.max_batches_per_epoch'"),
        ({"noising.gamma0": -0.1}, "'noising.gamma0'"),
        ({"evaluation.induced_histories": 0}, "'evaluation.induced_histories'"),
        ({"data.source": "wikitext"}, "'data.source'"),
        ({"imm.lamda_ratio": 0.2}, "'imm.lamda_ratio': unknown key"),
        ({"train.seeds": 0}, "'train.seeds'"),
        *[(change, message) for change, message, _ in BAD_MODELS],
    ],
)
def test_bad_config_names_the_key(tmp_path, change, message):
    with pytest.raises(ConfigError) as err:
        run("lm", _config(tmp_path, **change), "--out", tmp_path / "out", "--quiet")
    assert message in str(err.value)
    assert not (tmp_path / "out").exists()


def test_bad_options(tmp_path, capsys):
    with pytest.raises(ConfigError, match="config file not found"):
        run("lm", tmp_path / "missing.yaml", "--out", tmp_path / "o")
    with pytest.raises(ConfigError, match="'train.epochs'"):
        run("lm", TINY, "--out", tmp_path / "o", "--epochs", "0")
    # --threads is checked by the parser (rlimm.common.command.positive_int): exit 2, naming the flag.
    with pytest.raises(SystemExit) as exit_:
        run("lm", TINY, "--out", tmp_path / "o", "--threads", "0")
    assert exit_.value.code == 2 and "--threads" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    with pytest.raises(RlimmError, match="must be a folder"):
        run("lm", TINY, "--out", tmp_path / "file")
    # No data folder anywhere: the message says how to give one.
    env = os.environ.pop("RLIMM_DATA_DIR", None)
    try:
        with pytest.raises(RlimmError, match="--data-dir"):
            run("lm", _config(tmp_path, **{"data.source": "ptb"}), "--out", tmp_path / "o")
    finally:
        if env is not None:
            os.environ["RLIMM_DATA_DIR"] = env
    assert not (tmp_path / "o").exists()


def test_several_seeds_run_every_method_per_seed_and_report_paired_differences(tmp_path, capsys):
    out = tmp_path / "seeds"
    # Two worker processes for 3 methods × 2 seeds, on the whole tiny config (4 epochs).
    res = rlimm("lm", _config(tmp_path, **{"train.seeds": 2}), "--out", out, "--jobs", "2")
    assert res.returncode == 0, res.stderr
    for method in ("none", "noising", "imm"):
        for seed in (0, 1):
            metrics = json.loads((out / method / f"seed{seed}" / "metrics.json").read_text())
            assert metrics["seed"] == seed and metrics["epochs"] == 4
        assert not (out / method / "metrics.json").exists()
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["seed"]) for r in rows] == [
        (m, s) for m in ("none", "noising", "imm") for s in ("0", "1")
    ]
    figures = ("val_ppl", "test_ppl", "induced_bigram_test_ppl")
    for r in rows:
        assert float(r["restricted_ratio"]) == pytest.approx(
            float(r["induced_bigram_test_ppl"]) / float(r["kn_bigram_test_ppl"]), rel=1e-12
        )
        got = tuple(float(r[c]) for c in figures)
        if r["seed"] == "0":
            # Seed 0 of several is the same run as the single-seed experiment's (measured above).
            assert got == pytest.approx(MEASURED[r["method"]], rel=2e-3), r["method"]
        else:
            assert got != pytest.approx(MEASURED[r["method"]], rel=1e-4), r["method"]

    summary = (out / "summary.md").read_text()
    assert "Seeds 0 … 1 (2 runs per method)" in summary
    assert "## Every run" in summary and "## Paired differences over seeds" in summary
    by = {(r["method"], r["seed"]): r for r in rows}
    for (a, b), label in {("imm", "none"): "IMM − none", ("imm", "noising"): "IMM − noising"}.items():
        d = paired_difference(
            [float(by[a, s]["val_ppl"]) for s in "01"], [float(by[b, s]["val_ppl"]) for s in "01"]
        )
        assert f"| {label} | {d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}] (2) |" in summary
    assert "| noising − none |" in summary

    # Rerunning skips all six runs, naming each with its seed.
    assert run("lm", _config(tmp_path, **{"train.seeds": 2}), "--out", out) == 0
    err = capsys.readouterr().err
    assert err.count("finished earlier, skipped") == 6 and "lm: imm seed 1: finished earlier, skipped" in err


def test_the_transformer_runs_through_rlimm_lm(tmp_path, capsys):
    # Two seeds of two methods one after the other in this process, a few batches each.
    changes = {**TRANSFORMER, "train.seeds": 2, "train.epochs": 1, "train.max_batches_per_epoch": 5}
    cfg = _config(tmp_path, **changes)
    out = tmp_path / "tf"
    assert run("lm", cfg, "--out", out, "--methods", "none", "imm") == 0
    printed = capsys.readouterr()
    assert "lm: imm seed 1: epoch 1/1" in printed.err  # progress lines name the seed
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["seed"]) for r in rows] == [
        ("none", "0"),
        ("none", "1"),
        ("imm", "0"),
        ("imm", "1"),
    ]
    assert all(1 < float(r["val_ppl"]) < 100 for r in rows)
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# lm_tiny: Transformer language model")
    assert "2×32 Transformer (4 heads, context 10)" in summary
    # Only IMM − none can be paired; the other rows need noising.
    assert "| IMM − none |" in summary and "IMM − noising" not in summary
    assert json.loads((out / "config.json").read_text())["model"]["kind"] == "transformer"


def test_an_output_folder_made_before_the_transformer_and_seeds_existed_still_resumes():
    # Its config.json has no model.kind, model.heads, model.context nor train.seeds: they were the defaults.
    new = load_lm_config(TINY).model_dump(mode="json")
    old = json.loads(json.dumps(new))
    for key in ("kind", "heads", "context"):
        del old["model"][key]
    del old["train"]["seeds"]
    assert config_differences(old, new) == []
    # A real difference is still found, and so is a key of the new config set away from its default.
    old["model"]["hidden"] = 64
    assert config_differences(old, new) == ["model.hidden"]
    transformer = {**new, "model": {**new["model"], "kind": "transformer", "heads": 4}}
    assert config_differences(old, transformer) == ["model.heads", "model.hidden", "model.kind"]
