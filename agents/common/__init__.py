"""The stable-baselines3 glue shared by the rlimm algorithms.

- :mod:`~rlimm.agents.common.policies`: actor-critic policies that also return their action
  distribution;
- :mod:`~rlimm.agents.common.rollout_buffers` and :mod:`~rlimm.agents.common.replay_buffers`: SB3's
  buffers plus the teacher's view of each stored observation;
- :mod:`~rlimm.agents.common.saving`: what a saved model's zip holds, so that stock SB3 loads it;
- :mod:`~rlimm.agents.common.mixin`: :class:`RegularizedMixin`, what every algorithm adds to its SB3
  base (constructor arguments, the teacher's view once per rollout, the one loss call per minibatch,
  save/load and TensorBoard keys).
"""
