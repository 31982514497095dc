"""Restricted unpickling: tensors, numpy arrays and plain data are read; nothing in a file is executed.

A pickle is a program: ``pickle.load`` calls whatever callables the file names (``os.system`` included).
Downloaded checkpoints, feature files and benchmark episode files are read here instead:

* allowed globals (``ALLOWED``): plain builtin types, ``collections`` containers, numpy's array /
  dtype / scalar reconstructors and, for PyTorch files, torch's tensor rebuild functions and dtypes;
* config-like classes of packages tcvideo does not depend on (``PLACEHOLDER_PREFIXES``: OmegaConf /
  Hydra configs pickled inside official checkpoints, ``argparse.Namespace``, EasyDict, yacs, ``typing``
  markers) are rebuilt as inert ``Record`` objects that only store their arguments and state, then
  turned into plain dicts by ``to_plain``: the class is never imported, no method of it runs;
* any other global raises ``UnsafePickleError`` naming the file and the global; nothing is called.

A full, unrestricted unpickle exists nowhere in this module: callers that allow one for a user's own
trusted file do so behind an explicit flag of their own.
"""
from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
import types
from typing import IO, Any

# module -> names that may be looked up. Everything here constructs data; none of it runs file code.
ALLOWED: dict[str, frozenset] = {
    "builtins": frozenset({"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str",
                           "bytes", "bytearray", "bool", "slice", "range", "object"}),
    "collections": frozenset({"OrderedDict", "defaultdict", "deque", "Counter"}),
    "_codecs": frozenset({"encode"}),  # protocol-2 pickles encode bytes (numpy buffers) with it
    "copyreg": frozenset({"_reconstructor"}),
    "numpy": frozenset({"ndarray", "dtype"}),
    "numpy.core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy._core.multiarray": frozenset({"_reconstruct", "scalar"}),
    "numpy.core.numeric": frozenset({"_frombuffer"}),
    "numpy._core.numeric": frozenset({"_frombuffer"}),
    "torch._utils": frozenset({"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter",
                               "_rebuild_parameter_with_state"}),
    "torch._tensor": frozenset({"_rebuild_from_type_v2"}),
    "torch.nn.parameter": frozenset({"Parameter"}),
    "torch": frozenset({"Size", "Tensor", "device"}),
}
# numpy dtype classes (numpy.dtypes.Float32DType, ...) appear in pickles of numpy >= 1.25.
ALLOWED_MODULE_PREFIXES = ("numpy.dtypes",)
PLACEHOLDER_PREFIXES = ("omegaconf.", "hydra.", "yacs.", "easydict.", "typing.", "argparse.Namespace",
                        "__torch__.")


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global that restricted unpickling does not construct."""


class Record:
    """An inert stand-in for an instance of a class that is not constructed (see PLACEHOLDER_PREFIXES).

    It stores what the pickle gives it: constructor arguments, dict items, list items and ``state``.
    Not a dict subclass, so that every pickle path (NEWOBJ, REDUCE, ``copyreg._reconstructor``) can make one.
    """
    qualname = "?"
    args: tuple = ()
    kwargs: dict = {}
    state: Any = None

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args, obj.kwargs = args, kwargs
        return obj

    @property
    def mapping(self) -> dict:
        return self.__dict__.setdefault("_mapping", {})

    @property
    def items_(self) -> list:
        return self.__dict__.setdefault("_items", [])

    def __setitem__(self, key: Any, value: Any) -> None:
        self.mapping[key] = value

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def append(self, x: Any) -> None:
        self.items_.append(x)

    def extend(self, xs) -> None:
        self.items_.extend(xs)

    def __reduce__(self):  # never pickled back as the class it stands for
        raise TypeError(f"a Record of {self.qualname} cannot be pickled")

    def __repr__(self) -> str:
        return f"Record({self.qualname})"


def _record_class(module: str, name: str) -> type:
    return type(name, (Record,), {"qualname": f"{module}.{name}", "__module__": __name__})


def _is_torch_dtype(module: str, name: str) -> bool:
    if module != "torch":
        return False
    import torch
    return isinstance(getattr(torch, name, None), torch.dtype)


class Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that constructs only ALLOWED globals and Records; ``path`` names the file."""

    def __init__(self, file: IO[bytes], *args, path: str = "<stream>", **kwargs):
        super().__init__(file, *args, **kwargs)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        # Protocol 0-2 pickles name Python 2 modules (__builtin__, copy_reg): judge the Python 3 names.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        qual = f"{module}.{name}"
        if (name in ALLOWED.get(module, ()) or module.startswith(ALLOWED_MODULE_PREFIXES)
                or _is_torch_dtype(module, name)):
            return super().find_class(module, name)
        if qual.startswith(PLACEHOLDER_PREFIXES) or module.startswith(PLACEHOLDER_PREFIXES):
            return _record_class(module, name)
        raise UnsafePickleError(
            f"{self.path}: refused to unpickle '{qual}': only tensors, numpy arrays and plain data are "
            "read from pickles (a class or function in a file could run code)")


