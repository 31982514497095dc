"""Every notebook in colab/ runs headless (nbclient) and fails the test on any error.

Options keep their defaults (the training demo's full default budget included), except that output
locations (*_DIR, WORKDIR) are moved into the test's tmp dir: a cell with those values is inserted
after the notebook's options cell (tagged "parameters"), the way papermill parameterises notebooks.

The notebooks of one test process share one kernel (starting a kernel and importing JAX, TensorFlow
and tcvideo in it cost each notebook ~10 CPU seconds): a first cell inserted into each notebook empties
the kernel's namespace (``%reset -f``) and moves into the test's tmp dir, so that each notebook still
runs from a blank namespace and fails on any name it does not define itself.
"""
import glob
import os
import re

import nbformat
import pytest
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "colab", "*.ipynb")))


@pytest.fixture(scope="module")
def jax_cache(tmp_path_factory):
    """A persistent compilation cache shared by the notebook kernels: the same tiny TC-CLIP is
    initialised in every notebook, so only the first kernel compiles it."""
    return str(tmp_path_factory.mktemp("jax_cache"))


class _Kernel:
    """One kernel for the notebooks of this module (started by the first notebook's client)."""

    def __init__(self):
        self.km = None

    def manager(self, client: NotebookClient):
        if self.km is not None and not run_sync(self.km.is_alive)():  # a notebook killed it: start afresh
            self.shutdown()
        if self.km is None:
            self.km = client.create_kernel_manager()
        return self.km

    def shutdown(self):
        if self.km is not None and self.km.has_kernel:
            run_sync(self.km.shutdown_kernel)(now=True)
        self.km = None


@pytest.fixture(scope="module")
def kernel():
    k = _Kernel()
    yield k
    k.shutdown()


def _run(path: str, tmp_path, jax_cache: str, kernel: _Kernel) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{path}: needs exactly one cell tagged 'parameters' (the Colab form)"
    names = [ln.split("=")[0].strip() for ln in nb.cells[params[0]].source.splitlines()
             if "=" in ln and not ln.lstrip().startswith("#")]
    overrides = {n: str(tmp_path / n.lower()) for n in names if n.endswith("_DIR") or n == "WORKDIR"}
    nb.cells.insert(params[0] + 1, nbformat.v4.new_code_cell(
        "\n".join(f"{k} = {v!r}" for k, v in overrides.items())))
    # The shared kernel: a blank namespace (imported modules stay loaded) and this test's tmp dir as cwd.
    nb.cells.insert(0, nbformat.v4.new_code_cell(f"%reset -f\nimport os\nos.chdir({str(tmp_path)!r})\ndel os"))
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")  # this checkout's tcvideo
    # One device, as in Colab (conftest simulates 4 for the trainer tests; compiling for 4 is slower).
    env["XLA_FLAGS"] = re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", "")).strip()
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["JAX_COMPILATION_CACHE_DIR"] = jax_cache
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.km = kernel.manager(client)  # not owned by the client: the kernel outlives this notebook
    client.owns_km = False
    try:
        client.execute(env=env)  # raises CellExecutionError on the first failing cell
    finally:
        if client.kc is not None:  # this notebook's channels; the kernel stays
            client.kc.stop_channels()
    return nb


def _text(nb) -> str:
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            assert o.get("output_type") != "error", o
            out.append(o.get("text", "") or o.get("data", {}).get("text/plain", ""))
    return "\n".join(out)


def _images(nb) -> int:
    return sum("image/png" in o.get("data", {}) or "image/gif" in o.get("data", {})
               for c in nb.cells for o in c.get("outputs", []))


def test_all_notebooks_listed():
    assert {os.path.basename(p) for p in NOTEBOOKS} == {"quickstart.ipynb", "train_demo.ipynb",
                                                         "context_tokens.ipynb", "online_detection.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tmp_path, jax_cache, kernel):
    nb = _run(path, tmp_path, jax_cache, kernel)
    text, name = _text(nb), os.path.basename(path)
    assert "tcvideo 0." in text and REPO in text  # the install cell found this checkout, installed nothing
    if name == "quickstart.ipynb":
        assert "moving left" in text and " 1. " in text
        assert _images(nb) >= 2  # frames and scores
        assert os.path.exists(tmp_path / "work_dir" / "model" / "model.json")
    elif name == "train_demo.ipynb":
        assert "final top-1 on held-out videos" in text
        assert os.path.exists(tmp_path / "workdir" / "train_log.jsonl")
        assert "'final/top1': 1" in text and "'train/loss': 10" in text  # 100 steps logged every 10, read back
        assert _images(nb) >= 1
    elif name == "online_detection.ipynb":
        assert "per-frame mAP on held-out synthetic videos" in text
        assert "streamed 160 frames at" in text and "frames/s" in text
        assert "'background', 'swimming', 'dancing'" in text  # the swapped vocabulary
        assert _images(nb) >= 1 and os.path.exists(tmp_path / "workdir" / "checkpoints")
    elif name == "context_tokens.ipynb":
        out = tmp_path / "out_dir"
        assert (out / "overview.png").exists() and (out / "context_tokens.gif").exists()
        assert "context tokens" in text and _images(nb) >= 3
