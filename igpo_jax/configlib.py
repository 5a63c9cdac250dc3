"""The config schema: defaults for every key, and validation before any compute.

Recipe files in ``configs/`` start from :func:`base_config` and override what
they need; ``--config.key=value`` overrides come on top. :func:`validate`
checks the whole config and names the key, the value and the fix.
"""

from __future__ import annotations

import os

import ml_collections

from igpo_jax.models.lora import LoraConfig
from igpo_jax.rl.igpo import POSITIONS
from igpo_jax.sampling import CACHE_MODES, REMASKING, UNMASK_MODES

MODES = ("rl", "sft", "eval", "pipeline")

# SPEC.md section 6: reasoning in <reasoning> tags, the boxed answer in <answer> tags.
MATH_SYSTEM_PROMPT = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. "
    "Wrap the final answer in a \\boxed{}.\nRespond in the following format:\n<reasoning>\n"
    "Your reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>")
ALGOS = ("grpo", "igpo", "resample")  # resample: IGPO's extra samples without hints
DATA_SOURCES = ("synthetic", "gsm8k", "metamath", "math", "amc", "jsonl", "tfds")


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.mode = "rl"  # rl | sft | eval
    c.seed = 0
    c.workdir = ""  # set by --workdir

    # multi-host (igpo_jax/distributed.py): auto = explicit settings or a detected TPU pod /
    # SLURM job; else one process. Env IGPO_COORDINATOR_ADDRESS/NUM_PROCESSES/PROCESS_ID.
    c.distributed = ml_collections.ConfigDict(dict(
        mode="auto", coordinator_address="", num_processes=0, process_id=-1,
        cpu_collectives="gloo",  # collectives between CPU processes (tests, CPU clusters)
    ))
    c.model = ml_collections.ConfigDict(dict(
        preset="tiny",  # tiny | small | llada_8b (random init) ... unless hf_dir / init_from
        hf_dir="",  # Hugging Face LLaDA folder (config.json + safetensors)
        init_from="",  # a workdir (or its checkpoints/ folder) of an earlier run, e.g. SFT
        param_dtype="float32", dtype="float32", remat=False,
        overrides=ml_collections.ConfigDict(dict(d_model=0, n_layers=0, n_heads=0,
                                                 n_kv_heads=0, mlp_hidden_size=0)),
        # LoRA (models/lora.py): rank 0 = train every parameter. With rank > 0 only the
        # adapters are trained and checkpointed; the reference policy is the base model.
        lora=ml_collections.ConfigDict(dict(
            rank=0, alpha=64.0,  # scale alpha / rank
            dropout=0.0,  # on the adapters' input, training forward only
            # comma-separated subset of q_proj,k_proj,v_proj,attn_out,ff_proj,up_proj,ff_out
            targets="q_proj,k_proj,v_proj,up_proj",
            param_dtype="float32",  # the adapters' dtype (and so their AdamW moments')
        )),
    ))
    c.tokenizer = ml_collections.ConfigDict(dict(kind="sentencepiece", path=""))
    c.data = ml_collections.ConfigDict(dict(
        source="synthetic",  # synthetic | gsm8k | metamath | math | amc | jsonl | tfds
        seed=0,  # data generation (synthetic); the run's shuffling uses config.seed
        train_path="", test_path="", skip_bad_rows=False, system_prompt="",
        question_field="question", answer_field="answer", trace_field="",
        metamath_types=("GSM_AnsAug", "MATH_AnsAug"),
        # source="tfds": a prepared tensorflow-datasets dataset (array_record, no TensorFlow)
        tfds=ml_collections.ConfigDict(dict(name="", data_dir="", train_split="train",
                                            test_split="test",
                                            format="gsm8k")),  # row format: gsm8k|math|...
        synthetic=ml_collections.ConfigDict(dict(
            modulus=5, min_terms=2, max_terms=6, num_train=2000, num_test=200,
            heldout_share=0.2, test_min_terms=2, test_max_terms=6,
            width=0,  # >0: pad questions to this many slots (fixed term positions)
            style="sums",  # sums: running sums per line | steps: "a+t=c" | chain: "+t=c" per line
            weights=(),  # training mix over term counts min..max (empty = uniform)
        )),
    ))
    c.sampler = ml_collections.ConfigDict(dict(
        prompt_len=16, gen_length=64, block_length=16, steps=32, temperature=1.2,
        remasking="low_confidence", cfg_scale=0.0,
        early_stop=False,  # fill with EOS once every row's current block is all EOS
        rollout_batch_size=32,  # rows per sampler call (rollouts are chunked to this)
        # Fast decoding (sampling.py; README "Fast rollouts"), for RL rollouts and eval:
        cache="none",  # none (exact) | prefix | dual: reuse keys/values within a block
        unmask="fixed",  # fixed (steps schedule) | threshold (confidence > threshold)
        threshold=0.9,  # unmask="threshold" only
    ))
    c.rl = ml_collections.ConfigDict(dict(
        algo="igpo", num_steps=10, prompts_per_step=4, group_size=8,
        num_iterations=1,  # mu: optimiser steps per batch of rollouts
        beta=0.0, eps_low=0.2, eps_high=0.2,
        ratio="sequence",  # token | sequence (GSPO)
        # sequence ratio averages the log-ratio over: loss_mask (the tokens trained on) |
        # completion (every generated position, filtered hints and EOS padding included:
        # the reference code)
        ratio_positions="loss_mask",
        # loss normalisation: batch (every token of the optimiser step's batch counts the
        # same) | micro_batch (reference code: each micro-batch by its own token count)
        loss_norm="batch",
        aggregation="token",  # token | sequence
        advantage="mean",  # mean | std
        loss="clipped_surrogate",  # a name in rl/grpo.py POLICY_LOSSES
        p_mask_prompt=0.0,  # 0.15 = d1 estimator
        train_on_padding=False,  # reference code: every generated position counts
        micro_batch_size=16,
    ))
    c.igpo = ml_collections.ConfigDict(dict(
        min_chunk=5, max_chunk=10, eta_low=0.2, eta_high=0.6, reserve=30,
        position="as_is", reveal_last_chunk=False, exclude_last_step=False,
        lam=0.5, tau=0.2,
    ))
    c.sft = ml_collections.ConfigDict(dict(
        num_steps=100, batch_size=32, micro_batch_size=32, eps=1e-3,
        t_sampling="uniform",  # uniform | stratified (t in equal strata across the batch)
        overlong="drop",  # traces longer than gen_length: drop | truncate
        rewritten_path="",  # JSONL {"question", "trace"}: length-aligned traces to train on
    ))
    c.eval = ml_collections.ConfigDict(dict(
        split="test", num_examples=0,  # 0 = all
        k=1,  # samples per problem: pass@1 at temperature 0, avg@k above it
        temperature=0.0, batch_size=32,
        every=0,  # RL/SFT: evaluate every this many steps on eval.during_examples (0 = off)
        during_examples=64,
        after_train=False,  # RL/SFT: evaluate on the held-out split when training ends
        exact_sampler=False,  # evaluate with cache=none, unmask=fixed whatever sampler says
    ))
    c.reward = ml_collections.ConfigDict(dict(correct_weight=3.0, format_weight=1.0,
                                              timeout=2.0))
    c.optim = ml_collections.ConfigDict(dict(
        lr=5e-7, warmup_steps=50, schedule="linear", b1=0.9, b2=0.99, weight_decay=0.1,
        grad_clip=0.2,
        moments_dtype="float32",  # AdamW moments: float32 | param (the parameters' dtype)
        max_nonfinite=5,  # stop after this many skipped (non-finite) updates in a row
    ))
    c.checkpoint = ml_collections.ConfigDict(dict(every=1, keep=3))
    c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, tensor=1))
    c.pipeline = ml_collections.ConfigDict(dict(
        stages=(),  # ((name, {dotted.key: value}), ...); see igpo_jax/pipeline.py
        only="",  # run just this member
        print_commands=False,  # print one command per member (for a scheduler) and exit
        shipped=ml_collections.ConfigDict(),  # stage name -> folder in igpo_jax/assets
        use_shipped=True,  # start from shipped stage results when they exist
        # seed sweeps (members named GROUP@SEED): paired comparisons (a, b) of held-out
        # accuracy, a - b, reported with 95% intervals (igpo_jax/seed_stats.py)
        compare=(),
    ))
    c.log_every = 1
    return c


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


