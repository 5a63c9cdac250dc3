"""A runnable tour of the Python API on the shipped demo model (CPU, a few seconds).

Loads the demo's SFT stage (shipped in the package), generates completions for a few
held-out problems with and without IGPO hints, and scores them:

    python examples/generate_and_score.py
"""

import jax
import numpy as np

from igpo_jax import configlib, experiment, pipeline, rewards, sampling
from igpo_jax.data import answers, batches
from igpo_jax.data.sources import load_examples
from igpo_jax.rl import igpo


def main(num_problems: int = 4, seed: int = 0) -> dict:
    # The demo's config, pointed at the shipped SFT checkpoint.
    c = configlib.base_config()
    c.model.update(preset="tiny", init_from=f"{pipeline.ASSETS}/demo_sft")
    c.model.overrides.update(d_model=128, n_layers=3, n_heads=4, n_kv_heads=4,
                             mlp_hidden_size=384)
    shipped = experiment.read_run_config(c.model.init_from)  # the data settings it used
    c.data.synthetic.update(shipped["data"]["synthetic"])
    rc = configlib.typed(c)  # the library reads the typed, frozen config
    tok = experiment.build_tokenizer(rc)  # the shipped character tokenizer
    cfg = experiment.model_config(rc, tok)
    params = experiment.initial_params(rc, cfg, experiment.build_mesh(rc))

    # Held-out problems of the synthetic task (the longest chains: the hard ones).
    examples = [e for e in load_examples(c.data.to_dict(), "test")
                if e.meta == f"n_terms={c.data.synthetic.test_max_terms}"][:num_problems]
    prompt_ids, prompt_mask = batches.encode_prompts(tok, examples, prompt_len=18)
    sc = sampling.SamplerConfig(gen_length=64, block_length=16, steps=64, temperature=0.0)

    # 1. Plain greedy generation.
    out = sampling.generate_params(params, cfg, prompt_ids, sc, jax.random.key(seed),
                                   attention_mask=prompt_mask).tokens
    plain = [tok.decode_completion(row[prompt_ids.shape[1]:]) for row in np.asarray(out)]

    # 2. The same with IGPO hints: chunks of each reference trace clamped in place
    #    (never the answer span, never the last reasoning line).
    trace_ids, trace_len, revealable = batches.encode_traces(
        tok, examples, sc.gen_length, exclude_last_step=True)
    hc = igpo.IgpoConfig(min_chunk=2, max_chunk=4, reserve=4)
    eta = np.full(len(examples), 0.6, np.float32)  # reveal 60% of the revealable chunks
    hint_ids, hint_mask = igpo.build_hints(jax.random.key(seed), trace_ids, trace_len,
                                           revealable, eta, sc.gen_length, hc)
    out_h = sampling.generate_params(params, cfg, prompt_ids, sc, jax.random.key(seed),
                                     attention_mask=prompt_mask, hint_ids=hint_ids,
                                     hint_mask=hint_mask).tokens
    hinted = [tok.decode_completion(row[prompt_ids.shape[1]:]) for row in np.asarray(out_h)]

    # 3. Score: 3.0 for a correct final answer plus the format reward (max 0.75).
    reward = rewards.MathReward()
    result = {"plain": [], "hinted": [], "hinted_tokens": np.asarray(out_h)[:, prompt_ids.shape[1]:],
              "hint_ids": np.asarray(hint_ids), "hint_mask": np.asarray(hint_mask),
              "answers": [e.answer for e in examples], "plain_texts": plain}
    for e, p, h, m in zip(examples, plain, hinted, np.asarray(hint_mask)):
        rp, rh = reward(p, e.answer), reward(h, e.answer)
        result["plain"].append(rp)
        result["hinted"].append(rh)
        print(f"question {e.question!r}  answer {e.answer}")
        print(f"  plain  -> {answers.extract_answer(p)!r:6} reward {rp[0]:.2f}")
        print(f"  hinted -> {answers.extract_answer(h)!r:6} reward {rh[0]:.2f}  "
              f"({int(m.sum())} hint tokens)")
    return result


if __name__ == "__main__":
    main()
