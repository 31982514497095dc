"""Shared machinery of the checkpoint converters: reading files, mapping keys, reporting errors.

A converter is a list of ``Rule``s (source key -> parameter path + array transform) checked against
the shapes the Flax model expects. Every problem is collected before raising, so one error names
every missing, unexpected and mis-shaped key at once.
"""
from __future__ import annotations

import dataclasses
import os
import re
import zipfile
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from tcvideo.core.tree_util import flatten, unflatten  # noqa: F401  (re-exported for converters)
from tcvideo.core import safe_pickle


class ConversionError(ValueError):
    """A checkpoint does not fit the model; the message lists every offending key."""


@dataclasses.dataclass
class Rule:
    """``dst`` (a '/'-joined parameter path) is ``fn(*[state_dict[k] for k in src])``."""

    dst: str
    src: tuple[str, ...]
    fn: Callable[..., np.ndarray] = lambda x: x


def transpose(x: np.ndarray) -> np.ndarray:
    """PyTorch Linear weight [out, in] -> Flax Dense kernel [in, out]."""
    return np.ascontiguousarray(x.T)


def conv_kernel(x: np.ndarray) -> np.ndarray:
    """PyTorch Conv2d weight [out, in, kh, kw] -> [kh, kw, in, out]."""
    return np.ascontiguousarray(x.transpose(2, 3, 1, 0))


def layernorm_rules(dst: str, src: str) -> list[Rule]:
    return [Rule(f"{dst}/scale", (f"{src}.weight",)), Rule(f"{dst}/bias", (f"{src}.bias",))]


def dense_rules(dst: str, src: str) -> list[Rule]:
    return [Rule(f"{dst}/kernel", (f"{src}.weight",), transpose), Rule(f"{dst}/bias", (f"{src}.bias",))]