def _check(cond: bool, key: str, value, fix: str):
    if not cond:
        raise ConfigError(f"config.{key}={value!r}: {fix}")


FREE_FORM = ("pipeline.shipped",)  # sections whose keys are the user's (stage names)


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


def validate(c: ml_collections.ConfigDict, check_paths: bool = True,
             need_weights: bool = True) -> None:
    """Checks the config as a whole; raises :class:`ConfigError` on the first problem.

    ``check_paths=False`` skips the existence of folders and files (a pipeline
    checks its later stages before the earlier ones have written them)."""
    unknown = unknown_keys(c, base_config())
    _check(not unknown, unknown[0] if unknown else "", "?",
           "unknown key (a typo?); every key and its default is in igpo_jax/configlib.py")
    _check(c.mode in MODES, "mode", c.mode, f"expected one of {MODES}")
    s, rl, ig = c.sampler, c.rl, c.igpo
    for k in ("prompt_len", "gen_length", "block_length", "steps", "rollout_batch_size"):
        _check(s[k] > 0, f"sampler.{k}", s[k], "must be positive")
    _check(s.gen_length % s.block_length == 0, "sampler.gen_length", s.gen_length,
           f"must be a multiple of sampler.block_length={s.block_length}")
    nb = s.gen_length // s.block_length
    _check(s.steps % nb == 0, "sampler.steps", s.steps,
           f"must be a multiple of the number of blocks gen_length/block_length={nb}")
    _check(s.remasking in REMASKING, "sampler.remasking", s.remasking, f"expected {REMASKING}")
    _check(s.temperature >= 0, "sampler.temperature", s.temperature, "must be >= 0")
    _check(s.cache in CACHE_MODES, "sampler.cache", s.cache, f"expected one of {CACHE_MODES}")
    _check(s.unmask in UNMASK_MODES, "sampler.unmask", s.unmask,
           f"expected one of {UNMASK_MODES}")
    _check(0 <= s.threshold <= 1, "sampler.threshold", s.threshold, "must be in [0, 1]")
    _check(s.unmask == "fixed" or s.remasking == "low_confidence", "sampler.unmask", s.unmask,
           "threshold unmasking compares confidences: it needs remasking=low_confidence")
    _check(rl.algo in ALGOS, "rl.algo", rl.algo, f"expected one of {ALGOS}")
    _check(rl.group_size >= 2, "rl.group_size", rl.group_size,
           "group methods need at least 2 completions per prompt")
    _check(rl.num_steps >= 0, "rl.num_steps", rl.num_steps, "must be >= 0")
    _check(rl.prompts_per_step >= 1, "rl.prompts_per_step", rl.prompts_per_step, "must be >= 1")
    _check(rl.num_iterations >= 1, "rl.num_iterations", rl.num_iterations, "must be >= 1")
    n = rl.prompts_per_step * rl.group_size
    _check(rl.micro_batch_size > 0 and n % rl.micro_batch_size == 0, "rl.micro_batch_size",
           rl.micro_batch_size, f"must divide prompts_per_step x group_size = {n}")
    _check(rl.ratio in ("token", "sequence"), "rl.ratio", rl.ratio, "expected token|sequence")
    _check(rl.aggregation in ("token", "sequence"), "rl.aggregation", rl.aggregation,
           "expected token|sequence")
    _check(rl.ratio_positions in ("loss_mask", "completion"), "rl.ratio_positions",
           rl.ratio_positions, "expected loss_mask|completion")
    _check(rl.loss_norm in ("batch", "micro_batch"), "rl.loss_norm", rl.loss_norm,
           "expected batch|micro_batch")
    _check(rl.advantage in ("mean", "std"), "rl.advantage", rl.advantage, "expected mean|std")
    _check(rl.loss == "clipped_surrogate", "rl.loss", rl.loss, "expected clipped_surrogate")
    _check(0 <= rl.p_mask_prompt < 1, "rl.p_mask_prompt", rl.p_mask_prompt, "must be in [0, 1)")
    _check(rl.beta >= 0, "rl.beta", rl.beta, "must be >= 0")
    _check(0 <= rl.eps_low < 1 and rl.eps_high >= 0, "rl.eps_low/eps_high",
           (rl.eps_low, rl.eps_high), "need 0 <= eps_low < 1 and eps_high >= 0")
    _check(0 <= ig.eta_low <= ig.eta_high <= 1, "igpo.eta_low/eta_high",
           (ig.eta_low, ig.eta_high), "need 0 <= eta_low <= eta_high <= 1")
    _check(0 < ig.lam <= 1, "igpo.lam", ig.lam, "need 0 < lambda <= 1")
    _check(0 < ig.tau <= 1, "igpo.tau", ig.tau, "need 0 < tau <= 1 (1 = no entropy filter)")
    _check(1 <= ig.min_chunk <= ig.max_chunk, "igpo.min_chunk/max_chunk",
           (ig.min_chunk, ig.max_chunk), "need 1 <= min_chunk <= max_chunk")
    _check(0 <= ig.reserve < s.gen_length, "igpo.reserve", ig.reserve,
           f"must be smaller than sampler.gen_length={s.gen_length}")
    _check(ig.position in POSITIONS, "igpo.position", ig.position, f"expected {POSITIONS}")
    f = c.sft
    _check(f.num_steps >= 0 and f.batch_size >= 1, "sft.num_steps/batch_size",
           (f.num_steps, f.batch_size), "need num_steps >= 0 and batch_size >= 1")
    _check(f.micro_batch_size >= 1 and f.batch_size % f.micro_batch_size == 0,
           "sft.micro_batch_size", f.micro_batch_size, f"must divide sft.batch_size={f.batch_size}")
    _check(f.t_sampling in ("uniform", "stratified"), "sft.t_sampling", f.t_sampling,
           "expected uniform|stratified")
    _check(f.overlong in ("drop", "truncate"), "sft.overlong", f.overlong, "expected drop|truncate")
    _check(0 < f.eps < 1, "sft.eps", f.eps, "must be in (0, 1)")
    e = c.eval
    _check(e.k >= 1 and e.batch_size >= 1, "eval.k/batch_size", (e.k, e.batch_size),
           "must be >= 1")
    _check(e.temperature > 0 or e.k == 1, "eval.k", e.k,
           "avg@k with k > 1 needs eval.temperature > 0 (temperature 0 repeats one answer)")
    _check(e.split in ("train", "test"), "eval.split", e.split, "expected train|test")
    o = c.optim
    _check(o.lr >= 0 and o.warmup_steps >= 0, "optim.lr/warmup_steps",
           (o.lr, o.warmup_steps), "must be >= 0")
    _check(o.moments_dtype in ("float32", "param"), "optim.moments_dtype", o.moments_dtype,
           "expected float32|param")
    _check(c.checkpoint.every >= 1 and c.checkpoint.keep >= 1, "checkpoint.every/keep",
           (c.checkpoint.every, c.checkpoint.keep), "must be >= 1")
    _check(c.tokenizer.kind in ("sentencepiece", "hf"), "tokenizer.kind", c.tokenizer.kind,
           "expected sentencepiece|hf")
    m = c.model
    d = c.data
    _check(d.source in DATA_SOURCES, "data.source", d.source, f"expected one of {DATA_SOURCES}")
    _check(d.source != "tfds" or d.tfds.name, "data.tfds.name", d.tfds.name,
           "data.source='tfds' needs the dataset's name")
    _check(d.source != "tfds" or d.tfds.format in DATA_SOURCES[1:-1], "data.tfds.format",
           d.tfds.format, f"expected one of {DATA_SOURCES[1:-1]}")
    _check(m.preset in ("tiny", "small", "llada_8b") or m.hf_dir, "model.preset", m.preset,
           "expected tiny|small|llada_8b, or set model.hf_dir")
    _check(m.lora.rank >= 0, "model.lora.rank", m.lora.rank, "must be >= 0 (0 = no LoRA)")
    try:
        LoraConfig.from_config(m.lora)
    except ValueError as e:
        raise ConfigError(f"config.model.lora={m.lora.to_dict()}: {e}") from None
    _check(not need_weights or m.preset != "llada_8b" or m.hf_dir or m.init_from,
           "model.hf_dir", m.hf_dir,
           "the LLaDA-8B recipe needs weights: --config.model.hf_dir=/path/to/LLaDA-8B-Instruct")
    check_devices(c)
    if not check_paths:
        return
    for key in ("hf_dir", "init_from"):
        _check(not m[key] or os.path.isdir(m[key]), f"model.{key}", m[key], "folder not found")
    for key, path in (("data.train_path", c.data.train_path),
                      ("data.test_path", c.data.test_path),
                      ("sft.rewritten_path", c.sft.rewritten_path)):
        _check(not path or os.path.exists(path), key, path, "file not found")


def check_devices(c: ml_collections.ConfigDict) -> None:
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
    n = c.rl.prompts_per_step * c.rl.group_size
    if c.mode == "rl":
        _check(n % per == 0, "rl.prompts_per_step", c.rl.prompts_per_step,
               f"prompts_per_step x group_size = {n} must be divisible by the mesh's "
               f"data x fsdp = {per}")
