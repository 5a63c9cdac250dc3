"""The rollout worker (rl/rollout.py): chunked sampling returns what one sampler call over
all rows returns (greedy), with the prompt cut off and padding rows dropped."""

import jax
import numpy as np

from igpo_jax import sampling
from igpo_jax.models import family
from igpo_jax.rl import augment, rollout


def test_chunked_generation_equals_one_call_over_all_rows():
    cfg = family.preset_config("llada", "tiny")
    params = family.of(cfg).init_params(cfg, 0)
    sc = sampling.SamplerConfig(prompt_len=4, gen_length=8, block_length=4, steps=4,
                                temperature=0.0, rollout_batch_size=3)
    rng = np.random.default_rng(0)
    n = 5  # not a multiple of the chunk: the last chunk is padded
    prompts = rng.integers(3, cfg.vocab_size - 2, (n, 4)).astype(np.int32)
    attn = np.ones((n, 4), bool)
    attn[1, :2] = False  # one left-padded row
    worker = rollout.RolloutWorker(cfg, sc, rollout.RolloutConfig(group_size=1, prompt_len=4,
                                                                  chunk=3),
                                   augment.make("grpo", group_size=1), tok=None,
                                   reward_fn=None)
    comp, order = worker.generate(params, prompts, attn, jax.random.key(1))
    assert comp.shape == order.shape == (n, 8)
    whole = sampling.generate_params(params, cfg, prompts, sc, jax.random.key(2),
                                     attention_mask=attn)
    np.testing.assert_array_equal(comp, np.asarray(whole.tokens)[:, 4:])
    np.testing.assert_array_equal(order, np.asarray(whole.order))
    assert worker.forward_passes == [4, 4]  # two chunks, one model call per step
