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
from igpo_jax.evaluate import EvalConfig
from igpo_jax.models.family import ModelSettings
from igpo_jax.optim import OptimConfig
from igpo_jax.rewards import RewardConfig
from igpo_jax.rl.grpo import RLConfig
from igpo_jax.rl.igpo import IgpoConfig
from igpo_jax.sampling import SamplerSettings
from igpo_jax.sections import ConfigError, Section, check, sub
from igpo_jax.sft import SFTConfig
from igpo_jax.sharding import MeshConfig
from igpo_jax.tokenizers import TokenizerConfig

MODES = ("rl", "sft", "eval", "pipeline")

# docs/ALGORITHM.md section 6: reasoning in <reasoning> tags, the boxed answer in <answer> tags.
MATH_SYSTEM_PROMPT = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. "
    "Wrap the final answer in a \\boxed{}.\nRespond in the following format:\n<reasoning>\n"
    "Your reasoning here\n</reasoning>\n<answer>\n\\boxed{...}\n</answer>")


def base_config() -> ml_collections.ConfigDict:
    """Every key with its default and a one-line doc (``--print_config`` shows them)."""
    c = ml_collections.ConfigDict()
    c.mode = "rl"  # rl | sft | eval | pipeline: what the run does
    c.seed = 0  # the run's randomness: data order, sampling, init (a sweep's seed axis)
    c.workdir = ""  # set by --workdir

    # multi-host (igpo_jax/distributed.py): auto = explicit settings or a detected TPU pod /
    # SLURM job; else one process. Env IGPO_COORDINATOR_ADDRESS/NUM_PROCESSES/PROCESS_ID.
    c.distributed = ml_collections.ConfigDict(dict(
        mode="auto",  # auto | off | on: start jax.distributed (auto: when a pod/job is detected)
        coordinator_address="",  # host:port of process 0 (empty: detected)
        num_processes=0,  # processes in the job (0: detected)
        process_id=-1,  # this process's index (-1: detected)
        cpu_collectives="gloo",  # collectives between CPU processes (tests, CPU clusters)
    ))
    c.model = ml_collections.ConfigDict(dict(
        # llada | dream: the model family (models/family.py): architecture switches, Hugging
        # Face layout, special tokens and chat template (an hf_dir's config.json decides)
        family="llada",
        # tiny | small (random init, sized by the tokenizer, in the family's shape) |
        # llada_8b | dream_7b (random init at full size) ... unless hf_dir / init_from
        preset="tiny",
        hf_dir="",  # Hugging Face folder (config.json + safetensors) of a LLaDA or Dream model
        init_from="",  # a workdir (or its checkpoints/ folder) of an earlier run, e.g. SFT
        param_dtype="float32",  # parameter storage dtype: float32 | bfloat16
        dtype="float32",  # compute dtype of the matmuls: float32 | bfloat16
        remat=False,  # recompute each layer in the backward pass (less memory, more FLOPs)
        # model size over the preset (0 = the preset's value)
        overrides=ml_collections.ConfigDict(dict(
            d_model=0,  # hidden size
            n_layers=0,  # transformer blocks
            n_heads=0,  # query heads
            n_kv_heads=0,  # key/value heads (GQA when fewer than n_heads)
            mlp_hidden_size=0,  # SwiGLU hidden size
        )),
        # LoRA (models/lora.py): rank 0 = train every parameter. With rank > 0 only the
        # adapters are trained and checkpointed; the reference policy is the base model.
        lora=ml_collections.ConfigDict(dict(
            rank=0,  # adapter rank (0 = no LoRA: full-parameter training)
            alpha=64.0,  # scale alpha / rank
            dropout=0.0,  # on the adapters' input, training forward only
            # comma-separated subset of q_proj,k_proj,v_proj,attn_out,ff_proj,up_proj,ff_out
            targets="q_proj,k_proj,v_proj,up_proj",
            param_dtype="float32",  # the adapters' dtype (and so their AdamW moments')
            # sample from base + adapters folded together and cast to the base dtype (fast;
            # with bfloat16 weights small adapter updates round away) | False: unmerged,
            # exactly the policy the log-probs use
            sample_merged=True,
        )),
    ))
    c.tokenizer = ml_collections.ConfigDict(dict(
        kind="sentencepiece",  # sentencepiece | hf (LLaDA's tokenizer.json)
        path="",  # model / tokenizer.json folder (empty: the shipped synthetic-task model)
    ))
    c.data = ml_collections.ConfigDict(dict(
        source="synthetic",  # synthetic | gsm8k | metamath | math | amc | jsonl | tfds
        seed=0,  # data generation (synthetic); the run's shuffling uses config.seed
        train_path="",  # training file (JSONL / JSON / parquet) of a file source
        test_path="",  # held-out file of a file source
        skip_bad_rows=False,  # drop (and count) malformed or too-long rows instead of stopping
        system_prompt="",  # system turn of every prompt (empty: none)
        question_field="question",  # source=jsonl: the question's field
        answer_field="answer",  # source=jsonl: the graded answer's field
        trace_field="",  # source=jsonl: the reference solution's field (hints, SFT)
        metamath_types=("GSM_AnsAug", "MATH_AnsAug"),  # source=metamath: row types kept
        # source="tfds": a prepared tensorflow-datasets dataset (array_record, no TensorFlow)
        tfds=ml_collections.ConfigDict(dict(
            name="",  # dataset name (e.g. gsm8k or my_math:1.0.0)
            data_dir="",  # where it was prepared (empty: the tfds default)
            train_split="train",  # tfds split for training (slicing allowed)
            test_split="test",  # tfds split for evaluation
            format="gsm8k",  # row format: gsm8k|math|...
        )),
        synthetic=ml_collections.ConfigDict(dict(
            task="sums",  # sums: running sums mod `modulus` | pointer: follow a cycle of `nodes`
            modulus=5,  # running sums modulo this (2..10)
            nodes=10,  # task=pointer: letters on the cycle (3..26)
            shuffle=False,  # task=pointer: list the pairs in random order (else a>, b>, ...)
            min_terms=2,  # fewest terms (sums) or hops (pointer) of a training problem
            max_terms=6,  # most terms (sums) or hops (pointer) of a training problem
            num_train=2000,  # training problems drawn
            num_test=200,  # held-out problems drawn
            heldout_share=0.2,  # share of all problems reserved for held-out (by hash)
            test_min_terms=2,  # fewest terms / hops of a held-out problem
            test_max_terms=6,  # most terms / hops of a held-out problem
            width=0,  # >0: pad questions to this many slots (fixed term positions)
            style="sums",  # sums: running sums per line | steps: "a+t=c" | chain: "+t=c" per line
            weights=(),  # training mix over term counts min..max (empty = uniform)
        )),
    ))
    c.sampler = ml_collections.ConfigDict(dict(
        prompt_len=16,  # prompt tokens (left-padded); longer prompts stop at load time
        gen_length=64,  # generated tokens per completion
        block_length=16,  # semi-autoregressive block size (divides gen_length)
        steps=32,  # denoising steps in all (a multiple of the number of blocks)
        temperature=1.2,  # rollout sampling temperature (eval.temperature for evaluation)
        remasking="low_confidence",  # low_confidence | random: which positions to unmask
        cfg_scale=0.0,  # classifier-free guidance scale (0 = off)
        early_stop=False,  # fill with EOS once every row's current block is all EOS
        rollout_batch_size=32,  # rows per sampler call (rollouts are chunked to this)
        # Fast decoding (sampling.py; README "Fast rollouts"), for RL rollouts and eval:
        cache="none",  # none (exact) | prefix | dual: reuse keys/values within a block
        unmask="fixed",  # fixed (steps schedule) | threshold (confidence > threshold)
        threshold=0.9,  # unmask="threshold" only
    ))
    c.rl = ml_collections.ConfigDict(dict(
        algo="igpo",  # grpo | igpo | resample (IGPO's extra samples without hints: control)
        num_steps=10,  # rollout batches (each followed by num_iterations updates)
        prompts_per_step=4,  # prompts per rollout batch
        group_size=8,  # completions per prompt (G)
        num_iterations=1,  # mu: optimiser steps per batch of rollouts
        beta=0.0,  # KL weight to the reference (start) policy (0 = no reference model)
        eps_low=0.2,  # ratio clip below 1 - eps_low
        eps_high=0.2,  # ratio clip above 1 + eps_high
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
        # clipped_surrogate (GRPO) | spg (SPG's sandwiched bound; estimator block or elbo)
        # | wd1 (weighted likelihood); spg and wd1 have no ratio, clipping or KL
        loss="clipped_surrogate",
        eubo_beta=1.5,  # loss=spg: the upper bound's beta
        eubo_mix=0.5,  # loss=spg: negative advantages use mix * upper + (1 - mix) * lower
        # how the loss reads log pi(token) (rl/estimators.py): one_step (d1: completion
        # masked, one pass) | trajectory (the sampler's own contexts, Sample.order) |
        # block (SPG: earlier blocks clean, the block at a random ratio) | elbo (LLaDA)
        estimator="one_step",
        trajectory_passes=0,  # trajectory: forward passes per block (0 = one per step)
        mc_samples=1,  # block / elbo: mask draws averaged
        coupled=False,  # block / elbo: complementary mask pairs (every token scored)
        p_mask_prompt=0.0,  # 0.15 = d1 estimator
        train_on_padding=False,  # reference code: every generated position counts
        micro_batch_size=16,  # rows per forward/backward (gradients accumulate)
    ))
    c.igpo = ml_collections.ConfigDict(dict(
        min_chunk=5,  # smallest hint chunk in tokens (a shorter last piece is dropped)
        max_chunk=10,  # largest hint chunk in tokens
        eta_low=0.2,  # each hinted sample reveals a share eta ~ U[eta_low, eta_high] ...
        eta_high=0.6,  # ... of the revealable chunks (1, 1: full hints)
        reserve=30,  # free positions at the end of the generation, never hinted
        position="as_is",  # as_is (paper) | stretch (reference code: gaps scaled, capped)
        max_gap=100,  # stretch: a gap between revealed chunks grows to at most this
        reveal_last_chunk=False,  # reference code: always reveal the last chunk (can leak)
        exclude_last_step=False,  # never reveal the last reasoning line (it states the answer)
        lam=0.5,  # at most floor(lam G) members of a group are replaced
        tau=0.2,  # keep the top tau share of hint tokens by entropy (1 = no filter)
    ))
    c.sft = ml_collections.ConfigDict(dict(
        num_steps=100,  # optimiser steps
        batch_size=32,  # examples per step
        micro_batch_size=32,  # examples per forward/backward (divides batch_size)
        eps=1e-3,  # masking probability p = (1 - eps) t + eps
        t_sampling="uniform",  # uniform | stratified (t in equal strata across the batch)
        # which response tokens are masked: iid (LLaDA) | block (as the block sampler sees
        # them: earlier blocks clean, later ones masked) | mixed (half of each)
        mask="iid",
        overlong="drop",  # traces longer than gen_length: drop | truncate
        rewritten_path="",  # JSONL {"question", "trace"}: length-aligned traces to train on
    ))
    c.eval = ml_collections.ConfigDict(dict(
        split="test",  # test | train
        num_examples=0,  # 0 = all
        k=1,  # samples per problem: pass@1 at temperature 0, avg@k above it
        temperature=0.0,  # 0 = greedy
        batch_size=32,  # problems per sampler call
        every=0,  # RL/SFT: evaluate every this many steps on eval.during_examples (0 = off)
        during_examples=64,  # held-out problems of the periodic evaluations
        after_train=False,  # RL/SFT: evaluate on the held-out split when training ends
        exact_sampler=False,  # evaluate with cache=none, unmask=fixed whatever sampler says
    ))
    c.reward = ml_collections.ConfigDict(dict(
        name="math",  # a name in rewards.REWARDS
        correct_weight=3.0,  # reward of a correct final answer
        format_weight=1.0,  # weight of the xmlcount format reward (max 0.75)
        timeout=2.0,  # seconds a symbolic equivalence check may take (then it scores 0)
    ))
    c.optim = ml_collections.ConfigDict(dict(
        lr=5e-7,  # peak learning rate
        warmup_steps=50,  # linear warm-up from 0
        schedule="linear",  # after warm-up: linear (to 0) | cosine | constant
        b1=0.9,  # AdamW beta1
        b2=0.99,  # AdamW beta2
        weight_decay=0.1,  # AdamW weight decay
        grad_clip=0.2,  # global gradient-norm clip
        moments_dtype="float32",  # AdamW moments: float32 | param (the parameters' dtype)
        max_nonfinite=5,  # stop after this many skipped (non-finite) updates in a row
    ))
    c.checkpoint = ml_collections.ConfigDict(dict(
        every=1,  # steps between checkpoints (SIGTERM always writes one)
        keep=3,  # checkpoints kept
        # SHA-256 of every saved file, verified on restore (catches silent corruption;
        # reads the step back at ~0.7 GB/s on process 0, in the background with async_save)
        checksums=True,
        # write in a background thread while training goes on (the next save, SIGTERM and
        # the end of a stage wait for it); False blocks each save until it is committed
        async_save=True,
    ))
    c.mesh = ml_collections.ConfigDict(dict(
        data=1,  # data-parallel axis size
        fsdp=-1,  # parameter-sharding axis size (-1: all remaining devices)
        tensor=1,  # tensor-parallel axis size
    ))
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
    c.log_every = 1  # steps between progress lines (and, for SFT, metrics records)
    return c


