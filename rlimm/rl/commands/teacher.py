"""``rlimm teacher``: build a restricted teacher once (exact POMDP solution or a policy trained on the
partial view) and save it as a teacher file for ``train --teacher`` and ``compare`` (solver ``file``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rlimm.common.command import parse_key_values
from rlimm.errors import RlimmError
from rlimm.rl.commands.options import VISIBLE_HELP, parse_teacher_spec


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``teacher`` on the ``rlimm`` command's subparsers."""
    p = sub.add_parser(
        "teacher",
        help="build a restricted teacher and save it for reuse",
        description="Solve the restricted POMDP exactly or train a policy on the partial view, and "
        "save the teacher (its action probabilities per visible context) as a .npz teacher file. "
        "A trained teacher's SB3 model is saved beside it (.zip).",
    )
    p.add_argument(
        "spec",
        nargs="?",
        help="fib | qmdp | induced_optimal | trained, optionally with settings "
        "(fib:policy=softmax,temperature=0.5; trained:algo=ppo,timesteps=20000); default: the "
        "config's teacher, else fib",
    )
    p.add_argument(
        "-o", "--output", "--out", required=True, help="teacher file to write (*.npz table, *.pt policy)"
    )
    p.add_argument("-conf", "--conf-file", help="a train or compare config: its env, restriction and teacher")
    p.add_argument("--env", help="gymnasium environment id (default: rlimm/ToroidalGrid-v0)")
    p.add_argument("--env-kwargs", nargs="+", metavar="KEY:VALUE", help="environment constructor arguments")
    p.add_argument("--visible", nargs="+", help=VISIBLE_HELP)
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    return p


def _load(args: argparse.Namespace):  # noqa: ANN202 - a TrainConfig or a CompareConfig
    from rlimm.common.config import merge_nested, parse_mapping, read_yaml
    from rlimm.rl.config import CompareConfig, TrainConfig

    data = read_yaml(args.conf_file) if args.conf_file else {}
    # A compare config has methods and budgets; anything else is read as a train config.
    model = CompareConfig if isinstance(data, dict) and "methods" in data else TrainConfig
    overrides = {
        "env": {"id": args.env, "kwargs": parse_key_values(args.env_kwargs, "--env-kwargs")},
        "restriction": {"visible": args.visible} if args.visible else None,
    }
    if isinstance(data, dict):
        data = merge_nested(data, overrides)
        spec = parse_teacher_spec(args.spec)
        if spec is not None:
            data["teacher"] = spec
    config = parse_mapping(model, data, args.conf_file or "<command line>")
    if config.restriction is None:
        raise RlimmError("a teacher needs the visible observation fields: --visible (e.g. --visible x)")
    return config


def run(args: argparse.Namespace) -> int:
    from rlimm.agents.teachers import TabularTeacher, save_teacher, suffix_for
    from rlimm.rl.teacher_builder import build_teacher, teacher_description

    out = Path(args.output)
    if out.suffix not in (".npz", ".pt"):
        raise RlimmError(f"-o/--output must end in .npz (a table) or .pt (a policy), got {out}")
    if out.exists() and not args.force:
        raise RlimmError(f"{out} exists; pass --force to overwrite it")
    config = _load(args)
    if config.teacher.solver == "file":
        raise RlimmError(
            "the teacher is already a teacher file; give a solver (fib, qmdp, induced_optimal, trained)"
        )
    # The config against its environment, and which file the teacher will be, checked before it is
    # built (training one may take minutes): a table where the teacher sees discrete contexts and acts
    # on discrete actions, a policy otherwise.
    expected = _expected_suffix(config)
    if expected is not None and out.suffix != expected:
        raise RlimmError(f"this teacher is saved as a {expected} file; use -o {out.with_suffix(expected)}")
    teacher, model = build_teacher(config)
    if out.suffix != suffix_for(teacher):  # the rule above, should a builder ever differ from it
        raise RlimmError(
            f"teacher '{teacher.name}' is saved as a {suffix_for(teacher)} file; "
            f"use -o {out.with_suffix(suffix_for(teacher))}"
        )
    save_teacher(teacher, out, teacher_description(config))
    if model is not None:
        model.save(out.with_suffix(".zip"))
    np.set_printoptions(precision=3, suppress=True)
    if isinstance(teacher, TabularTeacher):
        print(
            f"teacher '{teacher.name}': action probabilities per visible context {config.restriction.visible}"
        )
        for context, row in enumerate(teacher.table):
            print(f"  {context:3d}: {row}")
    else:
        print(f"teacher '{teacher.name}': a policy on the visible part {config.restriction.visible}")
    about = getattr(teacher, "about", None)
    if about:
        expert = about["expert"]
        print(
            f"its expert ({expert['algo']}, {expert['timesteps']} steps) scores {expert['score']:.2f} ± "
            f"{expert['score_std']:.2f} over {expert['episodes']} episodes on the full state; the hidden "
            f"part's information E[KL(expert ‖ teacher)] = {about['hidden_kl']:.4f} nats over "
            f"{about['hidden_kl_states']} states it visits"
        )
    extra = f" and the model {out.with_suffix('.zip')}" if model is not None else ""
    print(f"saved {out}{extra}")
    return 0


def _expected_suffix(config) -> str | None:  # noqa: ANN001 - a TrainConfig or a CompareConfig
    """``.npz`` when the configured teacher will be a table (a partition restriction, Discrete
    actions), else ``.pt``; the config is checked against its environment
    (:func:`~rlimm.rl.checks.check_against_env`), the teacher is not built. ``None`` for
    an exact solver without a partition: the builder refuses it with the reason."""
    from gymnasium import spaces

    from rlimm.envs.restrictions import PartitionRestriction
    from rlimm.rl.checks import check_against_env
    from rlimm.rl.environments import make_env

    env = make_env(config.env, config.env.episode_steps)
    restriction = check_against_env(config, env)
    partition = isinstance(restriction, PartitionRestriction)
    if not partition and config.teacher.solver not in ("trained", "model", "induced_expert"):
        return None
    return ".npz" if partition and isinstance(env.action_space, spaces.Discrete) else ".pt"
