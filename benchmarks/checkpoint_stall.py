"""How long a checkpoint save stalls training, synchronous vs asynchronous.

A loop of fake training steps (a fixed jitted matmul workload that updates the
parameters) saves parameters + AdamW-sized state every step with
``igpo_jax.checkpoint.Checkpointer``, checksums on, as training does. Reported per mode:
the time ``save()`` blocks the loop (median over saves), the step time without saving,
and the wall time of the whole loop. Asynchronous saves still wait for the previous
write at the next save, so a write longer than a step shows up as a stall there.

    python benchmarks/checkpoint_stall.py --mb 256 --steps 6 --out benchmarks/results/checkpoint_stall.json
    python benchmarks/checkpoint_stall.py --mb 256 --steps 12 --every 4 --out benchmarks/results/checkpoint_stall_every4.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

from igpo_jax.checkpoint import Checkpointer
from igpo_jax.metrics import describe_machine, machine_info


def run(mode: str, mb: int, steps: int, work: int, root: str, every: int = 1) -> dict:
    n = int(mb * 2 ** 20 / 4 / 4096)
    # random values: files that compression cannot shrink, as trained weights
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    params = {"w": jax.random.normal(k1, (n, 4096), jnp.float32)}
    opt = {"mu": jax.random.normal(k2, (n, 4096), jnp.float32),
           "nu": jax.random.normal(k3, (n, 4096), jnp.float32)}
    x = jnp.ones((work, work), jnp.float32)

    @jax.jit
    def step(p, o, x):
        for _ in range(4):
            x = jnp.tanh(x @ x / work)
        g = x.mean() * 1e-6
        return {"w": p["w"] - g}, {"mu": o["mu"] + g, "nu": o["nu"] + g * g}, x

    params, opt, _ = step(params, opt, x)
    jax.block_until_ready(params)
    d = os.path.join(root, mode)
    ck = Checkpointer(d, keep=2, async_save=mode == "async")
    stalls, step_times = [], []
    t0 = time.perf_counter()
    for s in range(1, steps + 1):
        t = time.perf_counter()
        params, opt, _ = step(params, opt, x)
        jax.block_until_ready(params)
        step_times.append(time.perf_counter() - t)
        if s % every:
            continue
        t = time.perf_counter()
        ck.save(s, params, opt, {"step": s}, force=True)
        stalls.append(time.perf_counter() - t)
    t = time.perf_counter()
    ck.close()  # waits for the last write
    final_wait = time.perf_counter() - t
    wall = time.perf_counter() - t0
    restored = Checkpointer(d).restore(None, params, opt)[2]
    assert restored["step"] == steps
    shutil.rmtree(d)
    return dict(mode=mode, every=every, save_blocks_median_s=statistics.median(stalls[1:]),
                save_blocks_first_s=stalls[0], save_blocks_all_s=stalls,
                step_compute_median_s=statistics.median(step_times),
                final_wait_s=final_wait, loop_wall_s=wall)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=256, help="parameter MB (state is 3x this)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--work", type=int, default=2048, help="matmul size of a fake step")
    ap.add_argument("--every", type=int, default=1, help="steps between saves")
    ap.add_argument("--dir", default="", help="where to write (default: a temp folder)")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    root = a.dir or tempfile.mkdtemp(prefix="ckpt_stall_")
    m = machine_info()
    print(f"machine: {describe_machine(m)}", flush=True)
    rows = [run(mode, a.mb, a.steps, a.work, root, a.every) for mode in ("sync", "async")]
    for r in rows:
        print(f"{r['mode']:>5} (save every {r['every']} steps): save blocks {r['save_blocks_median_s']:.3f} s (median; first "
              f"{r['save_blocks_first_s']:.3f} s), step compute "
              f"{r['step_compute_median_s']:.3f} s, loop {r['loop_wall_s']:.1f} s "
              f"(final wait {r['final_wait_s']:.2f} s)", flush=True)
    out = dict(machine=m, python=sys.version.split()[0], jax=jax.__version__,
               host=platform.node(), params_mb=a.mb, state_mb=3 * a.mb, steps=a.steps,
               results=rows)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=2)
        print("wrote", a.out)


if __name__ == "__main__":
    main()
