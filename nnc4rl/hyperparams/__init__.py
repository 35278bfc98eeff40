"""Data: the paper's hyperparameters, one YAML file per algorithm (read by
:func:`nnc4rl.core.config.default_hyperparams`)."""
