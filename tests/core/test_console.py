"""tcvideo.core.console: progress lines off a terminal, library logs to the log file (screen only with -v),
one-line tracebacks, the parameter summary and the curves PNG. Each test takes well under a second."""
import io
import json
import logging

import numpy as np
import pytest

from tcvideo.core import console


@pytest.fixture
def screen(tmp_path):
    """A terminal handler on the root logger, read back; console state and handlers restored afterwards."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    saved = dict(console._state)
    stream = io.StringIO()
    h = logging.StreamHandler(stream)  # a plain stream handler: what console.configure treats as the terminal
    h.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(h)
    yield stream
    for x in list(root.handlers):
        if x not in before:
            root.removeHandler(x)
            x.close()
    root.setLevel(level)
    for x in before:
        x.setLevel(logging.NOTSET)
        inner = getattr(x, "_tcvideo_inner", None)
        if inner is not None:
            x.setFormatter(inner)
    console._state.clear()
    console._state.update(saved)


def test_progress_off_a_terminal_prints_plain_quarter_lines():
    out = io.StringIO()
    bar = console.Progress("training", 100, unit="steps", stream=out, enabled=True, every_s=1e9)
    for i in range(1, 101):
        bar.update(i, loss=1.0 / i)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()  # no terminal redraws in a CI log
    assert len(lines) == 4  # 25%, 50%, 75% and the end line
    assert lines[-1].startswith("training: 100/100 steps (100%)")
    assert "ETA" in lines[0]
    assert "loss 0.01" in lines[-1]


def test_progress_on_a_terminal_redraws_one_line():
    out = io.StringIO()
    bar = console.Progress("eval", 10, unit="batches", stream=out, tty=True, enabled=True, refresh_s=0.0)
    for i in range(1, 11):
        bar.update(i)
    bar.close()
    text = out.getvalue()
    assert text.count("\n") == 1  # one line, redrawn, ended once
    assert text.count("\r") == 11  # ten updates and the close
    assert "10/10 batches" in text.splitlines()[-1].split("\r")[-1]


def test_library_info_goes_to_the_log_file_only(screen, tmp_path):
    console.configure(-1)
    path = console.attach_workdir(str(tmp_path))
    lib = logging.getLogger("orbax.checkpoint.fake")
    lib.info("CheckpointManagerOptions(...) chatter")
    lib.warning("a real warning")
    for h in logging.getLogger().handlers:
        h.flush()
    shown = screen.getvalue()
    assert "chatter" not in shown
    assert "a real warning" in shown
    assert "chatter" in open(path).read()


def test_records_before_the_workdir_reach_the_log_file(screen, tmp_path):
    console.configure(-1)
    logging.getLogger("absl").info("said before the workdir existed")
    path = console.attach_workdir(str(tmp_path / "wd"))
    assert "said before the workdir existed" in open(path).read()


def test_verbose_shows_library_info(screen, tmp_path):
    console.configure(0)  # -v
    console.attach_workdir(str(tmp_path))
    logging.getLogger("orbax.checkpoint.fake").info("CheckpointManagerOptions(...) chatter")
    assert "chatter" in screen.getvalue()


def test_a_library_traceback_is_one_line_on_screen(screen, tmp_path):
    console.configure(-1)
    path = console.attach_workdir(str(tmp_path))
    try:
        raise RuntimeError("ZSTD_decompressStream() failed\nsecond line")
    except RuntimeError:
        logging.getLogger("tensorstore.fake").error("restore failed", exc_info=True)
    for h in logging.getLogger().handlers:
        h.flush()
    shown = screen.getvalue().strip().splitlines()
    assert len(shown) == 1, shown
    assert "restore failed" in shown[0]
    assert "Traceback (most recent call last)" in open(path).read()


def test_report_exception_one_line_and_traceback_in_file(screen, tmp_path, capsys):
    console.configure(-1)
    path = console.attach_workdir(str(tmp_path))
    try:
        raise OSError(28, "No space left on device")
    except OSError as e:
        console.report_exception(e)
    assert screen.getvalue() == ""  # not logged to the terminal as well
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: OSError:")
    assert "Traceback" in open(path).read()


def test_parameter_summary_counts_groups_and_writes_the_table(tmp_path):
    params = {"visual": {"w": np.zeros((2, 3)), "b": np.zeros(3)}, "text": {"w": np.zeros((4, 5))},
              "logit_scale": np.zeros(())}
    assert console.parameter_counts(params) == {"visual": 9, "text": 20, "logit_scale": 1}
    line = console.parameter_summary(params, str(tmp_path))
    assert "(30)" in line
    assert "visual 9" in line
    table = open(tmp_path / console.PARAMS_FILE).read().splitlines()
    assert any(l.startswith("visual/w ") and "(2, 3)" in l for l in table), table
    assert table[-1].split()[-1] == "30"


def test_curves_png_opens_with_pil(tmp_path):
    from PIL import Image
    log = tmp_path / "train_log.jsonl"
    with open(log, "w") as f:
        for s in range(10, 110, 10):
            f.write(json.dumps({"step": s, "train/loss": 1.0 / s}) + "\n")
            if s % 50 == 0:
                f.write(json.dumps({"step": s, "eval/primary": float(s)}) + "\n")
    assert console.read_train_log(str(log))[1] == [(50, 50.0), (100, 100.0)]
    out = console.plot_curves({"run": str(log)}, str(tmp_path / "curves.png"), final={"run": (100, 90.0)})
    with Image.open(out) as im:
        assert im.size == (1000, 360)


def test_capture_handlers_are_left_alone(screen, caplog):
    """A handler that is not the terminal (pytest's caplog here) keeps its level."""
    caplog.set_level(logging.INFO)
    console.configure(-1)
    logging.getLogger("orbax.checkpoint.fake").info("kept by the capture handler")
    assert "kept by the capture handler" in caplog.text


def test_bare_v_is_absl_verbosity_zero():
    assert console.normalize_argv(["prog", "-v", "--workdir=x"]) == ["prog", "--verbosity=0", "--workdir=x"]
    assert console.asked_verbose(["prog", "-v"])
    assert not console.asked_verbose(["prog", "--workdir=x"])
