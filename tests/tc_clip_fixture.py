"""Loading the official TC-CLIP reference fixtures (../shared/reference/*.json + .npz) for tests.

Each fixture names its weights by seed (regenerated with the fixture folder's weights.py), and the test
writes them as the official files (OpenAI state dict + ``{"model": {"module." + k: ...}}`` checkpoint) so
that parity runs through tcvideo's converter, not through hand-mapped arrays.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def reference_dirs() -> list[Path]:
    """Every fixture folder: $TCVIDEO_REFERENCE_DIR (adds fixtures) and ../shared/reference beside the repo."""
    out = []
    for cand in (os.environ.get("TCVIDEO_REFERENCE_DIR"), REPO.parent / "shared" / "reference",
                 REPO / "shared" / "reference"):
        if cand and Path(cand, "weights.py").exists() and Path(cand).resolve() not in out:
            out.append(Path(cand).resolve())
    return out


def _fixture_locations() -> dict[str, tuple[Path, str]]:
    """fixture id -> (folder, stem) over all folders; a stem found in two folders is 'stem@folder'."""
    found = [(d, p.stem) for d in reference_dirs() for p in sorted(d.glob("*.json")) if p.with_suffix(".npz").exists()]
    stems = [s for _, s in found]
    return {(s if stems.count(s) == 1 else f"{s}@{d}"): (d, s) for d, s in found}


def fixture_names() -> list[str]:
    return sorted(_fixture_locations())


def _weights_module(d: Path):
    spec = importlib.util.spec_from_file_location("tc_reference_weights", d / "weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@contextlib.contextmanager
def omegaconf_like():
    """Classes named and laid out like OmegaConf's (DictConfig / ListConfig keep ``_content``, leaves are
    AnyNodes with ``_val``, ``_metadata`` / ``_parent`` beside), importable only inside the block: files
    pickled there are what an official checkpoint holds, read later on a machine without omegaconf."""
    names = ["omegaconf", "omegaconf.base", "omegaconf.dictconfig", "omegaconf.listconfig", "omegaconf.nodes"]
    saved = {n: sys.modules[n] for n in names if n in sys.modules}
    mods = {n: types.ModuleType(n) for n in names}

    class ContainerMetadata:
        def __init__(self):
            self.ref_type, self.object_type, self.optional, self.key = None, dict, True, None

    class DictConfig:
        def __init__(self, content, parent=None):
            self._metadata, self._parent = ContainerMetadata(), parent
            self._content = {k: _node(v, self) for k, v in content.items()}

    class ListConfig:
        def __init__(self, content, parent=None):
            self._metadata, self._parent = ContainerMetadata(), parent
            self._content = [_node(v, self) for v in content]

    class AnyNode:
        def __init__(self, val, parent=None):
            self._val, self._parent, self._metadata = val, parent, ContainerMetadata()

    def _node(v, parent):
        if isinstance(v, dict):
            return DictConfig(v, parent)
        if isinstance(v, (list, tuple)):
            return ListConfig(v, parent)
        return AnyNode(v, parent)

    for cls, mod in ((ContainerMetadata, "omegaconf.base"), (DictConfig, "omegaconf.dictconfig"),
                     (ListConfig, "omegaconf.listconfig"), (AnyNode, "omegaconf.nodes")):
        cls.__module__, cls.__qualname__ = mod, cls.__name__
        setattr(mods[mod], cls.__name__, cls)
    sys.modules.update(mods)
    try:
        yield types.SimpleNamespace(create=DictConfig)
    finally:
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


class Fixture:
    def __init__(self, name: str):
        d, name = _fixture_locations()[name]
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

    def write_official_files(self, directory: Path, saved_config: Any = None,
                             name: str = "tc_clip_fixture.pth") -> tuple[str, str]:
        """Write the OpenAI state dict (.pt) and the official TC-CLIP checkpoint (.pth) with torch.

        ``saved_config``: the checkpoint's 'config' entry. A dict is pickled as the official code saves its
        Hydra config, an OmegaConf DictConfig (see ``omegaconf_like``), whose classes are importable only
        while the file is written; anything else is pickled as it is."""
        import torch
        clip_path, tc_path = directory / "ViT-fixture.pt", directory / name
        torch.save({k: torch.from_numpy(np.array(v)) for k, v in self.openai_sd.items()}, clip_path)
        model = {"module." + k: torch.from_numpy(np.array(v)) for k, v in self.tcclip_sd.items()}
        ckpt = {"model": model, "optimizer": {}, "lr_scheduler": {}, "max_accuracy": 0.0, "epoch": 0}
        if isinstance(saved_config, dict):
            with omegaconf_like() as oc:
                torch.save({**ckpt, "config": oc.create(saved_config)}, tc_path)
        else:
            torch.save({**ckpt, "config": saved_config}, tc_path)
        return str(clip_path), str(tc_path)

    def official_config(self) -> dict:
        """The fixture's settings under the official Hydra config's keys, as main.py's config holds them
        (with unrelated entries, interpolations unresolved, as a pickled DictConfig keeps them)."""
        c = self.config
        keys = ("context_token_k", "seed_token_a", "tome_r", "tome_d", "positional_embedding_type",
                "local_global_bias", "n_ctx", "ctx_init", "context_length", "parse_ucf101", "im_stop_grad",
                "prompt_generation_layer_level")
        return {"trainer_name": "TCCLIP", "model_arch": "ViT-B/16", "num_frames": int(c["T"]),
                **{k: c[k] for k in keys if k in c}, "protocol": "zero_shot", "resume": None, "wise_ft": 0.0,
                "k400": {"root": "/data/k400", "num_classes": {"default": 400}},
                "data": {"train": {"root": "${k400.root}", "num_classes": "${k400.num_classes.default}"},
                         "test": [{"name": "hmdb51_val", "dataset_list": [{"dataset_name": "hmdb51_val1"}]}]},
                "selected_option": "${hydra:runtime.choices}"}

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
