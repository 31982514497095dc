"""CLIP checkpoint converters (OpenAI .pt, Hugging Face dirs), the CLI and model dirs: parity and errors.

Everything is offline: models are random transformers.CLIPModels built here (LayerNorm weights and every
bias randomised so that each mapped tensor matters), their outputs the reference.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from safetensors.numpy import load_file, save_file  # noqa: E402

from tcvideo.clip.convert import api, hf, openai
from tcvideo.clip.loader import load_clip
from tcvideo import convert as cli
from tcvideo.core import model_dir as store  # noqa: E402
from tcvideo.clip.convert.common import ConversionError, read_torch_file  # noqa: E402
from tcvideo.clip import model as clip_lib  # noqa: E402

# torch 2.13 deprecates torch.jit, but OpenAI's released checkpoints are TorchScript archives.
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB = 1000
EOT = VOCAB - 1  # the largest id, so OpenAI's argmax pooling and HF's eos_token_id pooling agree
TOL_SMALL = 1e-5
TOL_VIT_B16 = 1e-4


# ------------------------------------------------------------------------------------------ helpers


def hf_config(vision=None, text=None, projection_dim=32, **kw):
    v = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256, patch_size=8,
             image_size=32, hidden_act="quick_gelu")
    t = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256, vocab_size=VOCAB,
             max_position_embeddings=77, hidden_act="quick_gelu", eos_token_id=EOT, bos_token_id=VOCAB - 2,
             pad_token_id=0)
    return transformers.CLIPConfig(vision_config={**v, **(vision or {})}, text_config={**t, **(text or {})},
                                   projection_dim=projection_dim, **kw)


def random_hf_model(config, seed=0):
    """CLIPModel with random weights, LayerNorm scales/biases and all biases too (HF inits those to 1/0)."""
    torch.manual_seed(seed)
    model = transformers.CLIPModel(config).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
        model.logit_scale.fill_(3.1)  # not the init value, so it is really carried over
    return model


def make_ids(batch=3, length=77, seed=0):
    """Token ids with EOT (the maximum id) at different positions, zero padding after it."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((batch, length), np.int64)
    for b, eot_pos in enumerate(np.linspace(4, length - 1, batch).astype(int)):
        ids[b, 0] = VOCAB - 2  # SOT
        ids[b, 1:eot_pos] = rng.integers(1, VOCAB - 2, eot_pos - 1)
        ids[b, eot_pos] = EOT
    return ids


def make_images(n, res, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, res, res)).astype(np.float32)  # NCHW


def hf_reference(model, images, ids):
    """-> (image embeddings, text embeddings, logits_per_image) from transformers, float32 numpy."""
    with torch.no_grad():
        pix, tok = torch.from_numpy(images), torch.from_numpy(ids)
        img = model.get_image_features(pixel_values=pix)
        txt = model.get_text_features(input_ids=tok)
        img = img.pooler_output if hasattr(img, "pooler_output") else img
        txt = txt.pooler_output if hasattr(txt, "pooler_output") else txt
        logits = model(input_ids=tok, pixel_values=pix).logits_per_image
    return img.numpy(), txt.numpy(), logits.numpy()


def tcvideo_outputs(config, params, images, ids):
    model = clip_lib.CLIP(config)
    variables = {"params": params}
    x = jnp.asarray(images.transpose(0, 2, 3, 1))  # NCHW -> NHWC
    t = jnp.asarray(ids, jnp.int32)
    img = model.apply(variables, x, method=clip_lib.CLIP.encode_image)
    txt = model.apply(variables, t, method=clip_lib.CLIP.encode_text)
    logits, _ = model.apply(variables, x, t)
    return np.asarray(img), np.asarray(txt), np.asarray(logits)


def max_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)))


