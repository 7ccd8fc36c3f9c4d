"""SB3 algorithms with an IMM/naive regulariser, and restricted teachers (installed as ``rlimm.agents``)."""
