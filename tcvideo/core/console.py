"""What a person sees: tcvideo's own lines on stdout, library logs in the workdir's log file.

* ``configure(verbosity)``: absl's ``--verbosity`` / ``-v`` convention (-1 = warnings, the default;
  0 = info; 1 = debug). Quiet: library records (orbax, absl, TF, jax) below WARNING reach only the log
  file, and a record that carries a traceback shows one line on screen. ``-v``: everything on screen too.
* ``attach_workdir(workdir)``: the log file ``workdir/log.txt`` (INFO and above, with tracebacks);
  records from before the workdir was known are kept in memory and written to it then.
* ``say(...)``: one line of tcvideo's own, on stdout of process 0.
* ``Progress``: one bar per long phase; a redrawn line on a terminal, plain periodic lines otherwise.
* ``parameter_summary``: the full table to ``workdir/parameters.txt``, one line of counts on screen.
* ``plot_curves``: loss and evaluation curves from ``train_log.jsonl`` files -> a PNG.
"""
from __future__ import annotations

import json
import logging
import logging.handlers
import math
import os
import sys
import time
from typing import Iterable, Iterator, Mapping, Optional, Sequence, TextIO

LOG_FILE = "log.txt"
PARAMS_FILE = "parameters.txt"
CURVES_FILE = "curves.png"

_state = {"verbosity": -1, "buffer": None, "file": None, "screen_level": logging.WARNING}


def asked_verbose(argv: Sequence[str]) -> bool:
    """Whether a command line asks for library logs (absl's ``-v`` / ``--verbosity``), before flags are parsed."""
    return any(a == "-v" or a.startswith(("-v=", "--verbosity", "-v0", "-v1", "-v2")) for a in argv)


def normalize_argv(argv: Sequence[str]) -> list[str]:
    """A bare ``-v`` means absl's ``--verbosity=0`` (INFO); ``-v N`` / ``--verbosity=N`` stay as absl reads them."""
    return ["--verbosity=0" if a == "-v" else a for a in argv]


def verbose() -> bool:
    return _state["verbosity"] >= 0


def is_main_process() -> bool:
    """Process 0 of a multi-host run prints; jax is only asked when it is already imported."""
    jax = sys.modules.get("jax")
    if jax is None:
        return True
    try:
        return jax.process_index() == 0
    except Exception:  # noqa: BLE001 - before the backend is up every process may print
        return True


def say(*parts, file: Optional[TextIO] = None) -> None:
    """One line of tcvideo's own (stdout, process 0 only)."""
    if is_main_process():
        print(*parts, file=file or sys.stdout, flush=True)


class _OneLine(logging.Formatter):
    """The first line of a record, without its traceback (that stays in the log file)."""

    def __init__(self, inner: Optional[logging.Formatter]):
        super().__init__()
        self.inner = inner or logging.Formatter("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        plain = logging.makeLogRecord(record.__dict__)
        long = bool(plain.exc_info or plain.exc_text or plain.stack_info)
        plain.exc_info, plain.exc_text, plain.stack_info = None, None, None
        text = self.inner.format(plain)
        first, _, rest = text.partition("\n")
        if long or rest:
            where = f" ({_state['file']})" if _state["file"] else ""
            first += f"  [full text in the log file{where}; -v shows it]"
        return first


def _screen_handlers() -> list[logging.Handler]:
    """Root handlers that write to the terminal: absl's and plain ``logging.StreamHandler`` s. Subclasses
    (file handlers, pytest's caplog handler) are left as they are."""
    root = logging.getLogger()
    from absl import logging as absl_logging
    absl_handler = absl_logging.get_absl_handler()
    return [h for h in root.handlers if h is absl_handler or type(h) is logging.StreamHandler]


def configure(verbosity: int = -1) -> None:
    """Set what reaches the screen (see module docstring). Safe to call again (in-process reruns)."""
    from absl import logging as absl_logging

    _state["verbosity"] = int(verbosity)
    # Records are created at INFO (DEBUG with -v 1) so that the log file gets them; handlers filter.
    absl_logging.set_verbosity(absl_logging.DEBUG if verbosity >= 1 else absl_logging.INFO)
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbosity >= 1 else logging.INFO)
    level = logging.NOTSET if verbose() else logging.WARNING
    absl_handler = absl_logging.get_absl_handler()
    screens = _screen_handlers()
    if absl_handler not in root.handlers:
        screens.append(absl_handler)
    for h in screens:
        h.setLevel(level)
        inner = getattr(h, "_tcvideo_inner", None)
        if inner is None:
            # absl's handler keeps its formatter on the handler it delegates to
            fmt = getattr(h, "_current_handler", h).formatter
            inner = fmt.inner if isinstance(fmt, _OneLine) else fmt
            h._tcvideo_inner = inner
        h.setFormatter(inner if verbose() else _OneLine(inner))
    for name in ("absl", "orbax", "jax", "tensorflow", "tensorstore", "asyncio", "etils", "clu"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    if _state["buffer"] is None and _state["file"] is None:
        buf = logging.handlers.MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1)
        buf.setLevel(logging.DEBUG)
        root.addHandler(buf)
        _state["buffer"] = buf