def assert_parity(ref, got, tol, label):
    names = ("image embeddings", "text embeddings", "logits_per_image")
    errs = {n: max_err(r, g) for n, r, g in zip(names, ref, got)}
    print(f"\n{label}: max abs errors " + ", ".join(f"{n} {e:.2e}" for n, e in errs.items()))
    for n, e in errs.items():
        assert e <= tol, f"{label}: {n} max abs error {e:.3e} > {tol}"
    # The outputs are not trivially small, so the tolerance is meaningful.
    assert np.abs(ref[0]).max() > 0.1 and np.abs(ref[1]).max() > 0.1


def flat(params, prefix=""):
    out = {}
    for k, v in params.items():
        path = f"{prefix}/{k}" if prefix else k
        out.update(flat(v, path) if isinstance(v, dict) else {path: np.asarray(v)})
    return out


def assert_same_params(a, b):
    fa, fb = flat(a), flat(b)
    assert sorted(fa) == sorted(fb)
    for k in fa:
        assert fa[k].dtype == fb[k].dtype and fa[k].shape == fb[k].shape, k
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


def hf_to_openai_state_dict(hf_sd):
    """HF CLIPModel tensors -> OpenAI CLIP key layout (fused in_proj = cat(q, k, v)), written independently
    of tcvideo's converters."""
    sd = {k: v.detach().clone() for k, v in hf_sd.items()}
    out = {}

    def block(dst, src):
        a = f"{src}.self_attn"
        for p in ("weight", "bias"):
            out[f"{dst}.attn.in_proj_{p}"] = torch.cat([sd[f"{a}.q_proj.{p}"], sd[f"{a}.k_proj.{p}"],
                                                        sd[f"{a}.v_proj.{p}"]], 0)
            out[f"{dst}.attn.out_proj.{p}"] = sd[f"{a}.out_proj.{p}"]
            out[f"{dst}.ln_1.{p}"] = sd[f"{src}.layer_norm1.{p}"]
            out[f"{dst}.ln_2.{p}"] = sd[f"{src}.layer_norm2.{p}"]
            out[f"{dst}.mlp.c_fc.{p}"] = sd[f"{src}.mlp.fc1.{p}"]
            out[f"{dst}.mlp.c_proj.{p}"] = sd[f"{src}.mlp.fc2.{p}"]

    v, t = "vision_model", "text_model"
    out["visual.conv1.weight"] = sd[f"{v}.embeddings.patch_embedding.weight"]
    out["visual.class_embedding"] = sd[f"{v}.embeddings.class_embedding"]
    out["visual.positional_embedding"] = sd[f"{v}.embeddings.position_embedding.weight"]
    for p in ("weight", "bias"):
        out[f"visual.ln_pre.{p}"] = sd[f"{v}.pre_layrnorm.{p}"]
        out[f"visual.ln_post.{p}"] = sd[f"{v}.post_layernorm.{p}"]
        out[f"ln_final.{p}"] = sd[f"{t}.final_layer_norm.{p}"]
    out["visual.proj"] = sd["visual_projection.weight"].T.contiguous()
    out["token_embedding.weight"] = sd[f"{t}.embeddings.token_embedding.weight"]
    out["positional_embedding"] = sd[f"{t}.embeddings.position_embedding.weight"]
    out["text_projection"] = sd["text_projection.weight"].T.contiguous()
    out["logit_scale"] = sd["logit_scale"]
    n_v = len({k.split(".")[3] for k in sd if k.startswith(f"{v}.encoder.layers.")})
    n_t = len({k.split(".")[3] for k in sd if k.startswith(f"{t}.encoder.layers.")})
    for i in range(n_v):
        block(f"visual.transformer.resblocks.{i}", f"{v}.encoder.layers.{i}")
    for i in range(n_t):
        block(f"transformer.resblocks.{i}", f"{t}.encoder.layers.{i}")
    return out


