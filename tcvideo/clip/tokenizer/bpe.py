"""Byte-level BPE tokenizer that reproduces OpenAI CLIP's text tokenizer exactly.

The behaviour matches ``clip/simple_tokenizer.py`` of OpenAI CLIP (MIT licence,
see ``LICENSE_openai_clip.txt``); the code here is an independent implementation.

Pipeline of :meth:`Tokenizer.encode`:

1. clean: ``ftfy.fix_text``, then ``html.unescape`` applied twice, then strip;
2. collapse every run of whitespace (``regex`` ``\\s+``) to one space, strip,
   lower-case (``str.lower``);
3. split into pieces with CLIP's pattern (the two special tokens, the
   contractions ``'s 't 're 've 'm 'll 'd``, letter runs, single digits, runs of
   anything else that is not whitespace);
4. map the UTF-8 bytes of each piece to printable unicode characters
   (GPT-2's reversible byte table), mark the last one with ``</w>`` and apply
   the BPE merges in rank order.

The vocabulary has 49408 entries: the 256 byte characters, the same 256 with
``</w>``, the 48894 merged symbols (merges lines ``1 .. 48894`` of the data
file) and ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407).
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.resources
import io
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import ftfy
import numpy as np
import regex

if TYPE_CHECKING:  # pragma: no cover
    from importlib.resources.abc import Traversable

__all__ = [
    "BPE_FILENAME",
    "END_OF_WORD",
    "SOT_TEXT",
    "EOT_TEXT",
    "NUM_MERGES",
    "Tokenizer",
    "bytes_to_unicode",
    "basic_clean",
    "whitespace_clean",
    "clean_text",
    "load_merges",
    "default_bpe_path",
]

BPE_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
END_OF_WORD = "</w>"
SOT_TEXT = "<|startoftext|>"
EOT_TEXT = "<|endoftext|>"
# CLIP keeps 49152 - 256 - 2 merges of the file (lines 1..48894; line 0 is a header).
NUM_MERGES = 49152 - 256 - 2

# CLIP's pre-tokenisation pattern; compiled with IGNORECASE as in the reference.
_PIECE_PATTERN = regex.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d"
    r"|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
    regex.IGNORECASE,
)
_WHITESPACE_RUN = regex.compile(r"\s+")


@functools.lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """Return GPT-2's reversible map from each byte value to a printable character.

    Bytes that are already visible Latin-1 characters (``!``..``~``, ``¡``..``¬``,
    ``®``..``ÿ``) map to themselves; the remaining 68 bytes (controls, space,
    soft hyphen, ...) map, in increasing byte order, to ``chr(256)``, ``chr(257)``, ...
    The dict's iteration order (visible bytes first, then the others) fixes the
    ids of the first 512 vocabulary entries.
    """
    visible = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    visible_set = set(visible)
    mapping: dict[int, str] = {b: chr(b) for b in visible}
    extra = 0
    for b in range(256):
        if b not in visible_set:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def basic_clean(text: str) -> str:
    """Fix mojibake/unicode with ``ftfy``, undo (double) HTML escaping, strip the ends."""
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text: str) -> str:
    """Collapse every whitespace run to one space and strip the ends."""
    return _WHITESPACE_RUN.sub(" ", text).strip()


def clean_text(text: str) -> str:
    """Full CLIP text normalisation applied before pre-tokenisation (includes lower-casing)."""
    return whitespace_clean(basic_clean(text)).lower()


def default_bpe_path() -> Traversable:
    """The merges file packaged with :mod:`tcvideo.clip.tokenizer`, located via importlib.resources."""
    return importlib.resources.files("tcvideo.clip.tokenizer").joinpath(BPE_FILENAME)


def load_merges(bpe_path: str | None = None) -> list[tuple[str, str]]:
    """Read the merges table and return CLIP's ``NUM_MERGES`` merges as pairs.

    Args:
        bpe_path: path of a merges file, gzip-compressed when it ends in ``.gz``;
            ``None`` reads the packaged ``bpe_simple_vocab_16e6.txt.gz``.
    """
    if bpe_path is None:
        raw = default_bpe_path().read_bytes()
        data = gzip.decompress(raw)
    else:
        path = str(bpe_path)
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            with io.open(path, "rb") as f:
                data = f.read()
    lines = data.decode("utf-8").split("\n")
    selected = lines[1 : NUM_MERGES + 1]
    if len(selected) != NUM_MERGES:
        raise ValueError(
            f"merges file {bpe_path or BPE_FILENAME!r} has {len(selected)} merges after its header, "
            f"expected at least {NUM_MERGES}"
        )
    merges: list[tuple[str, str]] = []
    for lineno, line in enumerate(selected, start=2):
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"malformed merge on line {lineno} of {bpe_path or BPE_FILENAME!r}: {line!r}")
        merges.append((parts[0], parts[1]))
    return merges


class Tokenizer:
    """OpenAI CLIP byte-level BPE tokenizer (ids identical to ``clip.tokenize``).

    Args:
        bpe_path: merges file to use; ``None`` (default) uses the packaged
            ``bpe_simple_vocab_16e6.txt.gz``.
        cache_size: number of distinct words whose BPE result is memoised
            (``functools.lru_cache``); ``None`` means unbounded.
    """

    sot_token: int
    eot_token: int
    vocab_size: int

    def __init__(self, bpe_path: str | None = None, cache_size: int | None = 2**18):
        self._byte_encoder: dict[int, str] = bytes_to_unicode()
        self._byte_decoder: dict[str, int] = {c: b for b, c in self._byte_encoder.items()}
        merges = load_merges(bpe_path)
        byte_symbols = list(self._byte_encoder.values())
        vocab: list[str] = [*byte_symbols, *(s + END_OF_WORD for s in byte_symbols)]
        vocab.extend(a + b for a, b in merges)
        vocab.extend([SOT_TEXT, EOT_TEXT])
        self.encoder: dict[str, int] = {}
        for i, symbol in enumerate(vocab):
            # Later duplicates would overwrite earlier ones in the reference dict; keep that.
            self.encoder[symbol] = i
        self.decoder: dict[int, str] = {i: s for s, i in self.encoder.items()}
        self.bpe_ranks: dict[tuple[str, str], int] = {pair: r for r, pair in enumerate(merges)}
        self.sot_token = self.encoder[SOT_TEXT]
        self.eot_token = self.encoder[EOT_TEXT]
        self.vocab_size = len(vocab)
        self._special: dict[str, tuple[int, ...]] = {
            SOT_TEXT: (self.sot_token,),
            EOT_TEXT: (self.eot_token,),
        }
        self._bpe_cached = functools.lru_cache(maxsize=cache_size)(self._bpe_ids)

    # ------------------------------------------------------------------ BPE
    def _merge_word(self, symbols: list[str]) -> list[str]:
        """Repeatedly merge the lowest-ranked adjacent pair (all its non-overlapping occurrences)."""
        ranks = self.bpe_ranks
        while len(symbols) > 1:
            best_pair: tuple[str, str] | None = None
            best_rank = len(ranks)
            for pair in zip(symbols, symbols[1:]):
                rank = ranks.get(pair)
                if rank is not None and rank < best_rank:
                    best_rank = rank
                    best_pair = pair
            if best_pair is None:
                break
            first, second = best_pair
            merged: list[str] = []
            i, n = 0, len(symbols)
            while i < n:
                if i + 1 < n and symbols[i] == first and symbols[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def bpe(self, piece: str) -> list[str]:
        """BPE symbols of one byte-encoded piece (the last symbol carries ``</w>``)."""
        if piece in self._special:
            return [piece]
        return self._merge_word([*piece[:-1], piece[-1] + END_OF_WORD])

    def _bpe_ids(self, piece: str) -> tuple[int, ...]:
        special = self._special.get(piece)
        if special is not None:
            return special
        return tuple(self.encoder[s] for s in self.bpe(piece))

    # ------------------------------------------------------------ public API
    def encode(self, text: str) -> list[int]:
        """BPE ids of the cleaned, lower-cased ``text`` (no start/end tokens).

        As in CLIP, the literal strings ``<|startoftext|>`` / ``<|endoftext|>``
        (in any case) inside ``text`` become the special ids.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects str, got {type(text).__name__}")
        byte_encoder = self._byte_encoder
        ids: list[int] = []
        for piece in _PIECE_PATTERN.findall(clean_text(text)):
            encoded = "".join(byte_encoder[b] for b in piece.encode("utf-8"))
            ids.extend(self._bpe_cached(encoded))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids; each ``</w>`` becomes a space (as CLIP; special/pad ids are not dropped).

        Invalid UTF-8 byte sequences are replaced with U+FFFD.
        """
        try:
            symbols = "".join(self.decoder[int(i)] for i in np.asarray(ids).reshape(-1).tolist())
        except KeyError as err:
            raise ValueError(f"token id {err.args[0]} is outside the vocabulary of {self.vocab_size}") from None
        raw = bytearray(self._byte_decoder[c] for c in symbols)
        return raw.decode("utf-8", errors="replace").replace(END_OF_WORD, " ")

    def tokenize(
        self,
        texts: str | Sequence[str],
        context_length: int = 77,
        truncate: bool = False,
    ) -> np.ndarray:
        """Encode texts as CLIP model input: ``int32 [n, context_length]``.

        Each row is ``sot + encode(text) + eot`` followed by zeros.

        Args:
            texts: one string or a sequence of strings.
            context_length: row length (CLIP uses 77).
            truncate: if a text needs more than ``context_length`` tokens, keep
                its first ``context_length`` tokens and make the last one ``eot``
                (as ``clip.tokenize(..., truncate=True)``); otherwise raise.

        Raises:
            ValueError: a text is too long and ``truncate`` is False, or
                ``context_length`` is not positive.
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if isinstance(context_length, bool) or int(context_length) != context_length or context_length < 1:
            raise ValueError(f"context_length must be a positive integer, got {context_length!r}")
        context_length = int(context_length)
        out = np.zeros((len(texts), context_length), dtype=np.int32)
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"tokenize expects str texts, got {type(text).__name__} at index {row}")
            tokens = [self.sot_token, *self.encode(text), self.eot_token]
            if len(tokens) > context_length:
                if not truncate:
                    shown = text if len(text) <= 60 else text[:60] + "..."
                    raise ValueError(
                        f"Input text {shown!r} needs {len(tokens)} tokens (including start/end tokens), "
                        f"more than context_length={context_length}; shorten it, raise context_length "
                        f"or pass truncate=True."
                    )
                tokens = tokens[:context_length]
                tokens[-1] = self.eot_token
            out[row, : len(tokens)] = tokens
        return out

    def __call__(
        self, texts: str | Sequence[str], context_length: int = 77, truncate: bool = False
    ) -> np.ndarray:
        """Alias of :meth:`tokenize`."""
        return self.tokenize(texts, context_length=context_length, truncate=truncate)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"