def attach_workdir(workdir: str) -> str:
    """Write the log (held records first) to ``workdir/log.txt`` from now on; -> its path."""
    path = os.path.join(workdir, LOG_FILE)
    root = logging.getLogger()
    if _state["file"] == path:
        return path
    for h in list(root.handlers):
        if isinstance(h, logging.FileHandler) and getattr(h, "_tcvideo", False):
            root.removeHandler(h)
            h.close()
    os.makedirs(workdir, exist_ok=True)
    fh = logging.FileHandler(path, mode="a", encoding="utf-8")
    fh._tcvideo = True
    fh.setLevel(logging.DEBUG)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(filename)s:%(lineno)d] %(message)s"))
    buf = _state["buffer"]
    if buf is not None:
        buf.setTarget(fh)
        buf.flush()
        root.removeHandler(buf)
        buf.close()
        _state["buffer"] = None
    root.addHandler(fh)
    _state["file"] = path
    return path


def log_file() -> Optional[str]:
    return _state["file"]


def report_exception(exc: BaseException, what: str = "error") -> None:
    """One line on stderr naming the exception; its traceback goes to the log file only (to the screen
    as well with -v)."""
    import traceback
    rec = logging.LogRecord("tcvideo", logging.ERROR, __file__, 0, "%s: %s", (what, exc),
                            (type(exc), exc, exc.__traceback__))
    for h in logging.getLogger().handlers:
        if isinstance(h, (logging.FileHandler, logging.handlers.MemoryHandler)):
            h.handle(rec)
            h.flush()
    if verbose():
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        return
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    where = f"; traceback in {_state['file']}" if _state["file"] else ""
    print(f"{what}: {type(exc).__name__}: {msg}{where} (-v shows it)", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- progress

def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """One bar for one long phase. ``update(n, **postfix)`` sets the position (absolute), ``close()``.

    On a terminal the line is redrawn (at most ``refresh_s`` apart); elsewhere (CI logs, pipes) a plain
    line is printed at every ``quarters``-th of the way and at least every ``every_s`` seconds, and one at
    the end. Rate and ETA count from the first update (compilation and resume are not in the rate), and
    the end line gives the phase's whole wall time.
    """

    def __init__(self, desc: str, total: Optional[int] = None, *, unit: str = "it", start: int = 0,
                 stream: Optional[TextIO] = None, tty: Optional[bool] = None, every_s: float = 60.0,
                 quarters: int = 4, refresh_s: float = 0.2, enabled: Optional[bool] = None):
        self.desc, self.total, self.unit = desc, total, unit
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.enabled = is_main_process() if enabled is None else enabled
        self.every_s, self.quarters, self.refresh_s = every_s, quarters, refresh_s
        self.n = self._n0 = start
        self.postfix: dict = {}
        self._t_start = time.time()
        self._t0: Optional[float] = None  # time of the first update: the rate's origin
        self._last_print = self._t_start
        self._next_mark = 1
        self._closed = False
        self._drawn = 0

    def rate(self) -> float:
        if self._t0 is None:
            return float("nan")
        dt = time.time() - self._t0
        return (self.n - self._n0) / dt if dt > 0 and self.n > self._n0 else float("nan")

    def line(self) -> str:
        rate = self.rate()
        if self.total:
            pct = 100.0 * self.n / self.total
            head = f"{self.desc}: {self.n}/{self.total} {self.unit} ({pct:3.0f}%)"
            if self.tty:
                w = 20
                fill = int(w * self.n / self.total)
                head = f"{self.desc}: |{'#' * fill}{'.' * (w - fill)}| {self.n}/{self.total} {self.unit}"
        elif self.n or self.unit:
            head = f"{self.desc}: {self.n} {self.unit}"
        else:
            head = self.desc
        bits = [head]
        bits += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.postfix.items()]
        if math.isfinite(rate):
            bits.append(f"{rate:.3g} {self.unit}/s")
            if self.total and not self._closed:
                bits.append(f"ETA {_fmt_time((self.total - self.n) / rate)}")
        if self._closed:
            bits.append(f"{_fmt_time(time.time() - self._t_start)} in all")
        return "  ".join(bits)

    def _emit(self, final: bool = False) -> None:
        if not self.enabled:
            return
        text = self.line()
        if self.tty:
            pad = max(0, self._drawn - len(text))
            self.stream.write("\r" + text + " " * pad + ("\n" if final else ""))
            self._drawn = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._last_print = time.time()

    def set_postfix(self, **kw) -> None:
        self.postfix.update(kw)

    def update(self, n: Optional[int] = None, **postfix) -> None:
        """Move to position ``n`` (absolute; None: one further)."""
        self.n = self.n + 1 if n is None else int(n)
        if self._t0 is None:  # the rate counts from the first update: compilation is not in it
            self._t0, self._n0 = time.time(), self.n
        self.postfix.update(postfix)
        now = time.time()
        if self.tty:
            if now - self._last_print >= self.refresh_s:
                self._emit()
            return
        mark = self.total and self.quarters and self.n * self.quarters >= self._next_mark * self.total
        if self.total and self.n >= self.total:
            return  # the end line comes from close()
        if mark or now - self._last_print >= self.every_s:
            while self.total and self.n * self.quarters >= self._next_mark * self.total:
                self._next_mark += 1
            self._emit()

    def close(self, **postfix) -> None:
        if self._closed:
            return
        self.postfix.update(postfix)
        self._closed = True
        self._emit(final=True)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(items: Iterable, desc: str, total: Optional[int] = None, unit: str = "it", **kw) -> Iterator:
    """``for x in progress(items, 'extract-features', unit='video')``: a ``Progress`` over an iterable."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    bar = Progress(desc, total, unit=unit, **kw)
    try:
        for i, x in enumerate(items):
            yield x
            bar.update(i + 1)
    finally:
        bar.close()


# ----------------------------------------------------------------------------- parameters

def _leaves(tree, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(path 'a/b/c', leaf) of a nested mapping of arrays."""
    if hasattr(tree, "items"):
        for k, v in tree.items():
            yield from _leaves(v, f"{prefix}/{k}" if prefix else str(k))
    else:
        yield prefix, tree


