"""Text normalisation applied to references and hypotheses before WER/CER.

WER depends on what counts as "the same word", so the choice must be explicit. Two modes:

- ``"none"`` (the default, as in jiwer): the text is used as given. jiwer's own default
  transform still applies: leading/trailing white space is stripped, runs of two or more
  white-space characters become one space, and words are split on spaces only — so a lone
  tab or no-break space (U+00A0, as in Multi30k's ``"120\xa0cm"``) does *not* separate two
  words. For CER: strip, then every character, spaces included, is a token.
- ``"standard"``: exactly these three steps, in this order, then jiwer's default:

  1. lower-case (Python ``str.lower``);
  2. delete every punctuation character, i.e. every Unicode character whose general
     category starts with ``P`` (the set jiwer's ``RemovePunctuation`` uses). Deleted, not
     replaced by a space: ``"don't"`` → ``"dont"``, ``"well-known"`` → ``"wellknown"``;
  3. turn every run of Unicode white space (what ``str.split()`` splits on: tabs, newlines,
     no-break and thin spaces …) into one space, and strip both ends.

  Nothing else: no number spelling, no contraction expansion, no Unicode NFKC.

>>> normalize_text("  Hello,  World! It's   me. ", "standard")
'hello world its me'
>>> normalize_text("  Hello,  World! ", "none")
'  Hello,  World! '
"""
from __future__ import annotations

import functools
import sys
import unicodedata

from .base import check_choice

#: The normalisation modes ``wer``/``cer`` (and ``seqlab eval wer --normalize``) accept.
NORMALIZATIONS = ("none", "standard")


@functools.lru_cache(maxsize=1)
def _punctuation_table() -> dict[int, None]:
    # Built once, on first use (not at import): ~1.1M code points are scanned.
    return {
        cp: None
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)).startswith("P")
    }


def normalize_text(text: str, mode: str = "none") -> str:
    """Normalise one utterance for WER/CER; ``mode`` is ``"none"`` or ``"standard"``."""
    check_choice(mode, NORMALIZATIONS, "normalize")
    if mode == "none":
        return text
    text = text.lower().translate(_punctuation_table())
    return " ".join(text.split())