def load(file: IO[bytes], path: str = "<stream>") -> Any:
    """Restricted ``pickle.load`` of an open binary file; ``path`` names it in errors."""
    return Unpickler(file, path=path).load()


def load_file(path: str) -> Any:
    """Restricted unpickle of the file at ``path`` (plain and numpy data; Records for config classes)."""
    with open(path, "rb") as f:
        return load(f, path=path)


def loads(data: bytes, path: str = "<bytes>") -> Any:
    return load(io.BytesIO(data), path=path)


def torch_pickle_module(path: str) -> types.SimpleNamespace:
    """A ``pickle_module`` for ``torch.load(..., pickle_module=..., weights_only=False)``.

    torch subclasses ``pickle_module.Unpickler`` (adding storages and ``persistent_load``) and calls
    ``pickle_module.load`` for the legacy format's headers: both are restricted here.
    """
    class _TorchUnpickler(Unpickler):
        def __init__(self, file, *args, **kwargs):
            super().__init__(file, *args, path=path, **kwargs)

    def _load(file, **kwargs):
        return _TorchUnpickler(file, **kwargs).load()

    return types.SimpleNamespace(__name__="tcvideo.core.safe_pickle", Unpickler=_TorchUnpickler,
                                 load=_load, UnpicklingError=pickle.UnpicklingError)


def to_plain(obj: Any, _depth: int = 0) -> Any:
    """Records -> plain dicts / lists / scalars, recursively; other values unchanged.

    OmegaConf containers keep their content in ``_content`` and leaf nodes their value in ``_val``:
    those are unwrapped, so a pickled DictConfig becomes the dict it holds. A Record with neither items
    nor state becomes ``{'__class__': name, 'args': [...]}`` (``typing.Any`` and the like: its name).
    """
    if _depth > 200:
        raise ValueError("to_plain: nesting deeper than 200 levels")
    rec = lambda x: to_plain(x, _depth + 1)  # noqa: E731
    if isinstance(obj, Record):
        state = obj.state
        if isinstance(state, tuple) and len(state) == 2 and (state[0] is None or isinstance(state[0], dict)):
            state = {**(state[0] or {}), **(state[1] or {})}  # (dict state, slot state)
        if isinstance(state, dict) and "_content" in state:
            return rec(state["_content"])
        if isinstance(state, dict) and "_val" in state:
            return rec(state["_val"])
        if obj.items_:
            return [rec(x) for x in obj.items_]
        out = {k: rec(v) for k, v in obj.mapping.items()}
        if isinstance(state, dict):
            out.update({k: rec(v) for k, v in state.items()})
        elif state is not None:
            out["__state__"] = rec(state)
        if out:
            return out
        if not obj.args and not obj.kwargs:
            return obj.qualname
        return {"__class__": obj.qualname, "args": [rec(a) for a in obj.args]}
    if isinstance(obj, dict):
        return type(obj)((k, rec(v)) for k, v in obj.items()) if type(obj) in (dict, collections.OrderedDict) \
            else {k: rec(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(rec(x) for x in obj) if type(obj) in (list, tuple) else [rec(x) for x in obj]
    return obj


__all__ = ["ALLOWED", "PLACEHOLDER_PREFIXES", "Record", "Unpickler", "UnsafePickleError", "load", "load_file",
           "loads", "to_plain", "torch_pickle_module"]