def _size(x) -> int:
    return int(math.prod(getattr(x, "shape", ())))


def parameter_counts(params: Mapping) -> dict[str, int]:
    """{top-level group: number of values} of a params tree."""
    return {str(k): sum(_size(x) for _, x in _leaves(v)) for k, v in params.items()}


def parameter_table(params: Mapping) -> str:
    """One row per parameter: path, shape, dtype, size; and the total."""
    rows = [(p, str(tuple(getattr(x, "shape", ()))), str(getattr(x, "dtype", "")), _size(x)) for p, x in _leaves(params)]
    w = max([len("name")] + [len(r[0]) for r in rows])
    lines = [f"{'name':<{w}}  {'shape':<20} {'dtype':<9} {'size':>12}"]
    lines += [f"{p:<{w}}  {sh:<20} {dt:<9} {n:>12,}" for p, sh, dt, n in rows]
    lines.append(f"{'total':<{w}}  {'':<20} {'':<9} {sum(r[3] for r in rows):>12,}")
    return "\n".join(lines)


def _human(n: int) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.3g}{suffix}"
    return str(n)


def parameter_summary(params: Mapping, workdir: Optional[str]) -> str:
    """Writes the full table to ``workdir/parameters.txt``; -> the one screen line of counts."""
    counts = parameter_counts(params)
    total = sum(counts.values())
    where = ""
    if workdir:
        path = os.path.join(workdir, PARAMS_FILE)
        with open(path, "w", encoding="utf-8") as f:
            f.write(parameter_table(params) + "\n")
        where = f"  (table: {path})"
    groups = ", ".join(f"{k} {_human(v)}" for k, v in counts.items())
    return f"parameters: {_human(total)} ({total:,}): {groups}{where}"


# ----------------------------------------------------------------------------- curves

