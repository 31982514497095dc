"""Demo: a small VicTR trained from random init on synthetic videos on a CPU, then evaluated; the same
data, schedule and budget as TC-CLIP's demo (configs/demo.py) so the two can be compared.

    python -m tcvideo.main --config=configs/victr/demo.py --workdir=/tmp/victr_demo

Four temporal classes in two time-reversed pairs (chance 25%; order-blind models cannot beat 50%).
Auxiliary prompts: configs/victr/aux_prompts_synthetic.json (shapes, scenes).
"""
import os

import ml_collections

from tcvideo.core.config import config_module

_common = config_module(__file__, "common.py")
HERE, victr_model = _common.HERE, _common.victr_model


def _tc_clip_demo_config() -> ml_collections.ConfigDict:
    return config_module(__file__, "../demo.py").get_config()  # TC-CLIP's demo (this file is also demo.py)


def get_config() -> ml_collections.ConfigDict:
    c = _tc_clip_demo_config()
    c.name = "victr_demo"
    c.model.overrides = ml_collections.ConfigDict()  # TC-CLIP fields, unused here
    c.compare = ml_collections.ConfigDict()  # one VicTR run, not the TC-CLIP demo's TC-CLIP/ViFi-CLIP pair
    return victr_model(c, 1.0, head_layers=1, prompt_context_length=16,
                       aux_prompts=os.path.join(HERE, "aux_prompts_synthetic.json"))
