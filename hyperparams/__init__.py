"""RL-Zoo hyperparameters: sppo.yml / sa2c.yml, also as modules (-conf sb3_symmetric.hyperparams.sppo)."""