def key_docs() -> dict[str, str]:
    """Dotted key -> the comment written beside it in :func:`base_config`."""
    import inspect
    import re
    docs: dict[str, str] = {}
    stack: list[tuple[str, int]] = []
    depth = 0
    pending = ""
    for line in inspect.getsource(base_config).splitlines():
        if line.strip().startswith("#"):
            code, comment = line.strip(), ""
        else:
            code, _, comment = line.partition("  # ")
            code = code.strip()
        m = re.match(r"(?:c\.)?(\w+)\s*=\s*ml_collections\.ConfigDict\(", code)
        if m:
            if comment:
                full = ".".join([n for n, _ in stack] + [m.group(1)])
                docs.setdefault(full, comment.strip())
            stack.append((m.group(1), depth))
        elif code.startswith("#"):
            pending = (pending + " " + code.lstrip("# ")).strip()
            continue
        else:
            prefix = ".".join(n for n, _ in stack)
            keys = re.findall(r"(?:^|[(,]\s*)(\w+)=", code) or (
                [code.split(".", 1)[1].split("=")[0].strip()] if code.startswith("c.") and
                "=" in code else [])
            for i, k in enumerate(keys):
                full = f"{prefix}.{k}" if prefix else k
                # a comment after several keys on one line documents the last of them; a
                # comment line above documents every key of the next line
                text = " ".join(x for x in (pending, comment.strip() if i == len(keys) - 1
                                            else "") if x)
                if text:
                    docs.setdefault(full, text)
            pending = "" if keys else pending
        depth += code.count("(") - code.count(")")
        while stack and depth <= stack[-1][1]:
            stack.pop()
    return docs


