"""The entries of ``sa2c.yml`` as a module: ``rl_zoo3 train --algo sa2c --env <id> -conf sb3_symmetric.hyperparams.sa2c``."""

import yaml

from sb3_symmetric.zoo import hyperparams_file

with open(hyperparams_file("sa2c")) as file:
    hyperparams = yaml.safe_load(file)
