"""``tcvideo`` console script: ``tcvideo train|eval|convert|predict ...``.

  tcvideo train --config=configs/demo.py --workdir=/tmp/demo [--config.field=value ...] [-v]
  tcvideo eval  --config=configs/tc_clip/zero_shot_k400.py --workdir=DIR [...]
  tcvideo convert SOURCE ...        (same as python -m tcvideo.convert)
  tcvideo predict VIDEO... --checkpoint DIR (--classes "a,b" | --classes-file F) [--top-k 5] [--json]
  tcvideo visualize VIDEO --checkpoint DIR --out DIR [--layer L]   (context tokens, CLS attention)
  tcvideo extract-features --clip=... --videos=... --out=...   (OV-OAD frame features, tcvideo/clip/extract.py)

Quiet by default: tcvideo's own lines, progress bars and a final summary; library logs (orbax, absl, TF) at
warning level and above. -v / --verbosity=0 shows their INFO logs and full tracebacks (train, eval: they
are always in WORKDIR/log.txt).
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

USAGE = __doc__


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    from tcvideo.core.console import asked_verbose, normalize_argv
    if not asked_verbose(rest):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TF's C++ INFO lines, printed at import
    if cmd in ("train", "eval"):
        from absl import app
        from tcvideo import main as launcher
        app.run(launcher.main, argv=normalize_argv([f"tcvideo {cmd}", f"--mode={cmd}", *rest]))
        return 0
    if cmd == "convert":
        from tcvideo import convert as convert_cli
        return convert_cli.main(rest) or 0
    if cmd == "extract-features":
        from tcvideo.clip import extract as oad_extract
        return oad_extract.main(rest) or 0
    if cmd == "predict":
        from tcvideo.classification import predict
        return predict.main(rest)
    if cmd == "visualize":
        from tcvideo.tc_clip import visualize
        return visualize.main(rest)
    print(f"tcvideo: unknown command {cmd!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
