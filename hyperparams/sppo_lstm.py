"""
The entries of ``sppo_lstm.yml`` as a module:
``rl_zoo3 train --algo sppo_lstm --env <id> -conf sb3_symmetric.hyperparams.sppo_lstm``.
"""

import yaml

from sb3_symmetric.zoo import hyperparams_file

with open(hyperparams_file("sppo_lstm")) as file:
    hyperparams = yaml.safe_load(file)