def flatten_shapes(tree: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Nested dict of arrays / ShapeDtypeStructs -> {'a/b/c': shape}."""
    return {k: tuple(v.shape) for k, v in flatten(tree).items()}


def apply_rules(state_dict: Mapping[str, np.ndarray], rules: Sequence[Rule],
                expected: Mapping[str, tuple[int, ...]], *, source: str,
                ignore: Callable[[str], bool] = lambda k: False,
                dtype: Any = np.float32) -> dict:
    """Map ``state_dict`` through ``rules`` into a nested param dict matching ``expected`` shapes.

    Raises ConversionError naming every missing source key, unexpected source key (not consumed by a
    rule and not ignored), mis-shaped result and model parameter no rule produces.
    """
    missing, misshaped, flat = [], [], {}
    used: set[str] = set()
    for rule in rules:
        absent = [k for k in rule.src if k not in state_dict]
        if absent:
            missing.extend(absent)
            # The present sources of a multi-source rule (e.g. q/k/v) are expected, not "unexpected".
            used.update(k for k in rule.src if k in state_dict)
            continue
        used.update(rule.src)
        value = np.asarray(rule.fn(*[np.asarray(state_dict[k]) for k in rule.src]))
        want = expected.get(rule.dst)
        if want is None:
            raise AssertionError(f"converter rule targets unknown parameter {rule.dst}")  # a bug in tcvideo
        if tuple(value.shape) != tuple(want):
            srcs = ", ".join(f"{k} {tuple(np.shape(state_dict[k]))}" for k in rule.src)
            misshaped.append(f"{srcs} -> {rule.dst}: got {tuple(value.shape)}, model expects {tuple(want)}")
            continue
        flat[rule.dst] = value.astype(dtype)
    unexpected = sorted(k for k in state_dict if k not in used and not ignore(k))
    unproduced = sorted(set(expected) - {r.dst for r in rules})
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): " + ", ".join(sorted(set(missing))))
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): " + ", ".join(unexpected))
    if misshaped:
        problems.append(f"mis-shaped keys ({len(misshaped)}):\n    " + "\n    ".join(misshaped))
    if unproduced:
        problems.append("model parameters with no source: " + ", ".join(unproduced))
    if problems:
        raise ConversionError(f"{source} does not match the model:\n  " + "\n  ".join(problems))
    return unflatten(flat)


def count_indexed(keys: Iterable[str], prefix: str, suffix: str) -> int:
    """Number of distinct i with a key ``{prefix}{i}{suffix}``."""
    idx = set()
    for k in keys:
        if k.startswith(prefix) and k.endswith(suffix):
            mid = k[len(prefix): len(k) - len(suffix)]
            if mid.isdigit():
                idx.add(int(mid))
    return len(idx)


def _import_torch(path: str):
    try:
        import torch  # noqa: F401  (only PyTorch can read its pickle/TorchScript archives)
    except ImportError as e:
        raise ImportError(
            f"Reading {path} needs PyTorch (it is a PyTorch .pt/.pth archive). Install the CPU build, "
            "e.g. `pip install torch==2.13.0`, or convert from a Hugging Face directory with "
            "model.safetensors, which needs no torch.") from e
    return torch


def to_numpy_state_dict(obj: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Tensors -> float/int numpy arrays; non-tensor entries are kept as they are."""
    out = {}
    for k, v in obj.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu()
            if v.is_floating_point():
                v = v.double() if v.dtype.itemsize > 4 else v.float()
            out[k] = v.numpy()
        else:
            out[k] = v
    return out


_CLASS_RE = re.compile(r"^class (\w+)\(Module\):\n((?:  .*\n)*)", re.M)
_NAMES_RE = re.compile(r"^  (__parameters__|__buffers__) = \[(.*)\]$", re.M)


def _state_dict_declarations(z: zipfile.ZipFile) -> dict[str, frozenset]:
    """{'__torch__.pkg.Class': names of its parameters and buffers} from a TorchScript archive's code/.

    TorchScript writes each module class as text (``class Block(Module):`` then ``__parameters__ = [...]``
    and ``__buffers__ = [...]``); this text is only searched for those two lists, never compiled or run.
    Attributes not listed (OpenAI's ``attn_mask`` tensors, ints, flags) are not part of ``state_dict()``.
    """
    decls = {}
    for name in z.namelist():
        parts = name.split("/")
        if "code" not in parts or not name.endswith(".py"):
            continue
        rel = parts[parts.index("code") + 1:]
        module = ".".join([*rel[:-1], rel[-1][:-3]])
        text = z.read(name).decode("utf-8", errors="replace")
        for m in _CLASS_RE.finditer(text):
            names = set()
            for _, listed in _NAMES_RE.findall(m.group(2)):
                names.update(x.strip().strip('"') for x in listed.split(",") if x.strip())
            decls[f"{module}.{m.group(1)}"] = frozenset(names)
    return decls


def _module_tensors(obj: Any, decls: Mapping[str, frozenset], prefix: str = "") -> dict:
    """{'a.b.c': tensor}: the state dict of a TorchScript module object as restricted unpickling rebuilds
    it (a safe_pickle Record per module, its attributes in ``state``). A module whose class declares its
    parameters and buffers contributes exactly those; one without a declaration every tensor attribute
    (then a converter's unexpected-key error names them)."""
    out = {}
    state = obj.state if isinstance(obj, safe_pickle.Record) else obj
    if not isinstance(state, Mapping):
        return out
    declared = decls.get(obj.qualname) if isinstance(obj, safe_pickle.Record) else None
    for k, v in state.items():
        if hasattr(v, "detach"):
            if declared is None or k in declared:
                out[f"{prefix}{k}"] = v
        elif isinstance(v, (safe_pickle.Record, Mapping)):
            out.update(_module_tensors(v, decls, f"{prefix}{k}."))
    return out


def _read_torchscript_tensors(path: str, torch) -> dict:
    """The state dict of a TorchScript archive (OpenAI's release format): the parameters and buffers of
    its pickled modules, read without compiling or running its code (``torch.jit.load`` would)."""
    try:
        with zipfile.ZipFile(path) as z:
            decls = _state_dict_declarations(z)
        reader = torch._C.PyTorchFileReader(path)
        obj = torch.serialization._load(reader, "cpu", safe_pickle.torch_pickle_module(path), pickle_file="data.pkl")
    except safe_pickle.UnsafePickleError as e:
        raise ConversionError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - report which file failed and why
        raise ConversionError(f"{path} looks like a TorchScript archive but could not be read: {e}") from e
    return _module_tensors(obj, decls)


def read_torch_file(path: str) -> Any:
    """Load a PyTorch file: a TorchScript archive (OpenAI's release format) or a pickled object."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    torch = _import_torch(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            is_script = any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
        if is_script:
            return _read_torchscript_tensors(path, torch)
    try:
        # Never a full unpickle, and no flag for one: every released format reads without it (official
        # TC-CLIP checkpoints pickle OmegaConf configs beside the tensors, which become plain data);
        # a file holding another class is refused, with the way to re-save it as data.
        obj = torch.load(path, map_location="cpu", weights_only=False,
                         pickle_module=safe_pickle.torch_pickle_module(path))
    except safe_pickle.UnsafePickleError as e:
        raise ConversionError(f"{e}. If this is your own file, re-save its tensors and plain settings "
                              "where your code runs, e.g. torch.save({'model': ckpt['model'], 'config': "
                              "dict(...)}, 'clean.pth'), and convert that") from None
    except Exception as e:  # noqa: BLE001
        raise ConversionError(f"{path} is not a readable PyTorch checkpoint: {e}") from e
    return safe_pickle.to_plain(obj)


def strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> dict:
    """Remove ``prefix`` from every key that has it (e.g. DDP's 'module.')."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}
