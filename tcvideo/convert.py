"""``python -m tcvideo.convert SOURCE ...``: foreign checkpoints -> tcvideo model directories.

Each source format is a subcommand registered with ``add_subcommand``; ``main`` builds the parser
from ``SUBCOMMANDS``. Expected failures (bad checkpoint, missing file, missing torch, existing
output) print one ``error: ...`` line and exit with status 1; ``--traceback`` shows the full trace.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Callable, Optional, Sequence

from tcvideo.clip.convert.common import ConversionError


@dataclasses.dataclass
class Subcommand:
    help: str
    description: str
    configure: Callable[[argparse.ArgumentParser], None]  # adds the subcommand's own arguments
    run: Callable[[argparse.Namespace], str]  # does the work, returns the one-line summary


SUBCOMMANDS: dict[str, Subcommand] = {}

# Errors a user can cause and fix; anything else is a bug and keeps its traceback.
EXPECTED_ERRORS = (ConversionError, FileNotFoundError, FileExistsError, NotADirectoryError, ImportError)


def add_subcommand(name: str, help: str, configure_fn: Callable[[argparse.ArgumentParser], None],
                   run_fn: Callable[[argparse.Namespace], str], description: Optional[str] = None) -> None:
    """Register ``python -m tcvideo.convert NAME``. ``configure_fn(parser)`` adds arguments;
    ``run_fn(args)`` converts and returns a one-line summary. ``description`` is the ``--help`` text
    (documenting the source format); ``help`` the line in the subcommand list."""
    if name in SUBCOMMANDS:
        raise ValueError(f"subcommand {name!r} is already registered")
    SUBCOMMANDS[name] = Subcommand(help, description or help, configure_fn, run_fn)


def add_output_args(p: argparse.ArgumentParser) -> None:
    """--out / --dtype / --overwrite, shared by every subcommand."""
    from tcvideo.clip.convert.api import DTYPES

    p.add_argument("--out", required=True, metavar="DIR",
                   help="output tcvideo model directory (model.json + orbax params/)")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="storage dtype of the params (default float32)")
    p.add_argument("--overwrite", action="store_true", help="replace a model already in --out")


def summary(kind: str, config, params, out: str) -> str:
    from tcvideo.clip.convert import api

    return (f"converted {kind} CLIP {api.describe(config)}: {api.param_count(params):,} parameters "
            f"-> {out}")


# ----------------------------------------------------------------------------------------- openai

OPENAI_DESCRIPTION = """\
Convert an OpenAI CLIP checkpoint (ViT image towers only) to a tcvideo model directory.

Source format: the .pt files released by OpenAI (github.com/openai/CLIP, e.g. ViT-B-16.pt), which are
TorchScript archives, or a plain torch.save()d state dict with the same keys (visual.conv1.weight,
visual.transformer.resblocks.N.attn.in_proj_weight, transformer.resblocks.N..., token_embedding.weight,
positional_embedding, ln_final.*, text_projection, logit_scale), optionally under a "state_dict" entry.
The architecture is read from the tensor shapes. Reading .pt files needs PyTorch (CPU build is enough).
"""


def _configure_openai(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="PT", help="OpenAI CLIP .pt / .pth file")
    add_output_args(p)


def _run_openai(args: argparse.Namespace) -> str:
    from tcvideo.clip.convert import api

    config, params = api.convert_openai(args.checkpoint, args.out, dtype=args.dtype, overwrite=args.overwrite)
    return summary("OpenAI", config, params, args.out)


# --------------------------------------------------------------------------------------------- hf

HF_DESCRIPTION = """\
Convert a Hugging Face transformers CLIPModel directory to a tcvideo model directory.

