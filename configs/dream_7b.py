"""Dream-7B (Dream-org/Dream-v0-Instruct-7B) with the LLaDA-8B reference recipe's RL
settings. Pick the run and target as in configs/llada_8b.py:

    python -m igpo_jax.main --config configs/dream_7b.py:igpo --workdir runs/dream_igpo \\
        --config.model.hf_dir=/data/Dream-v0-Instruct-7B \\
        --config.tokenizer.path=/data/Dream-v0-Instruct-7B \\
        --config.data.train_path=/data/MetaMathQA-395K.json

  igpo / grpo / d1  as in configs/llada_8b.py (the same hyper-parameters: no published
                    IGPO run on Dream exists to take them from; treat them as a start).

Targets: ``igpo-v5p32`` / ``igpo-v4_32`` (16 chips, fsdp 16), ``igpo-8xgpu`` (one node of
8 x 80 GB GPUs, fsdp 8). Plan memory without weights:
``python -m igpo_jax.main --config configs/dream_7b.py:igpo-8xgpu --dry_run``.

What differs from LLaDA is the model family (``model.family=dream``): Qwen2.5-7B
shapes (q/k/v biases, GQA 28/4, RoPE theta 1e6, untied head), logits shifted by one
position, mask token 151666, EOS/pad 151643, and the ChatML chat template (with
Qwen2.5's default system turn). With ``model.hf_dir`` every size and id comes from
Dream's config.json.
"""

import importlib.util
import os

# configs/llada_8b.py beside this file, importable whatever the working directory
_spec = importlib.util.spec_from_file_location(
    "igpo_configs_llada_8b", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          "llada_8b.py"))
llada_8b = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(llada_8b)


def get_config(arg: str = "igpo"):
    try:
        c = llada_8b.get_config(arg)
    except ValueError as e:
        raise ValueError(str(e).replace("llada_8b.py", "dream_7b.py")) from None
    c.model.update(family="dream", preset="dream_7b")
    return c
