"""Restricted unpickling: data comes back, code named by a file never runs."""
import collections
import os
import pickle
import sys
import types

import numpy as np
import pytest

from tcvideo.core import safe_pickle


class _RunsShell:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Evals:
    def __reduce__(self):
        return eval, ("1 + 1",)


@pytest.fixture
def fake_omegaconf():
    """Classes named like OmegaConf's, importable only while the pickle is written (as on the machine
    that saved an official checkpoint); removed before loading, as on a machine without omegaconf."""
    names = ["omegaconf", "omegaconf.dictconfig", "omegaconf.nodes"]
    mods = {n: types.ModuleType(n) for n in names}

    class DictConfig:  # keeps its content in __dict__['_content'], leaves in nodes, like OmegaConf
        def __init__(self, content):
            self._content = content
            self._metadata = {"ref_type": None}

    class AnyNode:
        def __init__(self, val):
            self._val = val

    for cls, mod in ((DictConfig, "omegaconf.dictconfig"), (AnyNode, "omegaconf.nodes")):
        cls.__module__, cls.__qualname__ = mod, cls.__name__
        setattr(mods[mod], cls.__name__, cls)
    sys.modules.update(mods)
    try:
        yield types.SimpleNamespace(DictConfig=DictConfig, AnyNode=AnyNode)
    finally:
        for n in names:
            sys.modules.pop(n, None)


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_numpy_and_plain_data_round_trip(tmp_path, protocol):
    data = {"rgb": np.arange(12, dtype=np.float16).reshape(3, 4), "ids": np.array([3, 1], np.int64),
            "fps": np.float32(4.0), "names": ["a", ("b", 2)], "od": collections.OrderedDict(x=1.5),
            "flags": {True, None is None}, "raw": b"\x00\xff"}
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    out = safe_pickle.load_file(str(path))
    assert sorted(out) == sorted(data)
    np.testing.assert_array_equal(out["rgb"], data["rgb"])
    assert out["rgb"].dtype == np.float16
    np.testing.assert_array_equal(out["ids"], data["ids"])
    assert out["fps"] == np.float32(4.0)
    assert out["names"] == ["a", ("b", 2)]
    assert out["od"] == collections.OrderedDict(x=1.5)
    assert out["raw"] == b"\x00\xff"


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_a_pickle_that_would_run_a_shell_command_is_refused_and_nothing_runs(tmp_path, protocol):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"w": np.zeros(2), "x": _RunsShell(str(marker))}, protocol=protocol))
    with pytest.raises(safe_pickle.UnsafePickleError) as e:
        safe_pickle.load_file(str(path))
    assert str(path) in str(e.value)
    assert f"{os.system.__module__}.system" in str(e.value)
    assert not marker.exists()
    # the same bytes through plain pickle do run the command: the refusal is what protected us
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_builtins_are_allowed_by_name_only(tmp_path):
    path = tmp_path / "eval.pkl"
    path.write_bytes(pickle.dumps(_Evals()))
    with pytest.raises(safe_pickle.UnsafePickleError, match="builtins.eval"):
        safe_pickle.load_file(str(path))


def test_an_arbitrary_class_is_refused_naming_it(tmp_path):
    path = tmp_path / "cls.pkl"
    path.write_bytes(pickle.dumps(types.SimpleNamespace(a=1)))
    with pytest.raises(safe_pickle.UnsafePickleError, match="types.SimpleNamespace"):
        safe_pickle.load_file(str(path))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_a_pickled_config_of_a_missing_package_becomes_plain_data(tmp_path, fake_omegaconf, protocol):
    cfg = fake_omegaconf.DictConfig({"num_frames": fake_omegaconf.AnyNode(16),
                                     "model": fake_omegaconf.DictConfig({"k": fake_omegaconf.AnyNode(96)})})
    blob = pickle.dumps({"epoch": 3, "config": cfg}, protocol=protocol)
    for n in ["omegaconf", "omegaconf.dictconfig", "omegaconf.nodes"]:
        sys.modules.pop(n)
    out = safe_pickle.loads(blob, path="ckpt.pth")
    assert isinstance(out["config"], safe_pickle.Record)
    assert out["config"].qualname == "omegaconf.dictconfig.DictConfig"
    plain = safe_pickle.to_plain(out)
    assert plain == {"epoch": 3, "config": {"num_frames": 16, "model": {"k": 96}}}
    with pytest.raises(ModuleNotFoundError):  # plain pickle cannot read it at all here
        pickle.loads(blob)


def test_torch_files_load_tensors_and_refuse_code(tmp_path, fake_omegaconf):
    torch = pytest.importorskip("torch")
    w = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    good, evil, marker = tmp_path / "good.pth", tmp_path / "evil.pth", tmp_path / "ran"
    torch.save({"model": {"w": w, "b": torch.nn.Parameter(torch.ones(3, dtype=torch.float16))},
                "config": fake_omegaconf.DictConfig({"alpha": fake_omegaconf.AnyNode(0.5)})}, good)
    torch.save({"model": {"w": w}, "x": _RunsShell(str(marker))}, evil)
    for n in ["omegaconf", "omegaconf.dictconfig", "omegaconf.nodes"]:
        sys.modules.pop(n)
    out = torch.load(str(good), map_location="cpu", weights_only=False,
                     pickle_module=safe_pickle.torch_pickle_module(str(good)))
    np.testing.assert_array_equal(out["model"]["w"].numpy(), w.numpy())
    assert out["model"]["b"].dtype == torch.float16
    assert safe_pickle.to_plain(out["config"]) == {"alpha": 0.5}
    with pytest.raises(safe_pickle.UnsafePickleError, match=str(evil)):
        torch.load(str(evil), map_location="cpu", weights_only=False,
                   pickle_module=safe_pickle.torch_pickle_module(str(evil)))
    assert not marker.exists()


def test_every_reader_of_pickled_files_is_restricted(tmp_path):
    """The feature reader (.pkl, and .npz object arrays) and the checkpoint reader use the restricted
    unpickler: a file that would run a command is refused naming the file; good files still read."""
    from data_pipelines.temporal.features import read_feature_file
    from tcvideo.clip.convert.common import ConversionError, read_torch_file
    marker = tmp_path / "ran"
    evil = {"rgb": np.zeros((2, 3), np.float32), "captions": _RunsShell(str(marker))}
    (tmp_path / "v.pkl").write_bytes(pickle.dumps(evil))
    np.savez(tmp_path / "v.npz", rgb=evil["rgb"], captions=np.array(evil["captions"], dtype=object))
    for name in ["v.pkl", "v.npz"]:
        with pytest.raises(safe_pickle.UnsafePickleError, match=name):
            read_feature_file(str(tmp_path / name))
    good = {"rgb": np.ones((2, 3), np.float32), "captions": {"0": [0.0, 1.5, "a cat"]}, "fps": 4.0}
    np.savez_compressed(tmp_path / "g.npz", rgb=good["rgb"], captions=np.array(good["captions"], dtype=object),
                        fps=good["fps"])
    got = read_feature_file(str(tmp_path / "g.npz"))
    np.testing.assert_array_equal(got["rgb"], good["rgb"])
    assert [c.text for c in got["captions"]] == ["a cat"]
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(2), "x": _RunsShell(str(marker))}, tmp_path / "e.pth")
    with pytest.raises(ConversionError, match="e.pth"):
        read_torch_file(str(tmp_path / "e.pth"))
    assert not marker.exists()
