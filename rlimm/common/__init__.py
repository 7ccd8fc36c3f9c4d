"""The scaffold the three experiments (RL, language modelling, logistic regression) share: strict
configs read from YAML, atomic file writes, summary statistics with paired intervals, and the shape of
a subcommand."""