def print_config(c: ml_collections.ConfigDict) -> str:
    """Every key of ``c`` as ``key = value  # doc``, one per line."""
    docs = key_docs()
    out = []

    def walk(node, prefix):
        for k in sorted(node.keys()):
            v = node[k]
            full = prefix + k
            if isinstance(v, ml_collections.ConfigDict) and full not in FREE_FORM:
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

    stages: tuple
    only: str
    print_commands: bool
    shipped: dict
    use_shipped: bool
    compare: tuple


@dataclasses.dataclass(frozen=True)
class RunConfig(Section):
    """The whole config as frozen typed sections, each owned (and checked) by the module
    that uses it: what the entry point hands to the library (:func:`validate`)."""

    mode: str
    seed: int
    workdir: str
    log_every: int
    distributed: DistributedConfig = sub(DistributedConfig)
    tokenizer: TokenizerConfig = sub(TokenizerConfig)
    model: ModelSettings = sub(ModelSettings)
    data: DataConfig = sub(DataConfig)
    sampler: SamplerSettings = sub(SamplerSettings)
    rl: RLConfig = sub(RLConfig)
    igpo: IgpoConfig = sub(IgpoConfig)
    sft: SFTConfig = sub(SFTConfig)
    eval: EvalConfig = sub(EvalConfig)
    reward: RewardConfig = sub(RewardConfig)
    optim: OptimConfig = sub(OptimConfig)
    checkpoint: CheckpointConfig = sub(CheckpointConfig)
    mesh: MeshConfig = sub(MeshConfig)
    pipeline: PipelineConfig = sub(PipelineConfig)

    def __post_init__(self):
        check(self.mode in MODES, "mode", self.mode, f"expected one of {MODES}")
        check(self.log_every >= 1, "log_every", self.log_every, "must be >= 1")


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


