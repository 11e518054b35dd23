"""Tokenizing text: Kiwi for Korean (with an optional user dictionary), a Unicode word splitter for the rest.

Kiwi (``kiwipiepy``) loads its model from the ``kiwipiepy_model`` package installed beside it, so nothing is
fetched from the network. Loading takes a second or two, so analyzers are cached per user-dictionary file.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiforge.errors import InvalidInput

__all__ = ["Analyzer", "UserWord", "analyze", "get_analyzer", "read_user_dict", "simple_tokenize", "tokenize"]

# Hangul syllables, jamo and compatibility jamo: any of them sends a text to Kiwi.
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
# A word is a run of letters/digits, with inner apostrophes, hyphens or dots kept ("don't", "e-mail", "3.12").
_WORD = re.compile(r"\w+(?:['’.\-]\w+)*")
# The tags a user word may take in Kiwi's add_user_word (nouns, verbs/adjectives, adverbs and the like).
_USER_TAGS = frozenset(
    ["NNG", "NNP", "NNB", "NR", "NP", "VV", "VA", "MM", "MAG", "MAJ", "IC", "XR", "SL", "SH", "SN"]
)


@dataclass(frozen=True)
class UserWord:
    """One entry of a user dictionary: a surface form, its part-of-speech tag and a score."""

    word: str
    tag: str
    score: float


def read_user_dict(path: str | Path) -> list[UserWord]:
    """Read a user dictionary: one ``word<TAB>TAG[<TAB>score]`` entry per line.

    Blank lines and lines starting with ``#`` are skipped. ``TAG`` is a Kiwi part-of-speech tag for a content
    word (``NNG`` common noun, ``NNP`` proper noun, ``VV`` verb, ``VA`` adjective, ``MAG`` adverb, ...);
    ``score`` (default 0) is a log-probability bonus: higher makes Kiwi prefer the word over other
    segmentations.

    Parameters
    ----------
    path : str or Path
        A UTF-8 text file.

    Returns
    -------
    list of UserWord

    Raises
    ------
    InvalidInput
        The file cannot be read, or a line is malformed; the message names the file and the line number.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "words.tsv"
    >>> _ = p.write_text("# my words\\n인공지능\\tNNG\\t1.5\\n", encoding="utf-8")
    >>> read_user_dict(p)
    [UserWord(word='인공지능', tag='NNG', score=1.5)]
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read user dictionary {path}: {exc}; expected a UTF-8 text file") from exc
    words = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        where = f"user dictionary {path}, line {number}"
        if len(fields) not in (2, 3) or not fields[0].strip():
            raise InvalidInput(f"{where}: expected 'word<TAB>TAG' or 'word<TAB>TAG<TAB>score', got {line!r}")
        word, tag = fields[0].strip(), fields[1].strip()
        if tag not in _USER_TAGS:
            raise InvalidInput(f"{where}: unknown tag {tag!r}; allowed: {', '.join(sorted(_USER_TAGS))}")
        score = 0.0
        if len(fields) == 3:
            try:
                score = float(fields[2])
            except ValueError:
                raise InvalidInput(f"{where}: score must be a number, got {fields[2]!r}") from None
        words.append(UserWord(word, tag, score))
    return words


def simple_tokenize(text: str) -> list[tuple[str, str]]:
    """Split non-Korean text into words: NFKC-normalized runs of letters and digits, punctuation dropped.

    Inner apostrophes, hyphens and dots stay inside a word; case is kept. Each token is tagged ``SN`` when it
    is all digits (and dots), else ``SL``, as Kiwi tags foreign words and numbers.

    Examples
    --------
    >>> simple_tokenize("Don't panic: 42 e-mails, café!")
    [("Don't", 'SL'), ('panic', 'SL'), ('42', 'SN'), ('e-mails', 'SL'), ('café', 'SL')]
    """
    words = _WORD.findall(unicodedata.normalize("NFKC", text))
    return [(w, "SN" if w.replace(".", "").isdigit() else "SL") for w in words]


