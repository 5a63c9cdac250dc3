"""Entry point: ``python -m igpo_jax.main --config configs/X.py --workdir DIR``.

``--config`` takes a config file (``path.py`` or ``path.py:arg``) and
``--config.key=value`` overrides; the config's ``mode`` picks the stage.
"""

import logging as std_logging

from absl import app, flags, logging
from ml_collections import config_flags

from igpo_jax import optim, preemption, run

_CONFIG = config_flags.DEFINE_config_file("config", None, "Recipe config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and results go.")
flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # our progress and INFO lines; libraries (orbax, absl) only from WARNING up
    logging.set_verbosity(logging.WARNING)
    std_logging.getLogger("igpo_jax").setLevel(std_logging.INFO)
    try:
        run.run(_CONFIG.value, _WORKDIR.value)
    except preemption.Preempted as e:
        logging.warning("%s", e)
        raise SystemExit(preemption.EXIT_PREEMPTED) from None
    except optim.NonFiniteError as e:
        logging.error("%s", e)
        raise SystemExit(3) from None


if __name__ == "__main__":
    app.run(main)
