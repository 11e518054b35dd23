"""Text handling shared by PopEval and the cascade: normalisation, multiset and ordered popping, edit distance."""

from __future__ import annotations

import unicodedata
from typing import Any, Literal

from aiforge.validation import Options

# The composed forms only: a decomposed form (NFD, NFKD) splits a Hangul syllable or an accented letter into
# several characters, so PopEval would count jamo and combining marks instead of the characters a reader sees.
Normalization = Literal["NFC", "NFKC"] | None

#: The declared constraints of the text options that PopEval and the cascade share.
TEXT_OPTIONS: dict[str, list[Any]] = {
    "case_sensitive": ["boolean"],
    "normalization": [None, Options("NFC", "NFKC")],
    "strip_special": ["boolean"],
    "dont_care": [str, None],
}

# The characters ICDAR's end-to-end scripts strip from the start and end of words before comparing them.
SPECIAL_CHARACTERS = "!?.:,*\"()·[]/'"


def normalize_text(text: str, *, case_sensitive: bool, normalization: Normalization, strip_special: bool) -> str:
    """Apply the optional text options in a fixed order: Unicode form, case, special characters."""
    if normalization is not None:
        text = unicodedata.normalize(normalization, text)
    if not case_sensitive:
        text = text.casefold()
    if strip_special:
        text = text.strip(SPECIAL_CHARACTERS)
    return text


def pop_multiset(gt: list[str], pred: list[str]) -> tuple[list[str], list[str], int]:
    """Pop every GT character that the prediction still holds, one for one; order is ignored (the reference)."""
    pred = list(pred)
    left: list[str] = []
    popped = 0
    for ch in gt:
        try:
            pred.remove(ch)
        except ValueError:
            left.append(ch)
        else:
            popped += 1
    return left, pred, popped


def pop_ordered(gt: list[str], pred: list[str]) -> tuple[list[str], list[str], int]:
    """Pop the characters of a longest common subsequence: "CBA" shares only one character with "ABC" here."""
    n, m = len(gt), len(pred)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = table[i], table[i + 1]
        for j in range(m - 1, -1, -1):
            row[j] = below[j + 1] + 1 if gt[i] == pred[j] else max(below[j], row[j + 1])
    keep_gt = [True] * n
    keep_pred = [True] * m
    i = j = 0
    while i < n and j < m:
        if gt[i] == pred[j]:
            keep_gt[i] = keep_pred[j] = False
            i += 1
            j += 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    left = [c for c, k in zip(gt, keep_gt, strict=True) if k]
    rest = [c for c, k in zip(pred, keep_pred, strict=True) if k]
    return left, rest, table[0][0]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
