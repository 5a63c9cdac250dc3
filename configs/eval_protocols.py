"""Evaluation recipes: a published protocol (igpo_jax/protocols.py) on a real model.

    python -m igpo_jax.main --config configs/eval_protocols.py:d1_gsm8k_256 --workdir runs/d1_gsm8k_256 \\
        --config.model.hf_dir=/data/LLaDA-8B-Instruct --config.tokenizer.path=/data/LLaDA-8B-Instruct \\
        --config.data.test_path=/data/gsm8k/test.jsonl

The arg is ``PROTOCOL_LENGTH`` (``d1_gsm8k_128``, ``d1_math500_512``, ``d1_countdown_256``,
``d1_sudoku_512``, ``llada_gsm8k_256``, ``llada_math_512``, ``dream_gsm8k_256``,
``dream_minerva_math_512``, ``igpo_amc_256``, ...; the lengths each protocol was published
at), for the model the reference evaluated (Dream-v0-Instruct-7B for ``dream_*``,
LLaDA-8B-Instruct otherwise); append ``,llada`` or ``,dream`` for the other model (the
same prompt in its chat template). The recipe sets the protocol's prompt, problems,
grader, generation length, block length, steps, temperature, top_p, remasking order and
schedule (the exact sampler); the model and data paths come from the command line.
Data: GSM8K test as JSONL (``question``, ``answer``), MATH-500 or the 5,000 MATH test
problems as JSONL (``problem``, ``solution``, optional ``answer``), AMC as JSONL
(``problem``, ``answer``), d1's ``countdown_cd3_test.jsonl`` and ``4x4_test_sudoku.csv``.
"""

from igpo_jax import configlib, protocols

# prompt tokens: d1's instructions and a MATH-500 problem fit in 512; OpenCompass's GSM8K
# prompt carries four worked examples (about 1,200 LLaDA tokens); Dream's wrapper keeps
# up to 1,024 prompt tokens, and the longest of the 5,000 MATH problems need more than 512
PROMPT_LEN = {"llada_gsm8k": 1536, "llada_math": 1024, "dream_gsm8k": 1024,
              "dream_gsm8k_strict": 1024, "dream_minerva_math": 1024,
              "dream_minerva_math_em": 1024}
FAMILIES = {"llada": "llada_8b", "dream": "dream_7b"}


def get_config(arg: str = "d1_gsm8k_256"):
    name, _, family = arg.partition(",")
    protocol_name, _, length = name.rpartition("_")
    if protocol_name not in protocols.PROTOCOLS or not length.isdigit() \
            or (family and family not in FAMILIES):
        raise ValueError(f"configs/eval_protocols.py:{arg}: expected "
                         f"PROTOCOL_LENGTH[,llada|,dream] "
                         f"with PROTOCOL in {sorted(protocols.PROTOCOLS)}")
    p = protocols.PROTOCOLS[protocol_name]
    family = family or p.model
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
                     block_length=p.block(gen_length), steps=p.steps(gen_length),
                     temperature=p.temperature, remasking=p.remasking, top_p=p.top_p,
                     schedule=p.schedule,
                     rollout_batch_size=8)
    c.eval.update(protocol=protocol_name, temperature=p.temperature, k=p.k, batch_size=8,
                  exact_sampler=True, num_examples=0)
    return c
