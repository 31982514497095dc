"""Shared pieces of the VicTR configs: TC-CLIP's recipes (same datasets, protocols, schedule, evaluation,
trainer and CLI) with the model swapped for VicTR (``config.model.family = "victr"``).

The paper's own few-/zero-shot hyper-parameters are not public, so the TC-CLIP recipe values are kept
for the schedule; the video head (parameter group 'head', tcvideo/victr/family.py) trains at
``config.lr_mults.head`` x lr, a tcvideo choice per recipe (tcvideo/victr/README.md, "Recipes").
Auxiliary prompts: configs/victr/aux_prompts_generic.json (objects, scenes); give a dataset-specific
file with --config.model.victr.aux_prompts=... (JSON {category: [texts]}).
"""
import os

import ml_collections

from tcvideo.core.config import config_module
from tcvideo.victr.family import victr_config_defaults

HERE = os.path.dirname(os.path.abspath(__file__))
GENERIC_AUX = os.path.join(HERE, "aux_prompts_generic.json")


def _tc_clip_common():
    return config_module(__file__, "../tc_clip/common.py")


def victr_model(c: ml_collections.ConfigDict, head_lr_mult: float = 1.0, **fields) -> ml_collections.ConfigDict:
    """Switch a training config to the VicTR family with ``config.model.victr`` fields; the head's
    parameter group trains at ``head_lr_mult`` x lr (``config.lr_mults.head``)."""
    c.model.family = "victr"
    c.lr_mults.head = float(head_lr_mult)
    c.model.victr = victr_config_defaults()
    for k, v in fields.items():
        c.model.victr[k] = v
    return c


def recipe(name: str, protocol: str, *, head_lr_mult: float, **kw) -> ml_collections.ConfigDict:
    """TC-CLIP's recipe (ViT-B/16, 16 frames, 224 px, CLIP init) with VicTR: 1 head layer, prompts of
    30 tokens (as TC-CLIP's official configs), generic auxiliary prompts, head at ``head_lr_mult`` x lr."""
    c = _tc_clip_common().recipe(name, protocol, **kw)
    return victr_model(c, head_lr_mult, head_layers=1, prompt_context_length=30, aux_prompts=GENERIC_AUX)


folder = _tc_clip_common().folder
