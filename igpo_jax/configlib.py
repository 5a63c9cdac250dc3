"""The config schema: defaults for every key, and validation before any compute.

Recipe files in ``configs/`` start from :func:`base_config` and override what
they need; ``--config.key=value`` overrides come on top. :func:`validate`
checks the whole config and names the key, the value and the fix.
"""

from __future__ import annotations

import dataclasses


import ml_collections

from igpo_jax import storage
from igpo_jax.checkpoint import CheckpointConfig
from igpo_jax.data.sources import DataConfig
from igpo_jax.distributed import DistributedConfig
from igpo_jax.metrics import MetricsConfig
from igpo_jax.models import family
from igpo_jax.models.family import ModelSettings
from igpo_jax.optim import OptimConfig
from igpo_jax.rewards import RewardConfig
from igpo_jax.rl.grpo import RLConfig
from igpo_jax.rl.igpo import IgpoConfig
from igpo_jax.sampler_config import SamplerConfig
from igpo_jax.sections import ConfigError, Section, check, field, sub
from igpo_jax.sharding import MeshConfig
from igpo_jax.stage_sections import EvalConfig, SFTConfig
from igpo_jax.tokenizers import TokenizerConfig

MODES = ("rl", "sft", "eval", "pipeline")

# docs/ALGORITHM.md section 6: reasoning in <reasoning> tags, the boxed answer in <answer> tags.
MATH_SYSTEM_PROMPT = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. "
    "Wrap the final answer in a \\boxed{}.\nRespond in the following format:\n<reasoning>\n"
    "Your reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>")


def base_config() -> ml_collections.ConfigDict:
    """Every key with its default (``--print_config`` shows them with their docs),
    generated from the typed sections of :class:`RunConfig`, where each key is declared
    once with its default and doc."""
    return RunConfig.config_dict()


def key_docs() -> dict[str, str]:
    """Dotted key -> its one-line doc (sections included), from the declarations."""
    return RunConfig.docs()


def print_config(c: ml_collections.ConfigDict) -> str:
    """Every key of ``c`` as ``key = value  # doc``, one per line."""
    docs = key_docs()
    out = []

    def walk(node, prefix):
        for k in sorted(node.keys()):
            v = node[k]
            full = prefix + k
            if isinstance(v, ml_collections.ConfigDict) and full not in FREE_FORM:
                if docs.get(full):
                    out.append(f"# {full}: {docs[full]}")
                walk(v, full + ".")
                continue
            if isinstance(v, ml_collections.ConfigDict):
                v = v.to_dict()
            doc = docs.get(full, "")
            out.append(f"{full} = {v!r}" + (f"  # {doc}" if doc else ""))
    walk(c, "")
    return "\n".join(out)


@dataclasses.dataclass(frozen=True)
class PipelineConfig(Section):
    """The config's ``pipeline`` section (read by igpo_jax/pipeline.py)."""

    stages: tuple = field((), "((name, {dotted.key: value}), ...); see igpo_jax/pipeline.py")
    only: str = field("", "run just this member")
    print_commands: bool = field(
        False, "print one command per member (for a scheduler) and exit")
    shipped: dict = field(factory=dict, free_form=True,
                          doc="stage name -> folder in igpo_jax/assets")
    use_shipped: bool = field(True, "start from shipped stage results when they exist")
    report_only: bool = field(
        False, "run nothing: report the members finished so far (an interim seed report "
        "of a sweep still running, or stopped)")
    compare: tuple = field(
        (), "seed sweeps (members named GROUP@SEED): paired comparisons (a, b) of held-out "
        "accuracy, a - b, reported with 95% intervals (igpo_jax/seed_stats.py)")
    report_name: str = field(
        "seed_report", "seed sweeps: the report's files in the workdir, NAME.md and NAME.json "
        "(and the plot: seeds.png for seed_report, else NAME.png), so that two sweeps of one "
        "workdir (the main comparison, the ablations) keep their own reports")

    def __post_init__(self):
        check(bool(self.report_name) and "/" not in self.report_name, "pipeline.report_name",
              self.report_name, "must be a plain file name (no folder)")


@dataclasses.dataclass(frozen=True)
class RunConfig(Section):
    """The whole config as frozen typed sections, each owned (and checked) by the module
    that uses it: what the entry point hands to the library (:func:`validate`)."""

    mode: str = field("rl", "rl | sft | eval | pipeline: what the run does")
    seed: int = field(0, "the run's randomness: data order, sampling, init (a sweep's seed axis)")
    workdir: str = field("", "set by --workdir")
    distributed: DistributedConfig = sub(
        DistributedConfig,
        "multi-host (igpo_jax/distributed.py): auto = explicit settings or a detected TPU pod / "
        "SLURM job; else one process. Env IGPO_COORDINATOR_ADDRESS/NUM_PROCESSES/PROCESS_ID.")
    model: ModelSettings = sub(ModelSettings, "the model: family, size, weights, dtypes (models/)")
    tokenizer: TokenizerConfig = sub(TokenizerConfig, "the tokenizer (tokenizers.py)")
    data: DataConfig = sub(DataConfig, "where problems come from (data/sources.py)")
    sampler: SamplerConfig = sub(SamplerConfig, "the block denoising sampler (sampling.py)")
    rl: RLConfig = sub(RLConfig, "GRPO / IGPO training (rl/)")
    igpo: IgpoConfig = sub(IgpoConfig, "IGPO's hints (rl/igpo.py)")
    sft: SFTConfig = sub(SFTConfig, "masked-diffusion SFT (sft.py)")
    eval: EvalConfig = sub(EvalConfig, "evaluation (evaluate.py)")
    reward: RewardConfig = sub(RewardConfig, "the reward (rewards.py)")
    optim: OptimConfig = sub(OptimConfig, "the optimiser (optim.py)")
    checkpoint: CheckpointConfig = sub(CheckpointConfig, "checkpoints (checkpoint.py)")
    mesh: MeshConfig = sub(MeshConfig, "the device mesh (sharding.py)")
    pipeline: PipelineConfig = sub(PipelineConfig, "multi-stage runs and sweeps (pipeline.py)")
    metrics: MetricsConfig = sub(MetricsConfig, "step records: TensorBoard, Weights & Biases "
                                 "(metrics.py); metrics.jsonl always")
    log_every: int = field(1, "steps between progress lines (and, for SFT, metrics records)")

    def __post_init__(self):
        check(self.mode in MODES, "mode", self.mode, f"expected one of {MODES}")
        check(self.log_every >= 1, "log_every", self.log_every, "must be >= 1")


