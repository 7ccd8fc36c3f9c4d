"""The subcommands of ``rlimm``: one module each, with ``add_parser(subparsers)``."""
