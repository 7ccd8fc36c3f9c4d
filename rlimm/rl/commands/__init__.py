"""The RL experiment's subcommands (``train``, ``teacher``, ``compare``, ``tune``): one module each,
with ``add_parser(subparsers) -> parser`` and ``run(args) -> int`` (see :mod:`rlimm.common.command`)."""