FREE_FORM = RunConfig.free_form_keys()  # dicts whose keys are the user's (stage names)


def unknown_keys(c, schema, prefix: str = "") -> list[str]:
    """Dotted keys of ``c`` that the schema (:func:`base_config`) does not have."""
    out = []
    for key in c.keys():
        path = prefix + key
        if key not in schema:
            out.append(path)
        elif isinstance(c[key], ml_collections.ConfigDict) and path not in FREE_FORM:
            out += unknown_keys(c[key], schema[key], path + ".")
    return out


def known_keys() -> list[str]:
    """Every dotted key of the schema, sections included."""
    out = []

    def walk(node, prefix):
        for k in node.keys():
            out.append(prefix + k)
            if isinstance(node[k], ml_collections.ConfigDict) and prefix + k not in FREE_FORM:
                walk(node[k], prefix + k + ".")
    walk(base_config(), "")
    return out


def unknown_key_error(key: str) -> ConfigError:
    """The one message for a key the schema does not have, with the closest known key."""
    import difflib
    close = difflib.get_close_matches(key, sorted(known_keys()), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(f"unknown config key {key}{hint}; --print_config lists every key with "
                       f"its default and doc")


def typed(c) -> "RunConfig":
    """The config as frozen typed sections (:class:`RunConfig`), each section checked by
    its own class; a :class:`RunConfig` is returned as it is. Unknown keys are refused
    first, with a suggestion."""
    if isinstance(c, RunConfig):
        return c
    unknown = unknown_keys(c, base_config())
    if unknown:
        raise unknown_key_error(unknown[0])
    return RunConfig.from_config(c)


def validate(c, check_paths: bool = True, need_weights: bool = True) -> "RunConfig":
    """Checks the config as a whole and returns it typed; raises :class:`ConfigError` on
    the first problem. Each section checks its own fields (:func:`typed`); here are the
    checks that need two sections, the devices and the files.

    ``check_paths=False`` skips the existence of folders and files (a pipeline
    checks its later stages before the earlier ones have written them);
    ``need_weights=False`` (the dry run, the export) also needs no weights and no data."""
    c = typed(c)
    s, ig, m, d = c.sampler, c.igpo, c.model, c.data
    check(ig.reserve < s.gen_length, "igpo.reserve", ig.reserve,
           f"must be smaller than sampler.gen_length={s.gen_length}")
    check(c.sft.mask == "iid" or s.gen_length % s.block_length == 0, "sft.mask", c.sft.mask,
           "block masking needs sampler.block_length to divide sampler.gen_length")
    from igpo_jax.data.sources import GENERATED
    generated = d.source in GENERATED and not d.train_path and not d.test_path
    if d.source not in ("synthetic", "tfds") and not generated and need_weights:  # its files
        check(c.mode == "eval" or d.train_path, "data.train_path", d.train_path,
               f"data.source={d.source!r} reads files: set --config.data.train_path=FILE")
        check(d.test_path or (c.mode != "eval" and not c.eval.after_train and not c.eval.every),
               "data.test_path", d.test_path,
               f"evaluation with data.source={d.source!r} reads a file: set "
               f"--config.data.test_path=FILE")
    owner = family.family_of_preset(m.preset)  # a full-size preset: real weights wanted
    check(not need_weights or owner is None or m.hf_dir or m.init_from, "model.hf_dir", m.hf_dir,
           f"model.preset={m.preset} needs weights: --config.model.hf_dir=/path/to/"
           f"{family.FAMILIES[owner].checkpoint.split('/')[-1] if owner else ''}")
    check_devices(c)
    if not check_paths:
        return c
    for key in ("hf_dir", "init_from"):
        check(not m[key] or storage.isdir(m[key]), f"model.{key}", m[key], "folder not found")
    for key, path in (("data.train_path", c.data.train_path),
                      ("data.test_path", c.data.test_path),
                      ("sft.rewritten_path", c.sft.rewritten_path)):
        check(not path or storage.exists(path), key, path, "file not found")
    return c


def check_devices(c: "RunConfig") -> None:
    """The mesh fits the devices and the RL batch divides over its batch axes (SFT and
    evaluation batches that do not divide are replicated instead)."""
    import jax

    from igpo_jax import sharding
    try:
        data, fsdp, _ = sharding.mesh_shape(c.mesh.data, c.mesh.fsdp, c.mesh.tensor,
                                            jax.device_count())
    except ValueError as e:
        raise ConfigError(f"config.mesh={c.mesh.to_dict()}: {e}") from e
    per = data * fsdp
    n = c.rl.rows
    if c.mode == "rl":
        check(n % per == 0, "rl.prompts_per_step", c.rl.prompts_per_step,
               f"prompts_per_step x group_size = {n} must be divisible by the mesh's "
               f"data x fsdp = {per}")
