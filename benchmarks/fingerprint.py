"""Fingerprints of small runs, to check that a refactoring changes nothing a user sees (issue 28).

Each cell trains every run of a config (shrunk to a few seeds and one short budget) and prints, per run,
the final score (``repr``: every digit) and a SHA-256 of the model's parameters (policy, critics, and
for SAC its target networks) at each budget's checkpoint. Run it with the package of the commit
before and of the commit after, and compare the two outputs (or the one-line digests):

    .venv/bin/python benchmarks/fingerprint.py --out before.json          # on the old commit
    .venv/bin/python benchmarks/fingerprint.py --out after.json --compare before.json

The cells: ``configs/grid_quick.yaml`` whole (REINFORCE, table restriction, 10 seeds × 3 budgets);
CartPole with the cart hidden (PPO, knn induction), constant and trust λ; Pendulum with the velocity
hidden under PPO (Gaussian teacher, mc estimator) and under SAC (squashed Gaussian, trust λ too).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from stable_baselines3.common.base_class import BaseAlgorithm

from rlimm.rl.config import load_compare_config
from rlimm.rl.runs import run_budgets
from rlimm.rl.teacher_builder import make_teacher

ROOT = Path(__file__).resolve().parent.parent

#: name → (config, overrides)
CELLS: dict[str, tuple[str, dict]] = {
    "grid_quick": ("configs/grid_quick.yaml", {}),
    "cartpole_cart_hidden": (
        "configs/cartpole_cart_hidden.yaml",
        {"seeds": 2, "budgets": [2048], "lambda_ratio": 0.5},
    ),
    "cartpole_cart_hidden_trust": (
        "configs/cartpole_cart_hidden.yaml",
        {
            "seeds": 2,
            "budgets": [2048],
            "lambda_ratio": 0.5,
            "lambda_schedule": "trust",
            "methods": ["naive", "imm"],
        },
    ),
    "pendulum_ppo": (
        "configs/pendulum_velocity_hidden.yaml",
        {
            "seeds": 1,
            "budgets": [2048],
            "lambda_ratio": 0.5,
            "teacher": {"solver": "trained", "algo": "ppo", "timesteps": 2048, "seed": 0},
        },
    ),
    "pendulum_sac": (
        "configs/suite/pendulum_sac_velocity_hidden.yaml",
        {
            "seeds": 1,
            "budgets": [400],
            "evaluation": {"episodes": 3, "deterministic": False},
            "teacher": {"solver": "trained", "algo": "sac", "timesteps": 300, "seed": 0},
        },
    ),
    "pendulum_sac_trust": (
        "configs/suite/pendulum_sac_velocity_hidden.yaml",
        {
            "seeds": 1,
            "budgets": [400],
            "lambda_schedule": "trust",
            "methods": ["naive", "imm"],
            "evaluation": {"episodes": 3, "deterministic": False},
            "teacher": {"solver": "trained", "algo": "sac", "timesteps": 300, "seed": 0},
        },
    ),
}


def parameters_digest(model: BaseAlgorithm) -> str:
    """SHA-256 of every tensor of the model's policy (SAC: actor, critic and target critic), in order."""
    digest = hashlib.sha256()
    for name, tensor in model.policy.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def run_cell(name: str) -> list[dict]:
    path, overrides = CELLS[name]
    config = load_compare_config(ROOT / path, overrides)
    teacher = make_teacher(config) if set(config.methods) - {"none"} else None
    rows = []
    for group in config.run_groups(config.runs()):
        digests: dict[int, str] = {}

        def keep(timesteps: int, model: BaseAlgorithm, digests: dict[int, str] = digests) -> None:
            digests[timesteps] = parameters_digest(model)

        for row in run_budgets(config, group, teacher=teacher, on_checkpoint=keep):
            rows.append(
                {
                    "cell": name,
                    "method": row["method"],
                    "seed": row["seed"],
                    "budget": row["budget"],
                    "lambda_ratio": row["lambda_ratio"],
                    "score": repr(row["score"]),
                    "parameters": digests[row["timesteps"]][:16],
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", choices=list(CELLS), default=list(CELLS))
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    parser.add_argument("--compare", type=Path, help="a JSON written by --out: report every difference")
    args = parser.parse_args(argv)
    rows = []
    for name in args.cells:
        start = time.perf_counter()
        cell = run_cell(name)
        rows += cell
        digest = hashlib.sha256(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:16]
        print(f"{name}: {len(cell)} runs, digest {digest} ({time.perf_counter() - start:.0f} s)", flush=True)
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))
    if args.compare is not None:
        before = {
            (r["cell"], r["method"], r["seed"], r["budget"]): r for r in json.loads(args.compare.read_text())
        }
        differ = [r for r in rows if before.get((r["cell"], r["method"], r["seed"], r["budget"])) != r]
        print(f"{len(rows) - len(differ)} of {len(rows)} runs identical to {args.compare}")
        for r in differ:
            print(f"  differs: {r} vs {before.get((r['cell'], r['method'], r['seed'], r['budget']))}")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
