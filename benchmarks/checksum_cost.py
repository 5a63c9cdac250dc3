"""What checkpoint checksums cost per save: SHA-256 of every file of a saved step.

Saves the demo model's parameters and AdamW state (as RL checkpoints them) with and
without checksums, several times, and reports the mean wall time of each and the
SHA-256 rate of this machine (to extrapolate to larger checkpoints).

    python benchmarks/checksum_cost.py
"""

import hashlib
import json
import os
import sys
import tempfile
import time

import jax
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from igpo_jax import checkpoint  # noqa: E402
from igpo_jax.models import transformer  # noqa: E402


def main(reps: int = 5):
    cfg = transformer.TransformerConfig.tiny(vocab_size=103, d_model=128, n_layers=3, n_heads=4,
                                 n_kv_heads=4, mlp_hidden_size=384)
    params = transformer.init_params(cfg, 0)
    opt = optax.adamw(1e-3).init(params)
    size = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves((params, opt)))
    times = {}
    for with_sums in (False, True):
        ts = []
        with tempfile.TemporaryDirectory() as d:
            ck = checkpoint.Checkpointer(d, keep=2, checksums=with_sums)
            for i in range(reps + 1):
                t0 = time.perf_counter()
                ck.save(i + 1, params, opt, {"step": i + 1}, force=True)
                ck.wait()
                ts.append(time.perf_counter() - t0)
            ck.close()
        times["with" if with_sums else "without"] = float(np.mean(ts[1:]))
    blob = os.urandom(256 << 20)
    t0 = time.perf_counter()
    hashlib.sha256(blob).hexdigest()
    rate = len(blob) / (time.perf_counter() - t0)
    out = dict(checkpoint_bytes=int(size), save_seconds_without=times["without"],
               save_seconds_with=times["with"], sha256_bytes_per_second=rate,
               device=str(jax.devices()[0]), cpus=os.cpu_count())
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
