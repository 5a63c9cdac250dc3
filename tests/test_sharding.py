import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from igpo_jax import sampling
from igpo_jax import sharding as shd
from igpo_jax.models import hf_io, transformer
from tests import reference as ref

MESHES = [dict(data=1, fsdp=2, tensor=4), dict(data=1, fsdp=8, tensor=1),
          dict(data=2, fsdp=2, tensor=2)]


def test_eight_simulated_devices():
    assert jax.device_count() == 8


def test_mesh_shape_resolution_and_errors():
    assert shd.mesh_shape(1, -1, 4, num_devices=8) == (1, 2, 4)
    assert shd.mesh_shape(-1, 1, 1, num_devices=8) == (8, 1, 1)
    with pytest.raises(ValueError, match="needs 6 devices"):
        shd.mesh_shape(1, 2, 3, num_devices=8)
    with pytest.raises(ValueError, match="not divisible"):
        shd.mesh_shape(1, -1, 3, num_devices=8)
    with pytest.raises(ValueError, match="at most one"):
        shd.mesh_shape(-1, -1, 1, num_devices=8)
    with pytest.raises(ValueError, match="unknown axes"):
        shd.mesh_from_config({"model": 2})


def test_logical_rules():
    mesh = shd.make_mesh(1, 2, 4)
    assert shd.logical_to_spec(("layers", "embed", "heads"), mesh, (2, 32, 32)) == \
        P(None, "fsdp", "tensor")
    # 2 kv heads x 8 = 16 columns: divisible by 4, sharded; 6 columns would be replicated
    assert shd.logical_to_spec(("embed", "kv_heads"), mesh, (32, 6)) == P("fsdp", None)
    assert shd.logical_to_spec(("batch", None), mesh, (4, 3)) == P("fsdp", None)
    mesh3 = shd.make_mesh(2, 2, 2)
    assert shd.logical_to_spec(("batch",), mesh3, (8,)) == P(("data", "fsdp"))
    with pytest.raises(KeyError, match="no sharding rule"):
        shd.logical_to_spec(("nope",), mesh)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    c = ref.hf_config(vocab=64, d=64, layers=2, heads=4, kv_heads=4, mlp=128)
    path = tmp_path_factory.mktemp("ckpt")
    ref.write_hf_checkpoint(path, c, ref.random_hf_weights(c, seed=7, scale=0.1))
    return path


@pytest.mark.parametrize("mesh_kw", MESHES, ids=lambda m: "x".join(map(str, m.values())))
def test_sharded_logits_equal_single_device(model, mesh_kw):
    single = hf_io.load_hf_checkpoint(model)
    mesh = shd.make_mesh(**mesh_kw)
    sharded = hf_io.load_hf_checkpoint(model, mesh=mesh)
    q = sharded.param_dict()["blocks/q_proj"]
    assert len(q.sharding.device_set) == 8
    ids = np.random.default_rng(0).integers(0, 60, (8, 12)).astype(np.int32)
    want = np.asarray(single(jnp.asarray(ids)))
    ids_sharded = shd.shard_batch(jnp.asarray(ids), mesh)
    got = jax.jit(lambda p, x: transformer.forward(p, sharded.config, x))(sharded.param_dict(),
                                                                    ids_sharded)
    # float32 both ways, summed in another order across devices: the float32 bound
    c = json.loads((model / "config.json").read_text())
    np.testing.assert_allclose(np.asarray(got), want, atol=ref.f32_atol(c, 12, want), rtol=0)


@pytest.mark.parametrize("mesh_kw", MESHES[:2], ids=lambda m: "x".join(map(str, m.values())))
def test_sharded_sampler_equals_single_device(model, mesh_kw):
    m = hf_io.load_hf_checkpoint(model)
    mesh = shd.make_mesh(**mesh_kw)
    rng = np.random.default_rng(1)
    prompt = rng.integers(0, 60, (8, 6)).astype(np.int32)
    hint_mask = rng.random((8, 16)) < 0.3
    hint_ids = rng.integers(0, 60, (8, 16)).astype(np.int32)
    sc = sampling.SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=0.0)
    kw = dict(mask_id=63, hint_ids=hint_ids, hint_mask=hint_mask)
    want = np.asarray(sampling.generate(m, prompt, sc, **kw).tokens)
    got = sampling.generate(m, prompt, sc, mesh=mesh, **kw).tokens
    np.testing.assert_array_equal(np.asarray(got), want)
    sc, kw = sc.replace(temperature=1.0), dict(kw, rng=jax.random.key(3))
    np.testing.assert_array_equal(
        np.asarray(sampling.generate(m, prompt, sc, mesh=mesh, **kw).tokens),
        np.asarray(sampling.generate(m, prompt, sc, **kw).tokens))
