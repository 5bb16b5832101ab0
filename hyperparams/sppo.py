"""The entries of ``sppo.yml`` as a module: ``rl_zoo3 train --algo sppo --env <id> -conf sb3_symmetric.hyperparams.sppo``."""

import yaml

from sb3_symmetric.zoo import hyperparams_file

with open(hyperparams_file("sppo")) as file:
    hyperparams = yaml.safe_load(file)
