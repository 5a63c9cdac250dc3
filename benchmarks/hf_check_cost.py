"""Cost of the finite-value check on Hugging Face tensors as they stream in.

Writes one safetensors shard of ``--gib`` GiB (bfloat16, LLaDA-8B-like tensors of
4096 x 12288) to a temporary folder, then reads every tensor back with and without
``hf_io.count_nonfinite`` (both cast to float32, as the loader does), and prints seconds and GB/s of each (and the check's share).

    python benchmarks/hf_check_cost.py --gib 1
"""

import argparse
import os
import tempfile
import time

import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from igpo_jax.models import hf_io


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gib", type=float, default=1.0)
    a = ap.parse_args()
    shape = (4096, 12288)
    n = max(1, int(a.gib * 2**30 / (np.prod(shape) * 2)))
    rng = np.random.default_rng(0)
    base = rng.standard_normal(shape, np.float32).astype(ml_dtypes.bfloat16)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.safetensors")
        save_file({f"t{i}": base for i in range(n)}, path)
        size = os.path.getsize(path)
        times = {}
        for check in (False, True, False, True):  # twice each: the second of a kind counts
            t0 = time.perf_counter()
            with safe_open(path, framework="np") as f:
                for k in f.keys():
                    t = f.get_tensor(k)
                    t.astype(np.float32)  # what the loader does with every tensor
                    if check:
                        assert hf_io.count_nonfinite(t) == 0
            times[check] = time.perf_counter() - t0
    plain, checked = times[False], times[True]
    print(f"{size / 2**30:.2f} GiB shard, {n} bfloat16 tensors of {shape}; {os.cpu_count()} cores")
    print(f"read + cast:  {plain:.2f} s ({size / plain / 1e9:.2f} GB/s)")
    print(f"read + cast + check: {checked:.2f} s ({size / checked / 1e9:.2f} GB/s); "
          f"check costs {checked - plain:+.2f} s per GiB-equivalent "
          f"{(checked - plain) / (size / 2**30):+.2f} s/GiB")


if __name__ == "__main__":
    main()
