"""The distribution installs envs/ and agents/ as rlimm.envs and rlimm.agents, nothing generic."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_holds_only_the_rlimm_package(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("rlimm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"rlimm", next(t for t in top if t.endswith(".dist-info"))}
    for module in [
        "rlimm/envs/toroidal_grid.py",
        "rlimm/agents/reinforce/reinforce.py",
        "rlimm/agents/sac/policies.py",
        "rlimm/induction.py",
        "rlimm/logreg/train.py",
        "rlimm/rl/comparison.py",
        "rlimm/cli.py",
    ]:
        assert module in names
    entry_points = (
        zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    )
    assert "rlimm = rlimm.cli:main" in entry_points


def test_subpackages_import_under_rlimm():
    import rlimm.agents.reinforce
    import rlimm.envs

    assert rlimm.envs.__name__ == "rlimm.envs"
    assert rlimm.agents.reinforce.REINFORCE.__module__ == "rlimm.agents.reinforce.reinforce"
