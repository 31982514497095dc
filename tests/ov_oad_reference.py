"""Loading the official OV-OAD reference fixtures (<reference>/ov_oad/*.json + .npz) for tests.

The folder is ``$TCVIDEO_OV_OAD_REFERENCE_DIR`` when set, else ``../shared/reference/ov_oad`` beside the
repository. Each fixture names its weights by seed (regenerated with the folder's weights.py); the test
writes them as the official files (``{'model': state_dict, ..., 'config'}`` checkpoint + OpenAI CLIP state
dict) so that parity runs through tcvideo's converter, not through hand-mapped arrays.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def reference_dir() -> Path | None:
    env = os.environ.get("TCVIDEO_OV_OAD_REFERENCE_DIR")
    for cand in (env, REPO.parent / "shared" / "reference" / "ov_oad", REPO / "shared" / "reference" / "ov_oad"):
        if cand and Path(cand, "weights.py").exists():
            return Path(cand)
    return None


def fixture_names() -> list[str]:
    d = reference_dir()
    if d is None:
        return []
    return sorted(p.stem for p in d.glob("*.json") if p.with_suffix(".npz").exists())


def _weights_module(d: Path):
    spec = importlib.util.spec_from_file_location("ov_oad_reference_weights", d / "weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Fixture:
    def __init__(self, name: str):
        d = reference_dir()
        self.name = name
        self.meta = json.loads((d / f"{name}.json").read_text())
        self.arrays = dict(np.load(d / f"{name}.npz"))
        self.config = self.meta["config"]
        w = _weights_module(d)
        seeds = self.meta["seeds"]
        self.ovoad_sd = w.make_state_dict(self.meta["ovoad_shapes"], seeds["ovoad_weights"], self.meta.get("prefix_rules"))
        self.clip_sd = w.make_state_dict(self.meta["clip_shapes"], seeds["clip_weights"])
        self.features = w.make_input_video(self.meta["inputs"]["features"]["shape"], seeds["features"])
        digests = self.meta["digests"]
        self.digest_ok = (w.state_dict_digest(self.ovoad_sd) == digests["ovoad_state_dict_sha256"]
                          and w.state_dict_digest(self.clip_sd) == digests["clip_state_dict_sha256"]
                          and w.sha256_of(self.features) == digests["features_sha256"])

    @property
    def num_heads(self) -> int:
        return int(self.meta["constructor_kwargs"]["model"]["img_encoder"]["num_heads"][0])

    def zero_shot_clip_sd(self) -> dict:
        """The CLIP state dict the fixture's zero-shot branch actually computed with.

        In the fixture maker one CLIP object serves every ``clip.load`` and is float32 on CPU, so
        ``MultiLabelContrastive``'s ``nn.Parameter(clip.visual.proj.detach().float())`` SHARES storage with
        ``visual.proj``, and loading the OV-OAD state dict overwrote CLIP's ``visual.proj`` with the
        checkpoint's ``saliency_projector``: the recorded ``score_zs_*`` use that matrix (checked to 4e-8).
        On the official GPU runs ``clip.load`` builds a fresh fp16 model per call and ``.float()`` copies,
        so there the zero-shot branch uses CLIP's own ``visual.proj``, which is what the converter reads.
        """
        sd = dict(self.clip_sd)
        sd["visual.proj"] = self.ovoad_sd["saliency_projector"]
        return sd

    def write_official_files(self, directory: Path) -> tuple[str, str]:
        """The official checkpoint (.pth, as utils/checkpoint.py:save_checkpoint writes it, with the saved
        config's head count) and the OpenAI-layout CLIP state dict (.pt), written with torch."""
        import torch
        ckpt, clip = directory / "ov_oad_fixture.pth", directory / "ViT-fixture.pt"
        model = {k: torch.from_numpy(np.array(v)) for k, v in self.ovoad_sd.items()}
        config = {"model": {"img_encoder": dict(self.meta["constructor_kwargs"]["model"]["img_encoder"])}}
        torch.save({"model": model, "optimizer": {}, "lr_scheduler": {}, "scaler": {}, "metrics": {}, "epoch": 0,
                    "config": config}, ckpt)
        torch.save({k: torch.from_numpy(np.array(v)) for k, v in self.zero_shot_clip_sd().items()}, clip)
        return str(ckpt), str(clip)
