"""`rlimm compare --cluster` on a real Dask cluster (2 worker processes, 1 thread each, loopback only):
the same rows as `--jobs 2`, resuming after the driver is killed, a worker dying once costing no run, a
dying worker losing only its run, an unreachable scheduler refused in one line, and no Dask import
without --cluster.

Skipped when Dask is not installed, except in CI (``CI=true``), where it must be (``pip install -e
'.[dev]'`` brings it) and its absence fails the tests."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:
    import dask
    from distributed import LocalCluster
except ImportError:
    if os.environ.get("CI") == "true":
        pytest.fail("Dask distributed is required in CI (CI=true): pip install -e '.[dev]'", pytrace=False)
    pytest.skip("Dask distributed is not installed (pip install 'rlimm[cluster]')", allow_module_level=True)

from rlimm.cli import main
from rlimm.rl.cluster import ADDRESS_ENV, TEST_EXIT_ENV

from cli_helpers import rlimm

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "configs" / "grid_quick.yaml"
TINY = ["--seeds", "2", "--budgets", "2", "3", "--no-progress"]
RUNS = 12  # 3 methods × 2 budgets × 2 seeds


def table(out: Path) -> list[tuple]:
    """The rows of ``results.csv`` without ``train_seconds``, sorted."""
    with open(out / "results.csv", newline="") as f:
        return sorted(tuple(v for k, v in r.items() if k != "train_seconds") for r in csv.DictReader(f))


def run_key(row: tuple) -> tuple:
    return row[0], row[2], row[3]  # method, budget, seed


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> Path:
    """The workers' test-hook file (see ``rlimm.rl.cluster.TEST_EXIT_ENV``); empty: no effect."""
    path = tmp_path_factory.mktemp("hook") / "exit_rules.txt"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def cluster(rules):
    # A run whose worker dies is given to another worker once; a second death fails it (Dask's
    # default allows 3, which only makes the test slower). One task at a time per worker thread: a
    # worker that dies then takes no queued, innocent run down with it.
    settings = {"distributed.scheduler.allowed-failures": 1, "distributed.scheduler.worker-saturation": 1.0}
    with dask.config.set(settings):
        with LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            env={TEST_EXIT_ENV: str(rules)},
        ) as local:
            yield local.scheduler_address


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[tuple]:
    """The rows of ``rlimm compare … --jobs 2`` (here in this process: its workers are the same)."""
    from rlimm.rl.comparison import run_matrix
    from rlimm.rl.config import load_compare_config

    out = tmp_path_factory.mktemp("jobs2")
    config = load_compare_config(QUICK, {"seeds": 2, "budgets": [2, 3]})
    run_matrix(config, out, jobs=2, progress=False)
    rows = table(out)
    assert len(rows) == RUNS
    return rows


def test_cluster_gives_the_rows_of_local_workers(tmp_path, cluster, reference):
    out = tmp_path / "cluster"
    res = rlimm("compare", QUICK, "--out", out, *TINY, "--cluster", cluster)
    assert res.returncode == 0, res.stderr
    assert table(out) == reference
    assert f"rlimm compare: writing {out / 'results.csv'}" in res.stderr
    assert f"on the Dask cluster at {cluster} (2 workers, 2 threads)" in res.stderr
    assert "| budget | none | naive | imm |" in res.stdout and (out / "plot.png").is_file()


def test_cluster_reads_shorter_budgets_off_one_run(tmp_path, cluster):
    # A constant λ: budgets 2 and 3 come from one training run per (method, seed), as with local
    # workers, and give the rows of separate runs.
    from rlimm.rl import cluster as dask_cluster
    from rlimm.rl.comparison import run_matrix
    from rlimm.rl.config import load_compare_config

    config = load_compare_config(QUICK, {"seeds": 2, "budgets": [2, 3], "lambda_ratio": 0.2})
    assert [len(g) for g in config.run_groups(config.runs())] == [2] * 6
    assert "-b2+3-" in dask_cluster.task_key(config, config.run_groups(config.runs())[0], None)
    separate = tmp_path / "separate"
    for budget in (2, 3):
        run_matrix(config.model_copy(update={"budgets": [budget]}), separate, jobs=1, progress=False)
    out = tmp_path / "cluster"
    res = rlimm("compare", QUICK, "--out", out, *TINY, "--lambda-ratios", "0.2", "--cluster", cluster)
    assert res.returncode == 0, res.stderr
    assert table(out) == table(separate)


def test_killed_driver_resumes_to_the_same_rows(tmp_path, cluster, reference):
    out = tmp_path / "cut"
    cmd = [sys.executable, "-m", "rlimm", "compare", str(QUICK), "--out", str(out), *TINY]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", ADDRESS_ENV: cluster}  # the address from the env
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    results = out / "results.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and len(results.read_text().splitlines()) >= 2:  # header + one run
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the comparison finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    cut = table(out)
    assert 1 <= len(cut) < RUNS
    res = rlimm("compare", QUICK, "--out", out, *TINY, "--cluster", cluster)
    assert res.returncode == 0, res.stderr
    assert f"{RUNS - len(cut)} runs to do, {len(cut)} done" in res.stderr
    assert table(out) == reference


def test_a_worker_dying_once_costs_no_run(tmp_path, cluster, rules, reference):
    # The worker computing naive/3/0 dies once: the run is computed again elsewhere. (One death per
    # test: two workers dying at once can put an innocent run on both, which Dask then fails.)
    rules.write_text("naive:3:0:once\n")
    out = tmp_path / "dies_once"
    try:
        res = rlimm("compare", QUICK, "--out", out, *TINY, "--cluster", cluster)
    finally:
        left = rules.read_text()
        rules.write_text("")
    assert left == "", "the worker of naive/3/0 did not die"
    assert res.returncode == 0, res.stderr
    assert table(out) == reference


def test_a_dying_worker_loses_only_its_run(tmp_path, cluster, rules, reference):
    # Every worker that starts imm/3/1 dies: that run fails for good, alone.
    rules.write_text("imm:3:1\n")
    out = tmp_path / "dies"
    try:
        res = rlimm("compare", QUICK, "--out", out, *TINY, "--cluster", cluster)
    finally:
        rules.write_text("")
    assert res.returncode == 1, res.stderr
    failed = [line for line in res.stderr.splitlines() if "run failed" in line]
    assert len(failed) == 1 and "method=imm budget=3 seed=1 " in failed[0], res.stderr
    assert "KilledWorker" in failed[0]
    assert "1 runs failed" in res.stderr and "rerun the same command" in res.stderr
    # Every other run finished, with the results of local workers.
    assert table(out) == [r for r in reference if run_key(r) != ("imm", "3", "1")]


@pytest.mark.parametrize("bad", ["unreachable", "malformed"])
def test_an_unreachable_scheduler_is_one_line_and_writes_nothing(tmp_path, capsys, bad):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}" if bad == "unreachable" else "tcp://nowhere:::"
    out = tmp_path / "out"
    assert main(["compare", str(QUICK), "--out", str(out), *TINY, "--cluster", address]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"rlimm: error: cannot reach the Dask scheduler at {address}"
    )
    assert not out.exists()


def test_jobs_and_cluster_exclude_each_other(tmp_path, capsys):
    assert main(["compare", str(QUICK), "--out", str(tmp_path / "o"), "--jobs", "2", "--cluster", "x:1"]) == 2
    assert "--jobs and --cluster exclude each other" in capsys.readouterr().err


def test_nothing_imports_dask_without_a_cluster():
    code = (
        "import sys, rlimm.cli, rlimm.rl.comparison, rlimm.rl.commands.compare; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
