"""A tiny OV-OAD model (32-d features, 16-frame window, 1-layer 32-wide text tower) shared by the OV-OAD tests."""
import functools

import jax

from tcvideo.ov_oad import model as oad
from tcvideo.clip.model import PRESETS, CLIPConfig

CONTEXT = 12


def tiny_text() -> CLIPConfig:
    return CLIPConfig.from_dict({**PRESETS["tiny"].to_dict(), "text_width": 32, "text_layers": 1, "text_heads": 2,
                                 "embed_dim": 32, "context_length": 16})


def tiny_config(**kw) -> oad.OVOADConfig:
    base = dict(feature_dim=32, window=16, num_neighbour=4, num_heads=4, dntr_layers=2, cluster_layers=1,
                num_group_tokens=4, group_mlp_hidden=16, out_layers=1, proj_dim=16, proj_hidden=32, text_adapter_dim=8,
                text=tiny_text())
    base.update(kw)
    return oad.OVOADConfig(**base)


@functools.lru_cache(maxsize=None)
def tiny_params(**kw):
    return oad.init_params(tiny_config(**kw), jax.random.PRNGKey(0), CONTEXT)
