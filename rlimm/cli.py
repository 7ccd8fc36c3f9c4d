"""The ``rlimm`` command.

Every subcommand is a module with ``add_parser(subparsers) -> parser`` and ``run(args) -> int``
(:mod:`rlimm.common.command`), registered below in one loop. Every user error (bad config, unknown
method, mismatched teacher …) ends as one line on stderr, ``rlimm: error: …``, and exit code 2,
before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rlimm.common.command import OneLineParser
from rlimm.errors import RlimmError
from rlimm.lm import command as lm
from rlimm.logreg import command as logreg
from rlimm.rl.commands import compare, report, suite, teacher, train, tune

#: The subcommands, in the order ``rlimm --help`` lists them.
COMMANDS = (train, teacher, compare, tune, report, suite, logreg, lm)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="rlimm", description="Induced Model Matching: restricted teachers for full models."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(func=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RlimmError as err:
        print(f"rlimm: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. an output folder on a read-only file system, or under a file
        where = f": {err.filename}" if err.filename else ""
        print(f"rlimm: error: cannot write the output ({err.strerror or err}){where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "rlimm: interrupted; finished runs are saved, rerun the same command to resume", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
