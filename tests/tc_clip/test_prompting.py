"""Prompt construction, LLM description files and TC-CLIP initialisation from CLIP weights."""
from __future__ import annotations

import json

import numpy as np
import pytest

import jax

from tcvideo.tc_clip.convert import clip_init_params
from tcvideo.clip import model as clip_lib
from tcvideo.tc_clip import model as tcm
from tcvideo.classification.prompts import build_prompts, load_llm_descriptions, tokenize_prompts
from tcvideo.tc_clip.prompting import ctx_init_vectors
from tcvideo.clip.tokenizer import get_tokenizer

SMALL = clip_lib.CLIPConfig(embed_dim=32, image_resolution=32, patch_size=8, vision_width=32, vision_layers=3,
                            vision_heads=2, context_length=16, vocab_size=49408, text_width=32, text_heads=2,
                            text_layers=3)


def test_prompts_and_lengths():
    assert build_prompts(["ApplyEyeMakeup", "air_drumming"]) == ["a photo of a Apply Eye Makeup.",
                                                                 "a photo of a air drumming."]
    ids = tokenize_prompts(["abseiling"], 30)
    assert ids.shape == (1, 30) and ids[0, 0] == 49406 and ids[0].argmax() == 9
    with pytest.raises(ValueError, match="context"):
        tokenize_prompts(["a very long class name " * 10], 16)
    assert tokenize_prompts(["a very long class name " * 10], 16, truncate=True)[0, -1] == 49407


def test_llm_descriptions(tmp_path):
    good = tmp_path / "llm.json"
    good.write_text(json.dumps({"1": "Air drumming: miming drums.", "0": "Abseiling: descending a rope."}))
    assert load_llm_descriptions(str(good)) == ["Abseiling: descending a rope.", "Air drumming: miming drums."]
    gap = tmp_path / "gap.json"
    gap.write_text(json.dumps({"0": "a", "2": "b"}))
    with pytest.raises(ValueError, match="gap.json.*without gaps"):
        load_llm_descriptions(str(gap))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        load_llm_descriptions(str(bad))


def test_clip_init_params_follows_the_official_recipe():
    clip_params = jax.tree_util.tree_map(np.asarray, clip_lib.init_params(SMALL, jax.random.PRNGKey(3)))
    cfg = tcm.variant_config("tc_clip", clip=SMALL, num_frames=4, context_tokens=8, tome_r=6,
                             prompt_context_length=16, positional_embedding_type="joint")
    p = clip_init_params(clip_params, cfg)
    shapes = jax.tree_util.tree_map(lambda x: x.shape, tcm.param_shapes(cfg))
    assert jax.tree_util.tree_map(np.shape, p) == shapes
    # prompt generation layer = copy of text block level - 1, ln_1_kv = ln_1
    pg, blk = p["text"]["prompt_generation_0"], clip_params["text"]["resblocks_2"]
    np.testing.assert_array_equal(pg["attn"]["in_proj_kernel"], blk["attn"]["in_proj_kernel"])
    np.testing.assert_array_equal(pg["ln_1_kv"]["scale"], blk["ln_1"]["scale"])
    np.testing.assert_array_equal(pg["mlp"]["c_fc"]["kernel"], blk["mlp"]["c_fc"]["kernel"])
    # ctx = token embeddings of "a photo of a"
    tok = clip_params["text"]["token_embedding"]["embedding"]
    np.testing.assert_array_equal(p["text"]["ctx"], tok[get_tokenizer().encode("a photo of a")])
    np.testing.assert_array_equal(ctx_init_vectors(tok, "a photo of a", 4), p["text"]["ctx"])
    # joint positional embedding tiles CLIP's table over frames
    pos = p["visual"]["embed"]["positional_embedding"]
    for t in range(4):
        np.testing.assert_array_equal(pos[t], clip_params["visual"]["embed"]["positional_embedding"])
    assert p["visual"]["resblocks_1"]["attn"]["local_global_bias"].shape == (2, 2)
    np.testing.assert_array_equal(p["visual"]["resblocks_0"]["mlp"]["c_fc"]["kernel"],
                                  clip_params["visual"]["resblocks_0"]["mlp"]["c_fc"]["kernel"])
