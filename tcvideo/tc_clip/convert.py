"""Official TC-CLIP checkpoints (naver-ai/tc-clip ``torch.save`` dicts) -> tcvideo TC-CLIP params.

Official checkpoints lack CLIP's token embedding (prompts for new class names need it), so the OpenAI
CLIP checkpoint the model was trained from is read too; only its ``token_embedding.weight`` is used.
Settings that the weights cannot reveal (frames for 'space' embeddings, k, alpha, r, prompt level and
prompt text) come from the checkpoint's saved ``config`` when it has one (``_CONFIG_KEYS``: the official
Hydra config's top-level keys), explicit arguments win over it, defaults fill the rest.

The file is read by ``common.read_torch_file``: tensors through torch's storage reader, everything else
through the restricted unpickler (``tcvideo.core.safe_pickle``). The saved config, an OmegaConf
``DictConfig`` in official checkpoints, becomes the plain dict it holds without omegaconf being imported;
any other class or callable in the file is refused naming the file and the global, and nothing from the
file runs. There is no option for a full unpickle: every released format reads without one, and a
user's own file holding other objects can be re-saved as tensors + plain data where its code lives.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import numpy as np

from tcvideo.clip.convert import openai as openai_conv
from tcvideo.clip.convert.common import ConversionError, Rule, apply_rules, conv_kernel, count_indexed, dense_rules, flatten_shapes, layernorm_rules, read_torch_file, strip_prefix, to_numpy_state_dict, transpose
from tcvideo.clip import model as clip_lib
from tcvideo.core.tree_util import flatten, unflatten
from tcvideo.tc_clip import model as tc_lib

# Buffers recomputed from the current class names (as the official load_checkpoint does).
_BUFFERS = ("prompt_learner.token_prefix", "prompt_learner.token_suffix")

# Official config key -> TCCLIPConfig field.
_CONFIG_KEYS = {
    "num_frames": "num_frames", "context_token_k": "context_tokens", "seed_token_a": "seed_ratio",
    "tome_r": "tome_r", "positional_embedding_type": "positional_embedding_type",
    "local_global_bias": "local_global_bias", "n_ctx": "n_ctx", "ctx_init": "ctx_init",
    "context_length": "prompt_context_length", "prompt_generation_layer_level": "prompt_levels",
    "im_stop_grad": "stop_gradient_context", "parse_ucf101": "split_camel_case",
}
# Official settings tcvideo has one value of: a saved config with another is refused, naming the key.
_FIXED_KEYS = {"trainer_name": "TCCLIP", "tome_d": 0}


def _qkv_kernel(q, k, v):
    return transpose(np.concatenate([q, k, v], axis=0))


def _bias_table(t):
    return np.asarray(t).reshape(t.shape[0], -1)  # [H, 1, 2] -> [H, 2]


def vision_rules(config: tc_lib.TCCLIPConfig) -> list[Rule]:
    src, dst = "image_encoder", "visual"
    rules = [
        Rule(f"{dst}/embed/conv1/kernel", (f"{src}.conv1.weight",), conv_kernel),
        Rule(f"{dst}/embed/class_embedding", (f"{src}.class_embedding",)),
        Rule(f"{dst}/embed/positional_embedding", (f"{src}.positional_embedding",)),
        *layernorm_rules(f"{dst}/ln_pre", f"{src}.ln_pre"),
        *layernorm_rules(f"{dst}/ln_post", f"{src}.ln_post"),
        Rule(f"{dst}/proj", (f"{src}.proj",)),
    ]
    vc = config.vision
    inject = set(vc.injecting_layers(config.clip.vision_layers))
    last = max([vc.output_layer % config.clip.vision_layers, *vc.context_layers])
    for i in range(last + 1):
        s, d = f"{src}.transformer.resblocks.{i}", f"{dst}/resblocks_{i}"
        rules += [
            Rule(f"{d}/attn/in_proj_kernel", tuple(f"{s}.attn.{p}_proj.weight" for p in "qkv"), _qkv_kernel),
            Rule(f"{d}/attn/in_proj_bias", tuple(f"{s}.attn.{p}_proj.bias" for p in "qkv"),
                 lambda q, k, v: np.concatenate([q, k, v])),
            *dense_rules(f"{d}/attn/out_proj", f"{s}.attn.out_proj"),
            *layernorm_rules(f"{d}/ln_1", f"{s}.ln_1"),
            *layernorm_rules(f"{d}/ln_2", f"{s}.ln_2"),
            *dense_rules(f"{d}/mlp/c_fc", f"{s}.mlp.c_fc"),
            *dense_rules(f"{d}/mlp/c_proj", f"{s}.mlp.c_proj"),
        ]
        if i in inject and config.local_global_bias:
            rules.append(Rule(f"{d}/attn/local_global_bias", (f"{s}.attn.local_global_bias_table",), _bias_table))
    return rules


def text_rules(config: tc_lib.TCCLIPConfig) -> list[Rule]:
    rules = openai_conv.text_rules(config.clip, dst="text", src="text_encoder.", with_token_embedding=False)
    rules.append(Rule("text/token_embedding/embedding", ("token_embedding.weight",)))
    if config.n_ctx:
        rules.append(Rule("text/ctx", ("prompt_learner.ctx",)))
    for j in range(len(config.prompt_levels)):
        s, d = f"text_encoder.prompt_generation_layer.{j}", f"text/prompt_generation_{j}"
        rules += [
            Rule(f"{d}/attn/in_proj_kernel", (f"{s}.attn.in_proj_weight",), transpose),
            Rule(f"{d}/attn/in_proj_bias", (f"{s}.attn.in_proj_bias",)),
            *dense_rules(f"{d}/attn/out_proj", f"{s}.attn.out_proj"),
            *layernorm_rules(f"{d}/ln_1", f"{s}.ln_1"),
            *layernorm_rules(f"{d}/ln_1_kv", f"{s}.ln_1_kv"),
            *layernorm_rules(f"{d}/ln_2", f"{s}.ln_2"),
            *dense_rules(f"{d}/mlp/c_fc", f"{s}.mlp.c_fc"),
            *dense_rules(f"{d}/mlp/c_proj", f"{s}.mlp.c_proj"),
        ]
    return rules


def read_checkpoint(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """-> (state dict without 'module.', the saved official config's settings (``_CONFIG_KEYS``) or {})."""
    obj = read_torch_file(path)
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{path} holds a {type(obj).__name__}, not a TC-CLIP checkpoint dict")
    sd = obj.get("model", obj)
    if not isinstance(sd, Mapping):
        raise ConversionError(f"{path}: 'model' entry is a {type(sd).__name__}, not a state dict")
    sd = to_numpy_state_dict(strip_prefix(sd, "module."))
    cfg = obj.get("config") if "model" in obj else None
    return sd, saved_settings(cfg, path)


def saved_settings(cfg: Any, source: str = "checkpoint") -> dict:
    """The ``_CONFIG_KEYS`` entries of a checkpoint's saved config (plain data, see safe_pickle.to_plain).

    ConversionError naming ``source`` and the key for a config that is not a mapping or a ``_FIXED_KEYS``
    setting tcvideo does not implement. (Unresolved ``${...}`` interpolations are refused by detect_config
    unless an explicit argument replaces them.)
    """
    if cfg is None:
        return {}
    if not isinstance(cfg, Mapping):
        raise ConversionError(f"{source}: its 'config' entry is a {type(cfg).__name__} ({str(cfg)[:80]!r}), "
                              "not a mapping of settings")
    for key, value in _FIXED_KEYS.items():
        if key in cfg and cfg[key] != value:
            raise ConversionError(f"{source}: saved config has {key}={cfg[key]!r}; tcvideo's TC-CLIP implements "
                                  f"{key}={value!r} only")
    out = {}
    for key in _CONFIG_KEYS:
        if key not in cfg or cfg[key] is None:
            continue
        out[key] = cfg[key]
    return out


def detect_config(sd: Mapping[str, np.ndarray], saved: Mapping[str, Any], token_embedding: np.ndarray,
                  source: str, **overrides) -> tc_lib.TCCLIPConfig:
    """TCCLIPConfig from shapes, the checkpoint's saved config and explicit ``overrides`` (highest)."""
    need = ["image_encoder.conv1.weight", "image_encoder.positional_embedding", "image_encoder.proj",
            "text_encoder.positional_embedding", "text_encoder.ln_final.weight"]
    absent = [k for k in need if k not in sd]
    if absent:
        raise ConversionError(f"{source} is not a TC-CLIP checkpoint: missing keys " + ", ".join(absent))
    conv, pos = sd["image_encoder.conv1.weight"].shape, sd["image_encoder.positional_embedding"].shape
    grid = round(math.sqrt(pos[-2] - 1))
    clip_cfg = clip_lib.CLIPConfig(
        embed_dim=int(sd["image_encoder.proj"].shape[1]), image_resolution=int(conv[-1] * grid),
        patch_size=int(conv[-1]), vision_width=int(conv[0]),
        vision_layers=count_indexed(sd, "image_encoder.transformer.resblocks.", ".attn.q_proj.weight"),
        context_length=int(sd["text_encoder.positional_embedding"].shape[0]),
        vocab_size=int(token_embedding.shape[0]), text_width=int(sd["text_encoder.ln_final.weight"].shape[0]),
        text_layers=count_indexed(sd, "text_encoder.transformer.resblocks.", ".attn.in_proj_weight"))
    fields: dict[str, Any] = {_CONFIG_KEYS[k]: v for k, v in saved.items()}
    if "prompt_levels" in fields:
        lv = fields["prompt_levels"]
        fields["prompt_levels"] = tuple(int(x) for x in str(lv).split("+")) if isinstance(lv, str) else (
            tuple(lv) if isinstance(lv, (list, tuple)) else (int(lv),))
    fields["positional_embedding_type"] = "joint" if len(pos) == 3 else "space"
    if len(pos) == 3:
        fields["num_frames"] = int(pos[0])
    n_pg = count_indexed(sd, "text_encoder.prompt_generation_layer.", ".attn.in_proj_weight")
    fields["use_vp"] = n_pg > 0
    # Official TC-CLIP checkpoints always hold TC vision blocks (q/k/v split), bias tables or not.
    fields["use_tc"] = True
    fields["n_ctx"] = int(sd["prompt_learner.ctx"].shape[0]) if "prompt_learner.ctx" in sd else 0
    fields.update({k: v for k, v in overrides.items() if v is not None})
    by_field = {f: k for k, f in _CONFIG_KEYS.items()}
    for f, v in fields.items():
        if isinstance(v, str) and "${" in v:
            raise ConversionError(f"{source}: saved config's {by_field.get(f, f)} is the unresolved interpolation "
                                  f"{v!r}; pass {f} explicitly")
    if fields.get("positional_embedding_type") == "joint" and len(pos) == 3 and fields.get("num_frames") != pos[0]:
        raise ConversionError(f"{source}: joint positional embedding holds {pos[0]} frames but num_frames="
                              f"{fields['num_frames']} was asked for")
    if n_pg and len(fields.get("prompt_levels", ()) or (clip_cfg.text_layers,)) != n_pg:
        raise ConversionError(f"{source}: {n_pg} prompt generation layers but prompt_levels="
                              f"{fields.get('prompt_levels')}")
    try:
        return tc_lib.TCCLIPConfig(clip=clip_cfg, **fields)
    except (TypeError, ValueError) as e:
        raise ConversionError(f"{source}: cannot build a TC-CLIP config: {e}") from e


def convert(checkpoint: str, clip_checkpoint: str, dtype: Any = np.float32, report: Optional[dict] = None,
            **overrides) -> tuple[tc_lib.TCCLIPConfig, dict]:
    """Official TC-CLIP ``.pth`` + OpenAI CLIP ``.pt`` -> (TCCLIPConfig, params).

    ``overrides``: TCCLIPConfig fields (num_frames, context_tokens, seed_ratio, tome_r, prompt_levels,
    prompt_context_length, ...); they win over the checkpoint's saved config. ``report``, when given, gets
    ``'saved_config'``: the official settings read from the checkpoint ({official key: value}).
    """
    sd, saved = read_checkpoint(checkpoint)
    if report is not None:
        report["saved_config"] = dict(saved)
    clip_sd = openai_conv.load_state_dict(clip_checkpoint)
    if "token_embedding.weight" not in clip_sd:
        raise ConversionError(f"{clip_checkpoint} has no token_embedding.weight (is it an OpenAI CLIP checkpoint?)")
    tok = clip_sd["token_embedding.weight"]
    config = detect_config(sd, saved, tok, checkpoint, **overrides)
    if tok.shape[1] != config.clip.text_width:
        raise ConversionError(f"{clip_checkpoint}: token_embedding.weight {tuple(tok.shape)} does not fit text width "
                              f"{config.clip.text_width} of {checkpoint}")
    merged = {**sd, "token_embedding.weight": tok}
    vc = config.vision
    last = max([vc.output_layer % config.clip.vision_layers, *vc.context_layers])
    unused = tuple(f"image_encoder.transformer.resblocks.{i}." for i in range(last + 1, config.clip.vision_layers))
    # Blocks after the read-out layer never influence the official outputs (see official_return_layers).
    ignore = lambda k: k in _BUFFERS or k.startswith(unused) if unused else k in _BUFFERS
    expected = flatten_shapes(tc_lib.param_shapes(config))
    params = apply_rules(merged, [*vision_rules(config), *text_rules(config), Rule("logit_scale", ("logit_scale",))],
                         expected, source=f"{checkpoint} (+ token embedding of {clip_checkpoint})",
                         ignore=ignore, dtype=dtype)
    return config, params


def clip_init_params(clip_params: Mapping[str, Any], config: tc_lib.TCCLIPConfig,
                     rng: Optional[np.random.Generator] = None) -> dict:
    """TC-CLIP parameters initialised from CLIP ones, as the official model is built for training.

    Vision and text towers and logit_scale are copied; the local/global bias tables are drawn from a
    truncated normal (std 0.02); ctx comes from the token embeddings of ``config.ctx_init``; each
    prompt generation layer is a copy of text block ``level - 1`` with ln_1_kv := ln_1; 'joint'
    positional embeddings tile CLIP's table over frames.
    """
    from tcvideo.tc_clip.prompting import ctx_init_vectors
    rng = rng or np.random.default_rng(0)
    shapes = flatten_shapes(tc_lib.param_shapes(config))
    src = {k: np.asarray(v) for k, v in flatten(clip_params).items()}
    out = {}
    for path, shape in shapes.items():
        if path in src and src[path].shape == shape:
            out[path] = src[path]
        elif path == "visual/embed/positional_embedding":
            out[path] = np.broadcast_to(src[path], shape).copy()
        elif path.endswith("attn/local_global_bias"):
            # timm's trunc_normal_(std=.02) truncates at +-2 absolute, i.e. effectively a plain normal.
            out[path] = rng.normal(0, 0.02, shape).astype(np.float32)
        elif path == "text/ctx":
            out[path] = ctx_init_vectors(src["text/token_embedding/embedding"], config.ctx_init, config.n_ctx, rng)
        elif path.startswith("text/prompt_generation_"):
            j, rest = path[len("text/prompt_generation_"):].split("/", 1)
            level = config.prompt_levels[int(j)]
            rest = rest.replace("ln_1_kv", "ln_1")
            out[path] = src[f"text/resblocks_{level - 1}/{rest}"].copy()
        else:
            raise ConversionError(f"CLIP parameters lack {path} {shape} needed by this TC-CLIP config")
    return unflatten({k: v.astype(np.float32) for k, v in out.items()})
