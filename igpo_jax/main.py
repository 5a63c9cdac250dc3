"""Entry point: ``python -m igpo_jax.main --config configs/X.py --workdir DIR``.

``--config`` takes a config file (``path.py`` or ``path.py:arg``) and
``--config.key=value`` overrides; the config's ``mode`` picks the stage.
"""

import logging as std_logging

from absl import app, flags, logging
from ml_collections import config_flags

from igpo_jax import distributed, optim, preemption, run

_CONFIG = config_flags.DEFINE_config_file("config", None, "Recipe config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and results go.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Compile the RL programs with abstract inputs "
                             "and print per-device memory and FLOPs; allocate nothing.")
_DRY_RUN_DEVICES = flags.DEFINE_integer("dry_run_devices", 0, "With --dry_run: plan on this "
                                        "many simulated CPU devices (e.g. 32 for a v5p-32).")
_DRY_RUN_JSON = flags.DEFINE_string("dry_run_json", "", "With --dry_run: also write the report.")
_EXPORT_HF = flags.DEFINE_string("export_hf", "", "Write the latest checkpoint of --workdir "
                                 "as a Hugging Face LLaDA checkpoint in this folder (LoRA "
                                 "adapters merged) and exit.")
_EXPORT_STEP = flags.DEFINE_integer("export_step", None, "With --export_hf: this step "
                                    "instead of the latest.")
_EXPORT_DTYPE = flags.DEFINE_enum("export_dtype", "", ["", "float32", "bfloat16", "float16"],
                                  "With --export_hf: tensor dtype (default: model.param_dtype).")
_EXPORT_SHARD_GB = flags.DEFINE_float("export_shard_gb", 5.0, "With --export_hf: largest "
                                      "safetensors file in GiB (0: one file).")
flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # our progress and INFO lines; libraries (orbax, absl) only from WARNING up
    logging.set_verbosity(logging.WARNING)
    std_logging.getLogger("igpo_jax").setLevel(std_logging.INFO)
    if _DRY_RUN.value:
        if _DRY_RUN_DEVICES.value:
            import jax
            jax.config.update("jax_platforms", "cpu")
            jax.config.update("jax_num_cpu_devices", _DRY_RUN_DEVICES.value)
        from igpo_jax import configlib, dry_run
        configlib.validate(_CONFIG.value, check_paths=False, need_weights=False)
        dry_run.run(_CONFIG.value, _DRY_RUN_JSON.value or None)
        return
    try:
        distributed.initialize(_CONFIG.value.distributed)  # before any backend is touched
        if _EXPORT_HF.value:
            from igpo_jax import configlib, export
            if not _WORKDIR.value:
                raise app.UsageError("--export_hf needs --workdir (the run to export)")
            configlib.validate(_CONFIG.value, check_paths=True, need_weights=False)
            export.export(_CONFIG.value, _WORKDIR.value, _EXPORT_HF.value, _EXPORT_STEP.value,
                          _EXPORT_DTYPE.value, _EXPORT_SHARD_GB.value)
            return
        run.run(_CONFIG.value, _WORKDIR.value)
    except preemption.Preempted as e:
        logging.warning("%s", e)
        raise SystemExit(preemption.EXIT_PREEMPTED) from None
    except optim.NonFiniteError as e:
        logging.error("%s", e)
        raise SystemExit(3) from None


if __name__ == "__main__":
    app.run(main)
