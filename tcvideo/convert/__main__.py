"""``python -m tcvideo.convert SOURCE ...`` (see tcvideo.convert.cli)."""
import sys

from tcvideo.convert import cli

if __name__ == "__main__":
    sys.exit(cli.main())
