"""Evaluation recipes: a published protocol (igpo_jax/protocols.py) on a real model.

    python -m igpo_jax.main --config configs/eval_protocols.py:d1_gsm8k_256 --workdir runs/d1_gsm8k_256 \\
        --config.model.hf_dir=/data/LLaDA-8B-Instruct --config.tokenizer.path=/data/LLaDA-8B-Instruct \\
        --config.data.test_path=/data/gsm8k/test.jsonl

The arg is ``PROTOCOL_LENGTH`` (``d1_gsm8k_128``, ``d1_math500_512``, ``d1_countdown_256``,
``d1_sudoku_512``, ``llada_gsm8k_256``; the lengths each protocol was published at),
for LLaDA-8B-Instruct; append ``,dream`` for Dream-v0-Instruct-7B (the same prompt in
Dream's chat template). The recipe sets the protocol's prompt, problems, grader, generation
length, block length, steps and temperature (greedy, low-confidence remasking, the exact
sampler); the model and data paths come from the command line. Data: GSM8K test as
JSONL (``question``, ``answer``), MATH-500 test as JSONL (``problem``, ``solution``,
``answer``), d1's ``countdown_cd3_test.jsonl`` and ``4x4_test_sudoku.csv``.
"""

from igpo_jax import configlib, protocols

# prompt tokens: d1's instructions and a MATH problem fit in 512; OpenCompass's GSM8K
# prompt carries four worked examples (about 1,200 LLaDA tokens)
PROMPT_LEN = {"llada_gsm8k": 1536}
FAMILIES = {"llada": "llada_8b", "dream": "dream_7b"}


def get_config(arg: str = "d1_gsm8k_256"):
    name, _, family = arg.partition(",")
    family = family or "llada"
    protocol_name, _, length = name.rpartition("_")
    if protocol_name not in protocols.PROTOCOLS or not length.isdigit() \
            or family not in FAMILIES:
        raise ValueError(f"configs/eval_protocols.py:{arg}: expected PROTOCOL_LENGTH[,dream] "
                         f"with PROTOCOL in {sorted(protocols.PROTOCOLS)}")
    p = protocols.PROTOCOLS[protocol_name]
    gen_length = int(length)
    if gen_length not in p.gen_lengths:
        raise ValueError(f"configs/eval_protocols.py:{arg}: {protocol_name} was published at "
                         f"generation lengths {p.gen_lengths}")
    c = configlib.base_config()
    c.mode = "eval"
    c.model.update(preset=FAMILIES[family], param_dtype="bfloat16", dtype="bfloat16")
    c.tokenizer.update(kind="hf")
    c.data.update(source=p.source, system_prompt="")
    c.sampler.update(prompt_len=PROMPT_LEN.get(protocol_name, 512), gen_length=gen_length,
                     block_length=p.block_length, steps=p.steps(gen_length),
                     temperature=p.temperature, remasking="low_confidence",
                     rollout_batch_size=8)
    c.eval.update(protocol=protocol_name, temperature=p.temperature, k=p.k, batch_size=8,
                  exact_sampler=True, num_examples=0)
    return c