def read_train_log(path: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """train_log.jsonl -> ([(step, train loss)], [(step, eval primary)])."""
    loss, ev = [], []
    if not os.path.exists(path):
        return loss, ev
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if "train/loss" in r:
                loss.append((int(r["step"]), float(r["train/loss"])))
            if "eval/primary" in r:
                ev.append((int(r["step"]), float(r["eval/primary"])))
    return loss, ev


def plot_curves(runs: Mapping[str, str], out_path: str, final: Optional[Mapping[str, tuple[int, float]]] = None,
                eval_label: str = "evaluation (primary metric)") -> str:
    """Training loss and evaluation curves of ``runs`` ({label: train_log.jsonl path}) -> PNG at ``out_path``.

    ``final``: {label: (step, value)} of the final evaluation, drawn as a marker on the evaluation panel."""
    # A bare Figure renders PNG through Agg by itself; matplotlib.use("Agg") would switch a notebook's
    # inline backend off for the rest of the session.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), dpi=100)
    ax_loss, ax_eval = fig.subplots(1, 2)
    for label, path in runs.items():
        loss, ev = read_train_log(path)
        if loss:
            ax_loss.plot(*zip(*loss), label=label)
        pts = list(ev) + ([final[label]] if final and label in final else [])
        if pts:
            ax_eval.plot(*zip(*sorted(pts)), marker="o", label=label)
    ax_loss.set(title="training loss", xlabel="step", ylabel="loss")
    ax_eval.set(title=eval_label, xlabel="step", ylabel="top-1 %")
    for ax in (ax_loss, ax_eval):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(out_path)
    return out_path


# ----------------------------------------------------------------------------- summary

def workdir_summary(workdir: str, runs: Sequence[str] = (".",)) -> list[str]:
    """Lines naming where a run's outputs are (or those of each run of a comparison), and the TensorBoard command."""
    lines = [f"workdir:      {workdir}"]
    if list(runs) == ["."]:
        lines.append(f"checkpoints:  {os.path.join(workdir, 'checkpoints')}  (best by evaluation: "
                     f"{os.path.join(workdir, 'best')})")
        lines.append(f"results:      {os.path.join(workdir, 'eval_results.json')}")
        lines.append(f"log:          {os.path.join(workdir, LOG_FILE)}   parameters: {PARAMS_FILE}")
    else:
        for r in runs:
            lines.append(f"{r + '/':<14}checkpoints/, best/, eval_results.json, {LOG_FILE}, {PARAMS_FILE}, {CURVES_FILE}")
        lines.append(f"results:      {os.path.join(workdir, 'eval_results.json')}  (all runs)")
    curves = os.path.join(workdir, CURVES_FILE)
    if os.path.exists(curves):
        lines.append(f"curves:       {curves}")
    lines.append(f"TensorBoard:  tensorboard --logdir {workdir}")
    return lines


def _model_desc(config) -> str:
    """The model's name fields of a config (its string-valued top-level ``model`` fields), e.g.
    'family tc_clip, variant tc_clip, clip tiny'."""
    model = config.get("model")
    if model is None or not hasattr(model, "items"):
        return "-"
    parts = [f"{k} {v}" for k, v in model.items() if isinstance(v, str) and v]
    return ", ".join(parts) or "-"


def describe_run(setup, training: bool = True) -> list[str]:
    """What runs: task, model, devices, data, steps (two lines)."""
    import jax
    c = setup.config
    devices = setup.mesh.devices.size
    kind = jax.devices()[0].platform
    data = c.get("data")
    data_name = data.get("name", "?") if data is not None and hasattr(data, "get") else "?"
    lines = [f"{c.name}: task {c.task}; model {_model_desc(c)}; {devices} {kind} device(s), "
             f"process {jax.process_index()} of {jax.process_count()}"]
    if training:
        lines.append(f"data: {data_name}, {setup.task.num_train_examples} training examples; {setup.total_steps} steps "
                     f"({setup.steps_per_epoch}/epoch), batch {c.batch_size} in {setup.accum} micro-batch(es), "
                     f"evaluation every {setup.eval_every} steps")
    else:
        lines.append(f"data: {data_name}; evaluation batch {c.eval.batch_size}")
    return lines


def finish_run(name: str, workdir: str, out: dict, step: int, summary: bool = True) -> None:
    """After a run's final evaluation: its curves PNG and (``summary``) where its outputs are."""
    log = os.path.join(workdir, "train_log.jsonl")
    primary = (out.get("fine_tuned") or {}).get("primary")
    try:
        plot_curves({name: log}, os.path.join(workdir, CURVES_FILE),
                    final={name: (step, float(primary))} if primary is not None else None)
    except Exception as e:  # noqa: BLE001 - a missing picture must not lose the results
        report_exception(e, "curves not drawn")
    if summary:
        for line in workdir_summary(workdir):
            say(line)
