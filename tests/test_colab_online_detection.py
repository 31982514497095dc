"""colab/online_detection.ipynb runs headless (nbclient): trains a tiny OV-OAD, streams a video and plots.

WORKDIR goes to the test's tmp dir and training gets a budget of a few steps (a cell inserted after the
notebook's 'parameters' cell, the way papermill parameterises notebooks)."""
import os

import nbformat
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(REPO, "colab", "online_detection.ipynb")


def test_online_detection_notebook(tmp_path):
    nb = nbformat.read(PATH, as_version=4)
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1
    nb.cells.insert(params[0] + 1, nbformat.v4.new_code_cell(
        f"WORKDIR = {str(tmp_path / 'workdir')!r}\nTRAIN_STEPS = 4\nVIDEO_FRAMES = 40"))
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute(env=env)
    outs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outs if o.get("output_type") == "error"]
    text = "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outs)
    assert "tcvideo" in text and REPO in text  # this checkout's tcvideo, nothing installed
    assert "per-frame mAP on held-out synthetic videos" in text
    assert "streamed 40 frames at" in text and "frames/s" in text
    assert "'background', 'swimming', 'dancing'" in text
    assert sum("image/png" in o.get("data", {}) for o in outs) >= 1
    assert os.path.exists(tmp_path / "workdir" / "checkpoints")
