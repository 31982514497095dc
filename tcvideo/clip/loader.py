"""The one CLIP loader (placeholder until the dedup branch lands)."""
from __future__ import annotations

import os


def load_clip(path: str, dtype=None):
    """OpenAI .pt file or tcvideo CLIP model dir -> (CLIPConfig, params)."""
    if os.path.isdir(path):
        from tcvideo.clip import model as clip_lib
        from tcvideo.core import model_dir
        params, meta = model_dir.load_model(path)
        return clip_lib.CLIPConfig.from_dict(meta["config"]), params
    from tcvideo.clip.convert.openai import convert_file
    return convert_file(path)
