"""One process of the multi-process test (tests/test_multiprocess.py).

    python -m tests.multiprocess_worker WORKDIR OUT.npz NUM_PROCESSES PROCESS_ID PORT DEVICES \
        LORA_RANK

Runs two IGPO steps of ``configs/tiny.py:rl`` on CPU with DEVICES local devices
(LoRA adapters of rank LORA_RANK when > 0); with NUM_PROCESSES > 1 through
``jax.distributed`` (coordinator 127.0.0.1:PORT). Then every process takes part
in ``--export_hf`` to WORKDIR/hf (process 0 writes). Process 0 writes the final
parameters and the step metrics to OUT.npz.
"""

import json
import os
import sys
from igpo_jax.configlib import typed


def main(workdir, out_path, num_processes, process_id, port, devices, lora_rank):
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax
    jax.config.update("jax_num_cpu_devices", int(devices))
    import numpy as np

    from configs import tiny
    from igpo_jax import configlib, distributed
    from igpo_jax.metrics import read_metrics

    c = tiny.get_config("rl")
    c.rl.update(algo="igpo", num_steps=2)
    c.eval.every = 0
    if int(lora_rank):
        c.model.lora.update(rank=int(lora_rank), alpha=8.0, dropout=0.1)
    if int(num_processes) > 1:
        c.distributed.update(mode="on", coordinator_address=f"127.0.0.1:{port}",
                             num_processes=int(num_processes), process_id=int(process_id))
    else:
        c.distributed.mode = "off"
    distributed.initialize(c.distributed)
    assert jax.device_count() == int(devices) * int(num_processes)
    from igpo_jax import export
    from igpo_jax.rl import trainer
    configlib.validate(c)  # as main.py does
    out = trainer.train(typed(c), workdir)
    params = {k: distributed.to_host(v) for k, v in out["params"].items()}
    export.export(typed(c), workdir, os.path.join(workdir, "hf"), shard_gib=0)
    if jax.process_index() == 0:
        rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
        np.savez(out_path, metrics=json.dumps(rows), process_count=jax.process_count(),
                 **{k.replace("/", "__"): v for k, v in params.items()})


if __name__ == "__main__":
    main(*sys.argv[1:])