Source format: a directory written by CLIPModel.save_pretrained (e.g. a snapshot of
openai/clip-vit-base-patch16): config.json plus model.safetensors (read without torch), sharded
model.safetensors.index.json, or pytorch_model.bin (needs PyTorch). The architecture comes from
config.json and is checked against the tensor shapes; hidden_act must be quick_gelu, layer_norm_eps 1e-5
and intermediate_size 4 * hidden_size (OpenAI CLIP's architecture). q/k/v projections are fused.
"""


def _configure_hf(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-dir", required=True, metavar="DIR", help="Hugging Face CLIP model directory")
    add_output_args(p)


def _run_hf(args: argparse.Namespace) -> str:
    from tcvideo.clip.convert import api

    config, params = api.convert_hf(args.model_dir, args.out, dtype=args.dtype, overwrite=args.overwrite)
    return summary("Hugging Face", config, params, args.out)


add_subcommand("openai", "OpenAI CLIP .pt (TorchScript archive or state dict)", _configure_openai, _run_openai,
               OPENAI_DESCRIPTION)
add_subcommand("hf", "Hugging Face CLIPModel directory (safetensors or pytorch_model.bin)", _configure_hf, _run_hf,
               HF_DESCRIPTION)


# ---------------------------------------------------------------------------------------- tc-clip

TC_CLIP_DESCRIPTION = """\
Convert an official TC-CLIP checkpoint (github.com/naver-ai/tc-clip) to a tcvideo model directory.

Source format: the torch.save()d dict the official training writes ({'model': state_dict, 'optimizer',
'lr_scheduler', 'max_accuracy', 'epoch', 'config'}), keys with or without DDP's 'module.' prefix,
visual attention as q_proj/k_proj/v_proj, local_global_bias_table per layer >= 1, prompt_learner.ctx
and text_encoder.prompt_generation_layer.*. The prompt buffers token_prefix/token_suffix are dropped and
recomputed for your class names, which needs CLIP's token embedding: --clip names the OpenAI CLIP .pt
the model was trained from. Settings the weights do not record come from the checkpoint's saved Hydra
config (num_frames, context_token_k, seed_token_a, tome_r, prompt_generation_layer_level, n_ctx,
ctx_init, context_length, parse_ucf101, ...) when present; the flags below win over it; defaults
(the released ViT-B/16 recipe) fill the rest.

Nothing in the file runs: tensors and plain data are read, the saved OmegaConf config becomes plain
data without omegaconf, and any other pickled class or function is refused naming the file and the
global. There is no flag for an unrestricted unpickle (every released format reads without one).
Load the result with tcvideo.load_tc_clip(DIR).
"""


def _configure_tc_clip(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="PTH", help="official TC-CLIP checkpoint")
    p.add_argument("--clip", required=True, metavar="PT", help="OpenAI CLIP .pt (supplies token_embedding)")
    p.add_argument("--num-frames", type=int, default=None, help="frames per clip (default 16)")
    p.add_argument("--context-tokens", type=int, default=None, help="k context tokens (default 96)")
    p.add_argument("--seed-ratio", type=float, default=None, help="alpha, seed tokens per frame (default 0.3)")
    p.add_argument("--tome-r", type=int, default=None, help="bipartite merges per step (default 100)")
    p.add_argument("--prompt-levels", default=None, help="prompt generation level(s), e.g. 12 or 6+12")
    p.add_argument("--prompt-context-length", type=int, default=None,
                   help="token length of class prompts (official configs: 30; LLM runs: 77)")
    add_output_args(p)


def _run_tc_clip(args: argparse.Namespace) -> str:
    from tcvideo.clip.convert import api

    levels = tuple(int(x) for x in args.prompt_levels.split("+")) if args.prompt_levels else None
    report: dict = {}
    config, params = api.convert_tc_clip(
        args.checkpoint, args.clip, args.out, dtype=args.dtype, overwrite=args.overwrite, report=report,
        num_frames=args.num_frames, context_tokens=args.context_tokens, seed_ratio=args.seed_ratio,
        tome_r=args.tome_r, prompt_levels=levels, prompt_context_length=args.prompt_context_length)
    saved = report.get("saved_config") or {}
    origin = ("settings from the checkpoint's config: " + ", ".join(f"{k}={v}" for k, v in saved.items())
              if saved else "no saved config in the checkpoint: settings from flags / defaults")
    return (f"converted TC-CLIP ({api.describe(config.clip)}, {config.num_frames} frames, k={config.context_tokens}, "
            f"alpha={config.seed_ratio}, r={config.tome_r}, prompt levels {'+'.join(map(str, config.prompt_levels))}): "
            f"{api.param_count(params):,} parameters -> {args.out} ({origin})")


add_subcommand("tc-clip", "official TC-CLIP .pth (+ the OpenAI CLIP .pt for token embeddings)", _configure_tc_clip,
               _run_tc_clip, TC_CLIP_DESCRIPTION)


# ----------------------------------------------------------------------------------------- ov-oad

OV_OAD_DESCRIPTION = """\
Convert an official OV-OAD checkpoint (github.com/ZQSIAT/OV-OAD, the feature-input GroupViT of
models/group_vit_0423.py) to a tcvideo model directory.

Source format: the torch.save()d dict of utils/checkpoint.py:save_checkpoint ({'model': state_dict,
'optimizer', 'lr_scheduler', 'scaler', 'metrics', 'epoch', 'config'}), keys img_encoder.* (fused attn.qkv,
layers.0.long_short_xattn, layers.1.group_token / downsample.*, norm), text_encoder.* (OpenAI CLIP text
names + adaptmlp), img_projector / text_projector (linear_hidden.0/1, linear_out), saliency_projector,
logit_scale, multi_label_logit_scale; a 'module.' prefix is stripped. The architecture is read from the
shapes; the visual head count from the saved config when present, else --num-heads. --clip names the
OpenAI CLIP .pt whose visual.proj, text tower and logit_scale make the plain-CLIP zero-shot branch of the
released score fusion (without it the model is built with zero_shot_clip=False).
Load the result with tcvideo.core.model_dir.load_model(DIR) (meta['config'] is the OVOADConfig).
"""


def _configure_ov_oad(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="PTH", help="official OV-OAD checkpoint")
    p.add_argument("--clip", default=None, metavar="PT", help="OpenAI CLIP .pt (the zero-shot branch)")
    p.add_argument("--num-heads", type=int, default=None,
                   help="visual attention heads when the checkpoint saved no config (released: 8)")
    add_output_args(p)


def _run_ov_oad(args: argparse.Namespace) -> str:
    from tcvideo.clip.convert import api
    from tcvideo.ov_oad import convert as ov_convert

    config, params = ov_convert.convert_to_directory(args.checkpoint, args.clip, args.out, num_heads=args.num_heads,
                                                     dtype=args.dtype, overwrite=args.overwrite)
    return (f"converted OV-OAD ({config.feature_dim}-d features, window {config.window}, {config.num_heads} heads, "
            f"zero-shot CLIP {'on' if config.zero_shot_clip else 'off'}): {api.param_count(params):,} parameters "
            f"-> {args.out}")


add_subcommand("ov-oad", "official OV-OAD .pth (+ the OpenAI CLIP .pt for the zero-shot branch)", _configure_ov_oad,
               _run_ov_oad, OV_OAD_DESCRIPTION)


# ------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tcvideo.convert",
        description="Convert foreign checkpoints to tcvideo model directories (load with "
                    "tcvideo.clip.loader.load_clip).")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    for name, cmd in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.description,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        cmd.configure(p)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        line = SUBCOMMANDS[args.source].run(args)
    except EXPECTED_ERRORS as e:
        if args.traceback:
            raise
        msg = " ".join(str(e).split())  # one line, however long the key lists are
        print(f"error: {msg}", file=sys.stderr)
        return 1
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
