#!/usr/bin/env bash
# LLaDA-8B-shape sampler measurements on one GPU (random bf16 weights), in one go:
#   bash benchmarks/gpu_8b.sh OUTDIR
# exact vs prefix / dual cache vs PyTorch eager at gen 256; exact vs dual at gen 1024;
# the exact sampler's MFU row of sampler_bench.py. Needs jax with CUDA, flax, optax, torch.
set -uo pipefail
out=${1:-.}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.45  # leave room for PyTorch
nvidia-smi -L
python3 -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
python3 benchmarks/fast_sampler_bench.py speed --preset llada_8b --dtype bfloat16 --gen 256 \
  --batch 8 --modes prefix,dual --repeats 2 --torch-repeats 2 --json "$out/gpu_8b_256.json"
python3 benchmarks/fast_sampler_bench.py speed --preset llada_8b --dtype bfloat16 --gen 1024 \
  --batch 2 --steps 512 --modes dual --repeats 1 --no-torch --json "$out/gpu_8b_1024.json"
python3 benchmarks/sampler_bench.py --preset llada_8b --dtype bfloat16 --no-torch --repeats 2
