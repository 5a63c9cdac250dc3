"""Test setup: 8 simulated CPU devices for the sharding tests (set before JAX starts)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
