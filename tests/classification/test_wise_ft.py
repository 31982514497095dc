"""WiSE-FT mixes the fine-tuned weights with CLIP's (``config.init_clip``), whatever they came from.

The fine-tuned model here is a converted checkpoint (a tcvideo TC-CLIP model dir, as
``python -m tcvideo.convert tc-clip`` writes one) given as ``init_checkpoint``: before the fix the
ensemble mixed with ``task.init_params()``, i.e. with that checkpoint itself. Evaluation is replaced by
a recorder of the params it is given (no compilation): the test is about which weights are evaluated.
"""
import os

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import train_fixtures as tf_
from tcvideo.classification.task import VideoClassificationTask
from tcvideo.clip.convert import openai as openai_conv
from tcvideo.core import model_dir as store
from tcvideo.core import train
from tcvideo.core.config import ConfigError
from tcvideo.core.tree_util import flatten, unflatten
from tcvideo.tc_clip import model as tc_lib
from tcvideo.tc_clip.family import model_config

W = 0.7


def _random_tree(shapes: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda s: rng.normal(0, 0.02, s.shape).astype(np.float32), shapes)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """A tiny CLIP model dir (init_clip) and a tiny converted TC-CLIP model dir (init_checkpoint) whose
    weights differ from CLIP's everywhere."""
    base = tmp_path_factory.mktemp("wise_ft")
    config = tf_.tiny_config()
    mc = model_config(config)
    clip_shapes = {k: jax.ShapeDtypeStruct(v, np.float32) for k, v in openai_conv.expected_shapes(mc.clip).items()}
    clip_params = _random_tree(unflatten(clip_shapes), seed=1)
    clip_dir, ckpt_dir = str(base / "clip"), str(base / "converted")
    store.save_model(clip_dir, clip_params, {"model": "clip", "config": mc.clip.to_dict()})
    ckpt = _random_tree(tc_lib.param_shapes(mc), seed=2)
    store.save_model(ckpt_dir, ckpt, {"model": "tc_clip", "config": mc.to_dict(), "format": "official_tc_clip"})
    return dict(clip_dir=clip_dir, ckpt_dir=ckpt_dir, clip=flatten(clip_params), ckpt=flatten(ckpt))


def _config(dirs, init_clip: bool):
    c = tf_.tiny_config()
    c.init_checkpoint = dirs["ckpt_dir"]
    c.init_clip = dirs["clip_dir"] if init_clip else ""
    c.wise_ft_weight = W
    return c


def test_wise_ft_of_a_converted_checkpoint_mixes_with_clip(dirs):
    task = VideoClassificationTask(_config(dirs, init_clip=True))
    seen = []
    task.evaluate = lambda p, sh, mesh, during_training=False: seen.append(flatten(jax.device_get(p))) or {}
    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    params = task.init_params()  # the converted checkpoint
    sh = jax.tree_util.tree_map(lambda _: NamedSharding(mesh, P()), params)
    out = task.final_evaluate(jax.tree_util.tree_map(jax.numpy.asarray, params), sh, mesh)
    assert sorted(out) == ["fine_tuned", f"wise_ft_w{W:g}"]
    fine_tuned, fused = seen
    ckpt, clip = dirs["ckpt"], dirs["clip"]
    assert sorted(fused) == sorted(ckpt)
    mixed = 0
    for path, ft in ckpt.items():
        np.testing.assert_array_equal(fine_tuned[path], ft, err_msg=path)
        # Parameters CLIP has are mixed; those it lacks (bias tables, prompt vectors, prompt generation
        # layers) are the checkpoint's, as in the official wise_state_dict.
        lacks = path not in clip or any(s in path for s in ("local_global_bias", "text/ctx", "prompt_generation"))
        want = ft if lacks else (1 - W) * clip[path] + W * ft
        np.testing.assert_allclose(fused[path], want, rtol=1e-6, atol=1e-7, err_msg=path)
        mixed += not lacks
    assert mixed >= 20
    assert float(np.abs(fused["visual/proj"] - fine_tuned["visual/proj"]).max()) > 1e-3


def test_wise_ft_without_clip_weights_is_a_config_error_before_compute(dirs, tmp_path):
    """`tcvideo eval --checkpoint CONVERTED` with wise_ft_weight >= 0 and no init_clip."""
    config = _config(dirs, init_clip=False)
    config.init_checkpoint = ""
    workdir = str(tmp_path / "eval")
    with pytest.raises(ConfigError, match=r"config\.init_clip: empty, but wise_ft_weight"):
        train.evaluate_workdir(config, workdir, checkpoint=dirs["ckpt_dir"])
    assert not os.path.exists(workdir)