def typed(c) -> "RunConfig":
    """The config as frozen typed sections (:class:`RunConfig`), each section checked by
    its own class; a :class:`RunConfig` is returned as it is. Unknown keys are refused
    first, with a suggestion."""
    if isinstance(c, RunConfig):
        return c
    unknown = unknown_keys(c, base_config())
    check(not unknown, unknown[0] if unknown else "", "?",
           "unknown key (a typo?); every key and its default is in igpo_jax/configlib.py")
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
    if d.source not in ("synthetic", "tfds") and need_weights:  # a file source: its files
        check(c.mode == "eval" or d.train_path, "data.train_path", d.train_path,
               f"data.source={d.source!r} reads files: set --config.data.train_path=FILE")
        check(d.test_path or (c.mode != "eval" and not c.eval.after_train and not c.eval.every),
               "data.test_path", d.test_path,
               f"evaluation with data.source={d.source!r} reads a file: set "
               f"--config.data.test_path=FILE")
    check(not need_weights or m.preset != "llada_8b" or m.hf_dir or m.init_from,
           "model.hf_dir", m.hf_dir,
           "the LLaDA-8B recipe needs weights: --config.model.hf_dir=/path/to/LLaDA-8B-Instruct")
    check(not need_weights or m.preset != "dream_7b" or m.hf_dir or m.init_from,
           "model.hf_dir", m.hf_dir,
           "the Dream-7B recipe needs weights: --config.model.hf_dir=/path/to/Dream-v0-Instruct-7B")
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
