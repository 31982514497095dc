"""Loading the official TC-CLIP reference fixtures (../shared/reference/*.json + .npz) for tests.

Each fixture names its weights by seed (regenerated with the fixture folder's weights.py), and the test
writes them as the official files (OpenAI state dict + ``{"model": {"module." + k: ...}}`` checkpoint) so
that parity runs through tcvideo's converter, not through hand-mapped arrays.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def reference_dir() -> Path | None:
    for cand in (os.environ.get("TCVIDEO_REFERENCE_DIR"), REPO.parent / "shared" / "reference",
                 REPO / "shared" / "reference"):
        if cand and Path(cand, "weights.py").exists():
            return Path(cand)
    return None


def fixture_names() -> list[str]:
    d = reference_dir()
    if d is None:
        return []
    return sorted(p.stem for p in d.glob("*.json") if p.with_suffix(".npz").exists())


def _weights_module(d: Path):
    spec = importlib.util.spec_from_file_location("tc_reference_weights", d / "weights.py")
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
        rules = self.meta.get("prefix_rules")
        self.openai_sd = w.make_state_dict(self.meta["openai_shapes"], seeds["openai_clip_weights"], rules)
        self.tcclip_sd = w.make_state_dict(self.meta["tcclip_shapes"], seeds["tcclip_weights"], rules)
        self.video_btchw = w.make_input_video(self.meta["video"]["shape"], seeds["video"])
        digests = self.meta.get("digests", {})
        self.digest_ok = (
            w.state_dict_digest(self.openai_sd) == digests.get("openai_state_dict_sha256")
            and w.state_dict_digest(self.tcclip_sd) == digests.get("tcclip_state_dict_sha256")
            and w.sha256_of(self.video_btchw) == self.meta["video"]["sha256"])

    @property
    def video(self) -> np.ndarray:
        """[B, T, H, W, 3] (tcvideo's layout)."""
        return np.ascontiguousarray(self.video_btchw.transpose(0, 1, 3, 4, 2))

    def write_official_files(self, directory: Path) -> tuple[str, str]:
        """Write the OpenAI state dict (.pt) and the official TC-CLIP checkpoint (.pth) with torch."""
        import torch
        clip_path, tc_path = directory / "ViT-fixture.pt", directory / "tc_clip_fixture.pth"
        torch.save({k: torch.from_numpy(np.array(v)) for k, v in self.openai_sd.items()}, clip_path)
        model = {"module." + k: torch.from_numpy(np.array(v)) for k, v in self.tcclip_sd.items()}
        torch.save({"model": model, "optimizer": {}, "lr_scheduler": {}, "max_accuracy": 0.0, "epoch": 0,
                    "config": None}, tc_path)
        return str(clip_path), str(tc_path)

    def overrides(self) -> dict:
        """TCCLIPConfig fields the fixture's config sets that the weights do not reveal."""
        c = self.config
        lv = c.get("prompt_generation_layer_level", c.get("text_layers"))
        levels = tuple(int(x) for x in str(lv).split("+")) if isinstance(lv, str) else (
            tuple(lv) if isinstance(lv, (list, tuple)) else (int(lv),))
        return dict(num_frames=int(c["T"]), context_tokens=int(c["context_token_k"]),
                    seed_ratio=float(c["seed_token_a"]), tome_r=int(c["tome_r"]),
                    prompt_levels=levels, prompt_context_length=int(c["context_length"]),
                    ctx_init=c.get("ctx_init", "a photo of a"), local_global_bias=bool(c.get("local_global_bias", True)),
                    split_camel_case=bool(c.get("parse_ucf101", True)))