class _Root(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def save_torchscript(sd, path, metadata, attributes=None):
    """A TorchScript archive whose state_dict has exactly ``sd``'s dotted keys (+ int metadata buffers),
    like OpenAI's released .pt files. ``attributes``: dotted path -> plain (non-state-dict) module
    attribute, e.g. OpenAI's per-block ``attn_mask`` tensors (None in the image tower)."""
    root = _Root()
    for key, value in sd.items():
        *path_parts, leaf = key.split(".")
        m = root
        for part in path_parts:
            if part not in m._modules:
                m.add_module(part, torch.nn.Module())
            m = m._modules[part]
        m.register_parameter(leaf, torch.nn.Parameter(value.clone(), requires_grad=False))
    for k, v in metadata.items():
        root.register_buffer(k, torch.tensor(v))
    for key, value in (attributes or {}).items():
        *path_parts, leaf = key.split(".")
        setattr(root.get_submodule(".".join(path_parts)), leaf, value)
    torch.jit.script(root).save(path)


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
               JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, "-m", "tcvideo.convert", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small random CLIPModel saved as safetensors and as pytorch_model.bin, with reference outputs."""
    base = tmp_path_factory.mktemp("hf_small")
    model = random_hf_model(hf_config(), seed=0)
    st_dir, bin_dir = str(base / "safetensors"), str(base / "bin")
    model.save_pretrained(st_dir)
    # transformers 5 only writes safetensors; write pytorch_model.bin as transformers 4 did (torch.save of
    # the state dict, which then still held the int64 position_ids buffers).
    os.makedirs(bin_dir)
    with open(os.path.join(st_dir, "config.json")) as f:
        config_text = f.read()
    with open(os.path.join(bin_dir, "config.json"), "w") as f:
        f.write(config_text)
    sd = dict(model.state_dict())
    sd["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    sd["vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    torch.save(sd, os.path.join(bin_dir, "pytorch_model.bin"))
    images, ids = make_images(2, 32, seed=1), make_ids(3, 77, seed=2)
    return dict(model=model, st_dir=st_dir, bin_dir=bin_dir, images=images, ids=ids,
                ref=hf_reference(model, images, ids), base=base)


@pytest.fixture(scope="module")
def small_converted(small):
    return hf.convert_dir(small["st_dir"])


@pytest.fixture(scope="module")
def openai_files(tmp_path_factory):
    """A small random model in OpenAI's key layout, as a plain torch.save state dict and as TorchScript.

    OpenAI checkpoints do not store head counts (build_model uses width // 64), so this model is 128 wide
    with 2 heads; its HF directory, converted by hf.py, is kept for cross-checking the two converters.
    """
    base = tmp_path_factory.mktemp("openai")
    wide = dict(hidden_size=128, num_attention_heads=2, intermediate_size=512)
    model = random_hf_model(hf_config(vision=wide, text=wide), seed=6)
    hf_dir = str(base / "hf")
    model.save_pretrained(hf_dir)
    sd = hf_to_openai_state_dict(model.state_dict())
    plain, script = str(base / "openai_plain.pt"), str(base / "openai_script.pt")
    torch.save(sd, plain)
    # OpenAI's blocks keep attn_mask as a plain attribute (a causal mask in the text tower, None in the
    # image tower): in the archive, not in the state dict.
    masks = {f"{k[:-len('.attn.in_proj_weight')]}.attn_mask":
             (None if k.startswith("visual.") else torch.full((77, 77), float("-inf")).triu(1))
             for k in sd if k.endswith(".attn.in_proj_weight")}
    save_torchscript(sd, script, {"input_resolution": 32, "context_length": 77, "vocab_size": VOCAB}, masks)
    images, ids = make_images(2, 32, seed=7), make_ids(3, 77, seed=8)
    return dict(sd=sd, plain=plain, script=script, hf_dir=hf_dir, hf=hf.convert_dir(hf_dir), images=images, ids=ids,
                ref=hf_reference(model, images, ids))


# ------------------------------------------------------------------------------------------- parity


def test_hf_safetensors_parity(small, small_converted):
    config, params = small_converted
    assert os.listdir(small["st_dir"]).count("model.safetensors") == 1
    assert config == clip_lib.CLIPConfig(embed_dim=32, image_resolution=32, patch_size=8, vision_width=64,
                                         vision_layers=2, vision_heads=2, context_length=77, vocab_size=VOCAB,
                                         text_width=64, text_heads=2, text_layers=2)
    assert float(params["logit_scale"]) == pytest.approx(3.1)
    got = tcvideo_outputs(config, params, small["images"], small["ids"])
    assert_parity(small["ref"], got, TOL_SMALL, "HF safetensors (small)")


def test_hf_pytorch_bin_parity(small, small_converted):
    assert "pytorch_model.bin" in os.listdir(small["bin_dir"])
    assert "model.safetensors" not in os.listdir(small["bin_dir"])
    config, params = hf.convert_dir(small["bin_dir"])
    assert config == small_converted[0]
    assert_same_params(params, small_converted[1])
    got = tcvideo_outputs(config, params, small["images"], small["ids"])
    assert_parity(small["ref"], got, TOL_SMALL, "HF pytorch_model.bin (small)")


def test_hf_vit_b16_vision_tower_parity(tmp_path):
    """Full-width ViT-B/16 image tower (random weights), small text tower."""
    cfg = hf_config(vision=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                intermediate_size=3072, patch_size=16, image_size=224), projection_dim=512)
    model = random_hf_model(cfg, seed=3)
    model.save_pretrained(str(tmp_path))
    config, params = hf.convert_dir(str(tmp_path))
    assert (config.vision_width, config.vision_layers, config.vision_heads, config.patch_size,
            config.image_resolution) == (768, 12, 12, 16, 224)
    images, ids = make_images(2, 224, seed=4), make_ids(2, 77, seed=5)
    ref = hf_reference(model, images, ids)
    got = tcvideo_outputs(config, params, images, ids)
    assert_parity(ref, got, TOL_VIT_B16, "HF ViT-B/16 vision tower")


_OPENAI_METADATA = ("input_resolution", "context_length", "vocab_size")


def _torchscript_attribute_names(path):
    """Every attribute name the archive's module classes declare (its code/ text)."""
    import re
    import zipfile
    with zipfile.ZipFile(path) as z:
        text = "".join(z.read(n).decode() for n in z.namelist() if n.endswith(".py"))
    return set(re.findall(r"^  (\w+) : ", text, re.M))


@pytest.mark.parametrize("kind", ["plain", "script"])
def test_openai_checkpoint_parity(openai_files, kind):
    path = openai_files[kind]
    if kind == "script":  # really a TorchScript archive, its tensors read without running its code
        import zipfile
        assert any(n.endswith("constants.pkl") for n in zipfile.ZipFile(path).namelist())
        # exactly the state dict: the tensors plus the int metadata buffers, not the attn_mask attributes
        assert sorted(read_torch_file(path)) == sorted([*openai_files["sd"], *_OPENAI_METADATA])
        assert any(n.endswith("attn_mask") for n in _torchscript_attribute_names(path))
    config, params = openai.convert_file(path)
    assert config == openai_files["hf"][0]
    assert (config.vision_heads, config.text_heads, config.vision_width) == (2, 2, 128)
    # The OpenAI and HF converters, given the same weights, produce identical params ...
    assert_same_params(params, openai_files["hf"][1])
    # ... that reproduce the torch reference forward.
    got = tcvideo_outputs(config, params, openai_files["images"], openai_files["ids"])
    assert_parity(openai_files["ref"], got, TOL_SMALL, f"OpenAI {kind} .pt (small)")


def test_openai_plain_and_torchscript_identical(openai_files):
    _, a = openai.convert_file(openai_files["plain"])
    _, b = openai.convert_file(openai_files["script"])
    assert_same_params(a, b)


def test_safetensors_conversion_never_imports_torch(small):
    code = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
            "from tcvideo.clip.convert import hf\n"
            f"config, params = hf.convert_dir({small['st_dir']!r})\n"
            "print('OK', config.vision_layers)\n")
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "OK 2" in r.stdout


# --------------------------------------------------------------------------------------- api and CLI


def test_cli_round_trip(small, tmp_path):
    out = str(tmp_path / "converted")
    r = run_cli("hf", "--model-dir", small["st_dir"], "--out", out)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and out in lines[0] and "parameters" in lines[0]
    n_params = sum(p.numel() for n, p in small["model"].named_parameters())
    assert f"{n_params:,}" in lines[0]  # HF and tcvideo count the same numbers
    meta = json.load(open(os.path.join(out, "model.json")))
    assert meta["model"] == "clip" and meta["format"] == "hf"
    config, params = load_clip(out)
    assert isinstance(config, clip_lib.CLIPConfig)
    got = tcvideo_outputs(config, params, small["images"], small["ids"])
    assert_parity(small["ref"], got, TOL_SMALL, "CLI hf -> load_clip")


def test_cli_openai_in_process(openai_files, tmp_path, capsys):
    out = str(tmp_path / "o")
    assert cli.main(["openai", "--checkpoint", openai_files["script"], "--out", out]) == 0
    assert "OpenAI" in capsys.readouterr().out
    _, params = load_clip(out)
    assert_same_params(params, openai_files["hf"][1])
    # A second conversion into the same dir is refused with one line, then allowed with --overwrite.
    assert cli.main(["openai", "--checkpoint", openai_files["plain"], "--out", out]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and "--overwrite" in err
    assert cli.main(["openai", "--checkpoint", openai_files["plain"], "--out", out, "--overwrite"]) == 0


def test_api_bfloat16(small, small_converted, tmp_path):
    out = str(tmp_path / "bf16")
    config, params = api.convert_hf(small["st_dir"], out, dtype="bfloat16")
    loaded_config, loaded = load_clip(out)
    assert loaded_config == config
    f32 = flat(small_converted[1])
    for k, v in flat(loaded).items():
        assert v.dtype == jnp.bfloat16, k
        np.testing.assert_array_equal(v, f32[k].astype(jnp.bfloat16), err_msg=k)
    assert json.load(open(os.path.join(out, "model.json")))["dtype"] == "bfloat16"


def test_cli_help_documents_formats():
    r = run_cli("openai", "--help")
    assert r.returncode == 0 and "TorchScript" in r.stdout and "--checkpoint" in r.stdout
    r = run_cli("hf", "--help")
    assert r.returncode == 0 and "model.safetensors" in r.stdout and "pytorch_model.bin" in r.stdout


def test_cli_error_exit_code_one_line(tmp_path):
    r = run_cli("openai", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o"))
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error:") and "missing.pt" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_conversion_error_one_line(small, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    cfg = json.load(open(os.path.join(small["st_dir"], "config.json")))
    cfg["vision_config"]["hidden_act"] = "gelu"
    (bad / "config.json").write_text(json.dumps(cfg))
    assert cli.main(["hf", "--model-dir", str(bad), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vision_config.hidden_act" in err
    assert not (tmp_path / "o").exists()


def test_cli_register_subcommand_extends_parser(monkeypatch, capsys):
    monkeypatch.setattr(cli, "SUBCOMMANDS", dict(cli.SUBCOMMANDS))
    cli.add_subcommand("dummy", "a test source", lambda p: p.add_argument("--x", required=True),
                       lambda a: f"ran with {a.x}")
    assert cli.main(["dummy", "--x", "7"]) == 0
    assert capsys.readouterr().out.strip() == "ran with 7"
    with pytest.raises(ValueError, match="already registered"):
        cli.add_subcommand("dummy", "again", lambda p: None, lambda a: "")


# --------------------------------------------------------------------------------------- error paths


def test_openai_missing_key(openai_files):
    sd = {k: v.numpy() for k, v in openai_files["sd"].items()}
    del sd["visual.transformer.resblocks.1.ln_2.bias"]
    with pytest.raises(ConversionError) as e:
        openai.convert_state_dict(sd, source="ckpt.pt")
    msg = str(e.value)
    assert "ckpt.pt" in msg and "missing keys (1): visual.transformer.resblocks.1.ln_2.bias" in msg


def test_openai_unexpected_key(openai_files):
    sd = {k: v.numpy() for k, v in openai_files["sd"].items()}
    sd["visual.extra_head.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ConversionError, match=r"unexpected keys \(1\): visual.extra_head.weight"):
        openai.convert_state_dict(sd)


def test_openai_misshaped_key(openai_files):
    sd = {k: v.numpy() for k, v in openai_files["sd"].items()}
    sd["transformer.resblocks.0.mlp.c_fc.bias"] = np.zeros(100, np.float32)
    with pytest.raises(ConversionError) as e:
        openai.convert_state_dict(sd)
    assert "mis-shaped keys (1)" in str(e.value)
    assert "transformer.resblocks.0.mlp.c_fc.bias (100,)" in str(e.value)
    assert "model expects (512,)" in str(e.value)


def test_openai_all_problems_reported_at_once(openai_files):
    sd = {k: v.numpy() for k, v in openai_files["sd"].items()}
    del sd["visual.ln_post.weight"]
    sd["bogus"] = np.zeros(1)
    sd["visual.ln_pre.bias"] = np.zeros(5, np.float32)
    with pytest.raises(ConversionError) as e:
        openai.convert_state_dict(sd)
    for key in ("visual.ln_post.weight", "bogus", "visual.ln_pre.bias"):
        assert key in str(e.value)


def test_openai_nonexistent_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        openai.convert_file(str(tmp_path / "nope.pt"))


def test_openai_resnet_state_dict_refused():
    sd = {"visual.layer1.0.conv1.weight": np.zeros((64, 64, 1, 1), np.float32),
          "visual.attnpool.positional_embedding": np.zeros((50, 2048), np.float32)}
    with pytest.raises(ConversionError, match="not an OpenAI CLIP ViT state dict.*ResNet"):
        openai.convert_state_dict(sd)


def test_openai_pt_without_torch(openai_files, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(ImportError, match="needs PyTorch") as e:
        openai.convert_file(openai_files["plain"])
    assert openai_files["plain"] in str(e.value)


def test_hf_bin_without_torch_and_cli_message(small, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="needs PyTorch"):
        hf.convert_dir(small["bin_dir"])
    assert cli.main(["hf", "--model-dir", small["bin_dir"], "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs PyTorch" in err


def test_hf_dir_without_weights(small, tmp_path):
    d = tmp_path / "noweights"
    d.mkdir()
    (d / "config.json").write_text(open(os.path.join(small["st_dir"], "config.json")).read())
    with pytest.raises(FileNotFoundError) as e:
        hf.convert_dir(str(d))
    assert str(d) in str(e.value) and "model.safetensors" in str(e.value)


def test_hf_dir_missing_or_no_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        hf.convert_dir(str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        hf.convert_dir(str(tmp_path))


@pytest.mark.parametrize("tower,field,value", [("vision_config", "hidden_act", "gelu"),
                                               ("text_config", "hidden_act", "gelu_new"),
                                               ("text_config", "layer_norm_eps", 1e-6),
                                               ("vision_config", "intermediate_size", 200)])
def test_hf_unsupported_config(small, tmp_path, tower, field, value):
    d = tmp_path / "cfg"
    d.mkdir()
    cfg = json.load(open(os.path.join(small["st_dir"], "config.json")))
    cfg[tower][field] = value
    (d / "config.json").write_text(json.dumps(cfg))
    os.symlink(os.path.join(small["st_dir"], "model.safetensors"), d / "model.safetensors")
    with pytest.raises(ConversionError) as e:
        hf.convert_dir(str(d))
    assert f"{tower}.{field}" in str(e.value) and str(d) in str(e.value)


def _hf_dir_with(small, tmp_path, edit_sd=None, edit_cfg=None):
    d = tmp_path / "edited"
    d.mkdir()
    cfg = json.load(open(os.path.join(small["st_dir"], "config.json")))
    if edit_cfg:
        edit_cfg(cfg)
    (d / "config.json").write_text(json.dumps(cfg))
    sd = load_file(os.path.join(small["st_dir"], "model.safetensors"))
    if edit_sd:
        edit_sd(sd)
    save_file(sd, str(d / "model.safetensors"))
    return str(d)


def test_hf_missing_unexpected_misshaped_keys(small, tmp_path):
    def edit(sd):
        del sd["text_model.encoder.layers.1.self_attn.k_proj.weight"]
        sd["vision_model.encoder.layers.0.extra.weight"] = np.zeros(2, np.float32)
        sd["vision_model.post_layernorm.bias"] = np.zeros(65, np.float32)
        sd["text_model.embeddings.position_ids"] = np.arange(77)[None]  # ignored buffer, not reported

    d = _hf_dir_with(small, tmp_path, edit)
    with pytest.raises(ConversionError) as e:
        hf.convert_dir(d)
    msg = str(e.value)
    assert d in msg
    assert "missing keys (1): text_model.encoder.layers.1.self_attn.k_proj.weight" in msg
    assert "unexpected keys (1): vision_model.encoder.layers.0.extra.weight" in msg
    assert "vision_model.post_layernorm.bias (65,)" in msg and "model expects (64,)" in msg
    assert "position_ids" not in msg


def test_hf_position_ids_buffers_ignored(small, small_converted, tmp_path):
    def edit(sd):
        sd["text_model.embeddings.position_ids"] = np.arange(77)[None]
        sd["vision_model.embeddings.position_ids"] = np.arange(17)[None]

    _, params = hf.convert_dir(_hf_dir_with(small, tmp_path, edit))
    assert_same_params(params, small_converted[1])


def test_hf_config_disagrees_with_weights(small, tmp_path):
    def edit(cfg):
        cfg["vision_config"]["num_hidden_layers"] = 3
        cfg["projection_dim"] = 48

    d = _hf_dir_with(small, tmp_path, edit_cfg=edit)
    with pytest.raises(ConversionError) as e:
        hf.convert_dir(d)
    msg = str(e.value)
    assert "vision_layers: config.json gives 3, weights give 2" in msg
    assert "embed_dim: config.json gives 48, weights give 32" in msg and "visual_projection.weight" in msg


def test_save_model_refuses_overwrite(small_converted, tmp_path):
    config, params = small_converted
    meta = {"model": "clip", "config": config.to_dict()}
    store.save_model(str(tmp_path), params, meta)
    with pytest.raises(FileExistsError, match="already holds a model"):
        store.save_model(str(tmp_path), params, meta)
    store.save_model(str(tmp_path), params, meta, overwrite=True)


def test_load_non_model_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a tcvideo model directory") as e:
        load_clip(str(tmp_path))
    assert str(tmp_path) in str(e.value)


def test_load_clip_refuses_other_model_kind(small_converted, tmp_path):
    config, params = small_converted
    store.save_model(str(tmp_path), params, {"model": "tc_clip", "config": config.to_dict()})
    with pytest.raises(ConversionError, match="'tc_clip'"):
        load_clip(str(tmp_path))


# ------------------------------------------------------------------------------ the one CLIP loader


def test_load_clip_reads_openai_hf_and_model_dir_alike(openai_files, tmp_path):
    """The three formats of one model load to the same config and params (each read its own way)."""
    model_dir = str(tmp_path / "model_dir")
    api.convert_hf(openai_files["hf_dir"], model_dir)
    assert json.load(open(os.path.join(model_dir, "model.json")))["format"] == "hf"
    loaded = {"openai": load_clip(openai_files["plain"]), "openai_script": load_clip(openai_files["script"]),
              "hf": load_clip(openai_files["hf_dir"]), "tcvideo": load_clip(model_dir)}
    ref_config, ref_params = openai_files["hf"]
    assert (ref_config.vision_heads, ref_config.vision_width) == (2, 128)  # the fixture's model, not a preset
    for kind, (config, params) in loaded.items():
        assert config == ref_config, kind
        assert_same_params(params, ref_params)
    got = tcvideo_outputs(*loaded["tcvideo"], openai_files["images"], openai_files["ids"])
    assert_parity(openai_files["ref"], got, TOL_SMALL, "load_clip(model dir)")


def test_load_clip_dtype(openai_files, tmp_path):
    _, params = load_clip(openai_files["plain"], dtype="bfloat16")
    assert {v.dtype for v in flat(params).values()} == {np.dtype(jnp.bfloat16)}
    model_dir = str(tmp_path / "m")
    api.convert_openai(openai_files["plain"], model_dir)
    _, params = load_clip(model_dir, dtype=jnp.bfloat16)
    f32 = flat(openai_files["hf"][1])
    for k, v in flat(params).items():
        assert v.dtype == jnp.bfloat16, k
        np.testing.assert_array_equal(v, f32[k].astype(jnp.bfloat16), err_msg=k)


def test_load_clip_errors_name_the_path(tmp_path, small):
    other = tmp_path / "just_a_folder"
    other.mkdir()
    (other / "notes.txt").write_text("no checkpoint here")
    with pytest.raises(FileNotFoundError) as e:
        load_clip(str(other))
    msg = str(e.value)
    assert str(other) in msg and "neither model.json nor config.json" in msg  # what it is
    assert "OpenAI CLIP .pt" in msg and "Hugging Face CLIP directory" in msg  # what was expected
    with pytest.raises(FileNotFoundError, match="CLIP checkpoint not found: .*nope.pt"):
        load_clip(str(tmp_path / "nope.pt"))
    with pytest.raises(ConversionError, match="pass its directory") as e:
        load_clip(os.path.join(small["st_dir"], "model.safetensors"))
    assert small["st_dir"] in str(e.value)


class _RunsShell:
    """Pickles as a call of os.system: what a malicious checkpoint would hold."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_tc_clip_checkpoint_that_would_run_a_command_is_refused_and_nothing_runs(tmp_path):
    """Through the TC-CLIP converter and `python -m tcvideo.convert tc-clip` (tests/core/test_safe_pickle.py
    covers the unpickler itself): an error naming the file and the global, no command run, nothing written."""
    from tcvideo.tc_clip import convert as tc_convert
    marker, evil, clip = tmp_path / "ran", tmp_path / "evil.pth", tmp_path / "clip.pt"
    torch.save({"model": {"module.image_encoder.proj": torch.zeros(2, 2)}, "epoch": 0,
                "config": _RunsShell(str(marker))}, evil)
    torch.save({"token_embedding.weight": torch.zeros(4, 2)}, clip)
    with pytest.raises(ConversionError) as e:
        tc_convert.convert(str(evil), str(clip))
    assert str(evil) in str(e.value)
    assert f"'{os.system.__module__}.system'" in str(e.value)
    assert not marker.exists()
    out = tmp_path / "out"
    r = run_cli("tc-clip", "--checkpoint", str(evil), "--clip", str(clip), "--out", str(out))
    assert r.returncode == 1, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {evil}: refused to unpickle '{os.system.__module__}.system'"), r.stderr
    assert not marker.exists()
    assert not out.exists()
