"""The IMM regulariser without stable-baselines3: the teacher's view of a batch and the policy's action
distribution → λ · divergence.

- :mod:`~rlimm.agents.imm.settings`: :class:`InductionSettings` (method, k, estimator, samples), the
  one spelling of the induction settings and their defaults;
- :mod:`~rlimm.agents.imm.regularizer`: :class:`TeacherRegularizer`, the term and its diagnostics;
- :mod:`~rlimm.agents.imm.families`: what the term needs to know of an action distribution, by action
  space;
- :mod:`~rlimm.agents.imm.draws`: the ``knn`` and ``marginal`` draws of hidden parts.

Nothing in this package imports stable-baselines3 (the glue is :mod:`rlimm.agents.common`), and this
``__init__`` imports nothing, so that the config can read the settings without torch.
"""
