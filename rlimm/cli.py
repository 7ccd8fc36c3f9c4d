"""The ``rlimm`` command.

Every user error (bad config, unknown method, mismatched teacher …) ends as one line on stderr,
``rlimm: error: …``, and exit code 2, before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rlimm.commands import compare, teacher, train, tune
from rlimm.commands.options import OneLineParser
from rlimm.errors import RlimmError
from rlimm.lm.command import add_parser as add_lm_parser
from rlimm.logreg.command import add_parser as add_logreg_parser


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="rlimm", description="Induced Model Matching: restricted teachers for full models."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    train.add_parser(sub)
    teacher.add_parser(sub)
    compare.add_parser(sub)
    tune.add_parser(sub)
    add_logreg_parser(sub)
    add_lm_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RlimmError as err:
        print(f"rlimm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "rlimm: interrupted; finished runs are saved, rerun the same command to resume", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
