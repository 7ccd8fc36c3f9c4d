"""The stable-baselines3 glue shared by the rlimm algorithms (each algorithm has its own folder).

- :mod:`~rlimm.agents.common.mixin`: :class:`RegularizedMixin`, what every algorithm adds to its SB3
  base (constructor arguments, the teacher's view of a batch, the loss term per minibatch and its λ,
  TensorBoard keys);
- :mod:`~rlimm.agents.common.on_policy` and :mod:`~rlimm.agents.common.off_policy`: the glue of the
  same shape for the two families (REINFORCE, PPO, A2C; SAC): when the teacher's view is computed, the
  buffer that keeps it, sampled induction's pool;
- :mod:`~rlimm.agents.common.policies`: actor-critic policies that also return their action
  distribution;
- :mod:`~rlimm.agents.common.rollout_buffers` and :mod:`~rlimm.agents.common.replay_buffers`: SB3's
  buffers plus the teacher's view of each stored observation;
- :mod:`~rlimm.agents.common.saving`: save/load without the teacher, and what a saved model's zip holds
  so that stock SB3 loads it.
"""
