"""Entry point: ``python -m igpo_jax.main --config configs/X.py --workdir DIR``.

``--config`` takes a config file (``path.py`` or ``path.py:arg``) and
``--config.key=value`` overrides; the config's ``mode`` picks the stage.
"""

import glob
import logging as std_logging
import os
import re
import sys

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
_PRINT_CONFIG = flags.DEFINE_bool("print_config", False, "Print every key of the config "
                                   "(after overrides) with its value and doc, and exit.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show the full traceback of user errors.")

USAGE = """igpo_jax: IGPO / GRPO for masked diffusion LMs (LLaDA family) in JAX.

usage: python -m igpo_jax.main --config CONFIG[:ARG] --workdir DIR [--config.KEY=VALUE ...]
       python -m igpo_jax.main --config CONFIG --print_config      (every key, value, doc)
       python -m igpo_jax.main --config CONFIG --dry_run           (memory / FLOPs plan)
       python -m igpo_jax.main --config CONFIG --workdir RUN --export_hf OUT

modes (config.mode, set by the config file):
  sft        masked-diffusion supervised fine-tuning
  rl         GRPO / IGPO / resample (rl.algo) from an SFT or Hugging Face model
  eval       held-out evaluation (pass@1, avg@k) of model.init_from / model.hf_dir
  pipeline   a staged recipe or a sweep (pipeline.stages): each stage one of the above

shipped configs:
{configs}

Re-running a command resumes it; finished stages are skipped. Flags:
"""


def _config_files() -> list[tuple[str, str]]:
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    out = []
    for path in sorted(glob.glob(os.path.join(root, "*.py")) +
                       glob.glob(os.path.join(root, "sweeps", "*.py"))):
        if os.path.basename(path) == "__init__.py":
            continue
        with open(path, encoding="utf-8") as f:
            m = re.match(r'\s*(?:"""|\'\'\')\s*(.+)', f.read())
        out.append((os.path.relpath(path, os.path.dirname(root)),
                    m.group(1).strip() if m else ""))
    return out


def _usage() -> str:
    files = _config_files()
    listing = "\n".join(f"  {p:<28} {doc}" for p, doc in files) or \
        "  (none found: the configs/ folder sits beside igpo_jax/ in a source checkout)"
    return USAGE.format(configs=listing)


def _user_error(msg: str, code: int = 2):
    """One line on stderr and exit status 2 (the full traceback with --verbose)."""
    if "--verbose" in sys.argv or "--verbose=true" in sys.argv:
        raise
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(code)


def _unknown_override(argv) -> str | None:
    """The message for an override whose key the config does not have."""
    from igpo_jax import configlib
    known = set(configlib.known_keys())
    for a in argv[1:]:
        m = re.match(r"--config\.([\w.]+)(=|$)", a)
        if m and m.group(1) not in known and not any(
                m.group(1).startswith(f + ".") for f in configlib.FREE_FORM):
            return str(configlib.unknown_key_error(m.group(1)))
    return None


def _command_line_keys(argv) -> set[str]:
    """Dotted keys set by ``--config.KEY=VALUE`` (they win over a pipeline stage's own)."""
    return {m.group(1) for m in (re.match(r"--config\.([\w.]+)=", a) for a in argv[1:]) if m}


def parse_flags(argv):
    """absl flag parsing with one-line errors for what a user typed wrong."""
    if any(a in ("--help", "-h", "--helpshort") for a in argv[1:]):
        print(_usage() + flags.FLAGS.main_module_help())
        raise SystemExit(0)
    try:
        return flags.FLAGS(argv)
    except flags.IllegalFlagValueError as e:
        _user_error(str(e).replace("flag --", "--"))
    except flags.Error as e:
        _user_error(str(e))
    except (AttributeError, KeyError) as e:  # ml_collections: an override of an unknown key
        _user_error(_unknown_override(argv) or str(e))
    except (FileNotFoundError, ImportError, SyntaxError, ValueError) as e:  # the config file
        _user_error(f"cannot load the config: {type(e).__name__}: {e}")


flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # our progress and INFO lines; libraries (orbax, absl) only from WARNING up
    logging.set_verbosity(logging.WARNING)
    std_logging.getLogger("igpo_jax").setLevel(std_logging.INFO)
    if _PRINT_CONFIG.value:
        from igpo_jax import configlib
        print(configlib.print_config(_CONFIG.value))
        return
    if _DRY_RUN.value:
        if _DRY_RUN_DEVICES.value:
            import jax
            jax.config.update("jax_platforms", "cpu")
            jax.config.update("jax_num_cpu_devices", _DRY_RUN_DEVICES.value)
        from igpo_jax import configlib, dry_run
        run_cfg = configlib.validate(_CONFIG.value, check_paths=False, need_weights=False)
        dry_run.run(run_cfg, _DRY_RUN_JSON.value or None)
        return
    preemption.install_outside_loop_handler()
    try:
        distributed.initialize(_CONFIG.value.distributed)  # before any backend is touched
        if _EXPORT_HF.value:
            from igpo_jax import configlib, export
            if not _WORKDIR.value:
                raise app.UsageError("--export_hf needs --workdir (the run to export)")
            run_cfg = configlib.validate(_CONFIG.value, check_paths=True, need_weights=False)
            export.export(run_cfg, _WORKDIR.value, _EXPORT_HF.value, _EXPORT_STEP.value,
                          _EXPORT_DTYPE.value, _EXPORT_SHARD_GB.value)
            return
        run.run(_CONFIG.value, _WORKDIR.value, command_line_keys=_command_line_keys(sys.argv))
    except preemption.Preempted as e:
        logging.warning("%s", e)
        raise SystemExit(preemption.EXIT_PREEMPTED) from None
    except optim.NonFiniteError as e:
        logging.error("%s", e)
        raise SystemExit(3) from None
    except USER_ERRORS as e:
        _user_error(str(e))
    except Exception:
        stop = preemption.outside_stop()
        if stop is None:
            lost = distributed.lost_processes()
            if lost:
                import jax
                logging.error(
                    "process %d of %d: lost contact with process(es) %s (stopped answering: "
                    "killed, preempted or cut off); stopping. Re-run every process with the "
                    "same command to resume from the last checkpoint in %s",
                    jax.process_index(), jax.process_count(), lost, _WORKDIR.value)
                # no clean shutdown: jax.distributed's exit barrier waits for the lost
                # process and then aborts; every record is already flushed
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(distributed.EXIT_LOST_PROCESS)
            raise
        logging.warning("%s", stop)  # the stop, whatever exception it surfaced as
        raise SystemExit(preemption.EXIT_PREEMPTED) from None


def _user_error_types():
    from igpo_jax import checkpoint, configlib
    from igpo_jax.data.sources import DataError
    from igpo_jax.models.hf_io import CheckpointError
    return (configlib.ConfigError, DataError, checkpoint.CorruptCheckpointError,
            checkpoint.DiskFullError, FileNotFoundError, CheckpointError)


USER_ERRORS = _user_error_types()


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
