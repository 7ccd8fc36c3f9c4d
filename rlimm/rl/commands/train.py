"""``rlimm train``: train one agent, with the RL Zoo's flags."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlimm.common.command import parse_key_values
from rlimm.common.device import add_device_option, check_device, describe, resolve_device
from rlimm.errors import RlimmError
from rlimm.rl.commands.options import (
    INDUCTION_HELP,
    VISIBLE_HELP,
    add_eval_every_option,
    parse_induction_spec,
    parse_teacher_spec,
)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``train`` on the ``rlimm`` command's subparsers."""
    p = sub.add_parser(
        "train",
        help="train one agent (none, naive or imm regulariser) and save it",
        description="Train one agent. Settings come from --conf-file (a YAML file, see "
        "configs/train_grid_imm.yaml), flags override them. The run folder "
        "(<log-folder>/<algo>/<env>-<regularizer>_<n>) gets model.zip, teacher.npz, config.yaml, "
        "command.txt and result.json.",
    )
    p.add_argument("--algo", help="reinforce, ppo, a2c or sac (default: ppo)")
    p.add_argument("--env", help="gymnasium environment id (default: rlimm/ToroidalGrid-v0)")
    p.add_argument("--env-kwargs", nargs="+", metavar="KEY:VALUE", help="environment constructor arguments")
    p.add_argument(
        "-n",
        "--n-timesteps",
        type=int,
        help="environment steps to train for (default: 20000; with algo.hyperparams: zoo, the Zoo's)",
    )
    p.add_argument("--n-envs", type=int, help="environments stepped together (algo.n_envs; default: 1)")
    p.add_argument("--seed", type=int, help="random seed (default: 0)")
    p.add_argument("-tb", "--tensorboard-log", help="TensorBoard log folder")
    p.add_argument("-conf", "--conf-file", help="YAML config file; flags override its values")
    p.add_argument(
        "-params",
        "--hyperparams",
        nargs="+",
        metavar="KEY:VALUE",
        help="algorithm constructor arguments, e.g. learning_rate:0.001 n_steps:64",
    )
    p.add_argument("--regularizer", help="none, naive or imm (default: none)")
    p.add_argument("--lambda-ratio", type=float, help="λ as the ratio λ/(1+λ) in [0, 1) (default: 0.2)")
    p.add_argument(
        "--lambda-schedule",
        help="constant (default), linear_decay (to 0 at --lambda-until of the budget) or trust (λ follows "
        "the trust rule, docs/trust.md; its settings: the config's trust key)",
    )
    p.add_argument("--lambda-until", type=float, help="linear_decay: fraction of the budget in (0, 1]")
    p.add_argument(
        "--teacher",
        help="fib | qmdp | induced_optimal | trained, optionally with settings "
        "(fib:policy=softmax,temperature=0.5; trained:algo=ppo,timesteps=20000), a teacher file "
        "(*.npz, from `rlimm teacher`) or a saved SB3 model acting on the visible part (*.zip)",
    )
    p.add_argument("--visible", nargs="+", help=VISIBLE_HELP)
    p.add_argument("--induction", help=INDUCTION_HELP)
    p.add_argument("--eval-freq", type=int, help="evaluate every N environment steps (0: at the end only)")
    p.add_argument("--eval-episodes", type=int, help="episodes per evaluation (default: 10)")
    p.add_argument(
        "--eval-steps",
        type=int,
        help="cap on an evaluation episode's steps (default: the env's own evaluation cap or time "
        "limit; 1000 for envs without one, e.g. CliffWalking-v1)",
    )
    add_eval_every_option(p)
    p.add_argument("--save-freq", type=int, help="save a checkpoint every N environment steps")
    p.add_argument("-f", "--log-folder", default="logs", help="folder of run folders (default: logs)")
    p.add_argument(
        "--out", metavar="DIR", help="the run folder itself, instead of a new one under --log-folder"
    )
    add_device_option(p, "cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from rlimm.rl.config import load_train_config
    from rlimm.rl.training import new_run_dir, prepare, train

    if args.device is not None:
        check_device(args.device)  # a bad flag is named as such, not as a key of the config file
    overrides = {
        "env": {"id": args.env, "kwargs": parse_key_values(args.env_kwargs, "--env-kwargs")},
        "algo": {
            "name": args.algo,
            "kwargs": parse_key_values(args.hyperparams, "-params"),
            "n_envs": args.n_envs,
        },
        "restriction": {"visible": args.visible} if args.visible else None,
        "induction": parse_induction_spec(args.induction),
        "regularizer": args.regularizer,
        "lambda_ratio": args.lambda_ratio,
        "lambda_schedule": args.lambda_schedule,
        "lambda_until": args.lambda_until,
        "n_timesteps": args.n_timesteps,
        "seed": args.seed,
        "eval_freq": args.eval_freq,
        "evaluation": {"episodes": args.eval_episodes, "steps": args.eval_steps, "every": args.eval_every},
        "save_freq": args.save_freq,
        "device": args.device,
    }
    replace = {"teacher": parse_teacher_spec(args.teacher)}
    config = load_train_config(args.conf_file, overrides, replace)
    device = resolve_device(config.device)
    # The cheap checks of where the run goes first: prepare may train a teacher for minutes.
    run_dir = Path(args.out) if args.out else new_run_dir(args.log_folder, config)
    if args.out and run_dir.exists():
        raise RlimmError(f"--out: {run_dir} exists; give a new folder")
    if run_dir.parent.exists() and not run_dir.parent.is_dir():
        raise RlimmError(f"--log-folder: {run_dir.parent} is a file")
    prepared = prepare(config, args.tensorboard_log, device)
    tb = args.tensorboard_log or "off (-tb DIR to write it)"
    print(f"rlimm train: writing {run_dir} on {describe(device)} (TensorBoard: {tb})", file=sys.stderr)
    result = train(prepared, run_dir, ["rlimm", *sys.argv[1:]], progress_bar=not args.no_progress)
    state = "interrupted after" if result.interrupted else "trained for"
    print(
        f"{config.algo.name} ({config.regularizer}) {state} {result.timesteps} steps in "
        f"{result.train_seconds:.1f} s; mean return {result.mean_return:.2f} ± {result.std_return:.2f} "
        f"over {config.evaluation.episodes} episodes of at most {result.eval_steps} steps\n"
        + (
            f"learning curve: {len(result.curve)} evaluations in {run_dir / 'curves.csv'}\n"
            if result.curve
            else ""
        )
        + f"saved to {run_dir}"
    )
    return 130 if result.interrupted else 0