class Analyzer:
    """Kiwi with the user words added, plus the fallback tokenizer; safe to share between threads."""

    def __init__(self, user_words: Sequence[UserWord] = ()) -> None:
        from kiwipiepy import Kiwi

        self._kiwi: Any = Kiwi()
        self._lock = threading.Lock()
        for entry in user_words:
            self._kiwi.add_user_word(entry.word, entry.tag, entry.score)
        self._kiwi.tokenize("준비")  # Kiwi finishes loading on its first call; pay that here, not per request

    def analyze(self, texts: Sequence[str]) -> list[list[tuple[str, str]]]:
        """(form, tag) pairs for each text; Korean texts go to Kiwi in one call, the rest to the fallback."""
        result: list[list[tuple[str, str]]] = [[] for _ in texts]
        korean = []
        for i, text in enumerate(texts):
            if _HANGUL.search(text):
                korean.append(i)
            else:
                result[i] = simple_tokenize(text)
        if korean:
            with self._lock:  # one Kiwi object is not documented as thread-safe
                analyzed = list(self._kiwi.tokenize([texts[i] for i in korean]))
            for i, tokens in zip(korean, analyzed, strict=True):
                result[i] = [(t.form, t.tag) for t in tokens]
        return result


@functools.lru_cache(maxsize=8)
def _cached_analyzer(path: str | None, mtime_ns: int) -> Analyzer:
    return Analyzer(read_user_dict(path) if path is not None else ())


def get_analyzer(user_dict: str | Path | None = None) -> Analyzer:
    """The shared :class:`Analyzer` for ``user_dict`` (reloaded when the file changes)."""
    if user_dict is None:
        return _cached_analyzer(None, 0)
    path = Path(user_dict).resolve()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise InvalidInput(
            f"user dictionary {user_dict} not found; pass an existing word<TAB>TAG file"
        ) from exc
    return _cached_analyzer(str(path), mtime)


def check_texts(texts: Sequence[str]) -> None:
    """Refuse one string where a list of them is wanted, and any item that is not a string.

    A plain check, not a declared constraint: "a sequence, but not a string" is more than the constraint objects
    of :mod:`aiforge.validation` say, and each item is named by its index.
    """
    if isinstance(texts, str):
        raise InvalidInput("texts must be a list of strings; got one string (wrap it in a list: [text])")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInput(f"texts[{i}] must be a string; got {type(text).__name__}")


def analyze(texts: Sequence[str], user_dict: str | Path | None = None) -> list[list[tuple[str, str]]]:
    """Morph-analyze each text: a list of ``(form, tag)`` pairs per text.

    Texts containing Hangul go to Kiwi (with the user dictionary, if any); other texts go to
    :func:`simple_tokenize`.

    Parameters
    ----------
    texts : sequence of str, length N
    user_dict : str or Path, optional
        A ``word<TAB>TAG[<TAB>score]`` file (see :func:`read_user_dict`).

    Returns
    -------
    list of N lists of (str, str)

    Examples
    --------
    >>> analyze(["학교에 간다", "Hi, you"])
    [[('학교', 'NNG'), ('에', 'JKB'), ('가', 'VV'), ('ᆫ다', 'EF')], [('Hi', 'SL'), ('you', 'SL')]]
    """
    check_texts(texts)
    return get_analyzer(user_dict).analyze(list(texts))


def tokenize(texts: Sequence[str], user_dict: str | Path | None = None) -> list[list[str]]:
    """Tokenize each text into morphemes (Korean, by Kiwi) or words (other text): :func:`analyze`'s forms.

    Parameters
    ----------
    texts : sequence of str, length N
    user_dict : str or Path, optional
        A ``word<TAB>TAG[<TAB>score]`` file (see :func:`read_user_dict`).

    Returns
    -------
    list of N lists of str

    Raises
    ------
    InvalidInput
        ``texts`` is not a sequence of strings, or the user dictionary is missing or malformed.

    Examples
    --------
    >>> tokenize(["아버지가 방에 들어가신다", "The cat sat."])
    [['아버지', '가', '방', '에', '들어가', '시', 'ᆫ다'], ['The', 'cat', 'sat']]
    """
    return [[form for form, _ in tokens] for tokens in analyze(texts, user_dict)]
