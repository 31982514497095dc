"""OpenAI CLIP text tokenizer (byte-level BPE), NumPy only.

Produces the same ids as ``clip.tokenize`` from OpenAI CLIP. The merges table
``bpe_simple_vocab_16e6.txt.gz`` is OpenAI's (MIT, see ``LICENSE_openai_clip.txt``)
and is loaded with :mod:`importlib.resources`, so it works from an installed package.

Example::

    from tcvideo.clip.tokenizer import tokenize
    ids = tokenize(["a photo of a dog.", "a video of a cat."])  # int32 [2, 77]
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from tcvideo.clip.tokenizer.bpe import BPE_FILENAME, EOT_TEXT, SOT_TEXT, Tokenizer, bytes_to_unicode, clean_text, default_bpe_path

__all__ = [
    "BPE_FILENAME",
    "EOT_TEXT",
    "SOT_TEXT",
    "Tokenizer",
    "bytes_to_unicode",
    "clean_text",
    "default_bpe_path",
    "get_tokenizer",
    "tokenize",
]


@functools.lru_cache(maxsize=1)
def get_tokenizer() -> Tokenizer:
    """The shared :class:`Tokenizer` built from the packaged merges file (created once)."""
    return Tokenizer()


def tokenize(
    texts: str | Sequence[str], context_length: int = 77, truncate: bool = False
) -> np.ndarray:
    """``get_tokenizer().tokenize(texts, context_length, truncate)``: int32 ``[n, context_length]``."""
    return get_tokenizer().tokenize(texts, context_length=context_length, truncate=truncate)
