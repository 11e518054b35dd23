"""The bulk client of the NLP API: batches, bounded concurrency, a rate limiter, retries, a cache."""

from __future__ import annotations

import hashlib
import itertools
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from numbers import Integral, Real
from typing import Any

import httpx

from aiforge.errors import InvalidInput, ServiceError
from aiforge.nlp._proxy import rate_per_second
from aiforge.nlp._tokenize import check_texts
from aiforge.validation import Interval, validate_params

__all__ = ["ClientStats", "NlpClient", "NlpClientConfig", "TokenBucket", "tokenize_partition"]

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_POSITIVE_INT = Interval(Integral, 1, None, closed="left")
_POSITIVE = Interval(Real, 0, None, closed="neither")
_CONSTRAINTS: dict[str, list[Any]] = {
    "batch_size": [_POSITIVE_INT],
    "max_concurrency": [_POSITIVE_INT],
    "burst": [_POSITIVE_INT],
    "retries": [Interval(Integral, 0, None, closed="left")],
    "backoff": [_POSITIVE],
    "max_backoff": [_POSITIVE],
    "timeout": [_POSITIVE],
    "chunk_size": [_POSITIVE_INT],
}


class TokenBucket:
    """A thread-safe token bucket: :meth:`acquire` blocks so that calls never exceed ``rate`` per second.

    The bucket holds at most ``burst`` tokens and starts full. Waiters reserve their slot before sleeping,
    so many threads calling at once are spaced ``1 / rate`` seconds apart. ``clock`` and ``sleep`` can be
    replaced, e.g. by a simulated clock in tests.

    Examples
    --------
    >>> bucket = TokenBucket(rate=1000.0, burst=1)
    >>> bucket.acquire() >= 0.0
    True
    """

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        validate_params({"rate": rate, "burst": burst}, {"rate": [_POSITIVE], "burst": [_POSITIVE_INT]})
        self.rate, self.burst = float(rate), burst
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until it is available; return the seconds slept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass
class ClientStats:
    """What a client did: HTTP requests (retries included), retries, texts sent, texts answered from cache."""

    requests: int = 0
    retries: int = 0
    texts_sent: int = 0
    cache_hits: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class NlpClientConfig:
    """The parameters of :class:`NlpClient`, picklable, for Spark executors (:func:`tokenize_partition`)."""

    url: str
    batch_size: int = 256
    max_concurrency: int = 4
    rate: str | float | None = None
    burst: int = 1
    retries: int = 8
    backoff: float = 0.05
    max_backoff: float = 5.0
    timeout: float = 60.0


def _key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class NlpClient:
    """Tokenize many texts through the NLP API (usually behind the throttling proxy), in batches.

    Each request carries one batch of ``batch_size`` texts; up to ``max_concurrency`` requests are in flight;
    a token bucket keeps the client at or under ``rate`` requests per second (retries included); a 429, a 5xx
    or a connection error is retried up to ``retries`` times after an exponential backoff with full jitter
    (``uniform(0, min(max_backoff, backoff * 2**attempt))``, at least the server's ``Retry-After``). Results
    are cached by a hash of the text for the client's lifetime (memory grows with the distinct texts seen), so
    a text is sent once however often it appears.

    Parameters
    ----------
    url : str
        Base URL of the API or of the proxy, e.g. ``http://127.0.0.1:8080``.
    batch_size : int, default 256
        Texts per request; keep it at or under the server's ``max_texts``.
    max_concurrency : int, default 4
        Requests in flight at once.
    rate : str or float, optional
        Most requests per second, as ``"200/s"``, ``"30/m"`` or a number; None for no client-side limit.
    burst : int, default 1
        Requests the limiter lets through back to back before spacing them at ``rate``.
    retries : int, default 8
        Retries of one batch after the first attempt.
    backoff : float, default 0.05
        First backoff ceiling in seconds; it doubles at each retry.
    max_backoff : float, default 5.0
        Largest backoff ceiling in seconds.
    timeout : float, default 60.0
        Seconds to wait for one response.

    Raises
    ------
    InvalidInput
        A parameter out of range.

    Examples
    --------
    >>> with NlpClient("http://127.0.0.1:8080", batch_size=500, rate="200/s") as client:  # doctest: +SKIP
    ...     client.tokenize(["나는 학교에 간다", "hello world"])
    [['나', '는', '학교', '에', '가', 'ᆫ다'], ['hello', 'world']]
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 256,
        max_concurrency: int = 4,
        rate: str | float | None = None,
        burst: int = 1,
        retries: int = 8,
        backoff: float = 0.05,
        max_backoff: float = 5.0,
        timeout: float = 60.0,
    ) -> None:
        validate_params({"batch_size": batch_size, "max_concurrency": max_concurrency, "burst": burst,
                         "retries": retries, "backoff": backoff, "max_backoff": max_backoff, "timeout": timeout},
                        _CONSTRAINTS)
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"invalid NLP API url {url!r}; expected http://HOST:PORT")
        self.url = url.rstrip("/")
        self.batch_size, self.max_concurrency, self.retries = batch_size, max_concurrency, retries
        self.backoff, self.max_backoff, self.timeout = backoff, max_backoff, timeout
        self.rate = rate
        self._bucket = TokenBucket(rate_per_second(rate), burst) if rate is not None else None
        self._http = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )
        self._cache: dict[bytes, list[str]] = {}
        self._lock = threading.Lock()
        self.stats = ClientStats()

    @classmethod
    def from_config(cls, config: NlpClientConfig | Mapping[str, Any]) -> NlpClient:
        """A client from an :class:`NlpClientConfig` or a mapping of the same keys."""
        fields = asdict(config) if isinstance(config, NlpClientConfig) else dict(config)
        try:
            url = fields.pop("url")
        except KeyError:
            raise InvalidInput("the NLP client config needs a 'url', e.g. http://127.0.0.1:8080") from None
        try:
            return cls(url, **fields)
        except TypeError as exc:
            raise InvalidInput(
                f"bad NLP client config: {exc}; allowed keys: {sorted(NlpClientConfig.__dataclass_fields__)}"
            ) from exc

    def _count(self, status: int, retry: bool) -> None:
        with self._lock:
            self.stats.requests += 1
            self.stats.retries += int(retry)
            self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1

    def _sleep_before_retry(self, attempt: int, response: httpx.Response | None) -> None:
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        delay = random.uniform(0.0, ceiling)
        if response is not None:
            retry_after = response.headers.get("retry-after", "")
            if retry_after.replace(".", "", 1).isdigit():
                delay = max(delay, min(float(retry_after), self.max_backoff))
        time.sleep(delay)

    def _post(self, batch: list[str]) -> list[list[str]]:
        endpoint = f"{self.url}/v1/tokenize"
        last = "no answer"
        for attempt in range(self.retries + 1):
            if self._bucket is not None:
                self._bucket.acquire()
            response: httpx.Response | None = None
            try:
                response = self._http.post(endpoint, json={"texts": batch})
            except httpx.TransportError as exc:
                self._count(0, attempt > 0)
                last = f"{type(exc).__name__}: {exc}"
            else:
                self._count(response.status_code, attempt > 0)
                if response.status_code == 200:
                    return self._parse(response, len(batch), endpoint)
                last = f"status {response.status_code}: {response.text.strip()[:200]}"
                if response.status_code not in _RETRY_STATUSES:
                    raise ServiceError(
                        f"NLP API at {endpoint} refused a batch of {len(batch)} texts with {last}"
                    )
            if attempt < self.retries:
                self._sleep_before_retry(attempt, response)
        raise ServiceError(
            f"NLP API at {endpoint} failed after {self.retries + 1} attempts; last {last}. "
            "Check that the service (`aiforge nlp serve`) and the proxy are running, or allow more retries."
        )

    @staticmethod
    def _parse(response: httpx.Response, n: int, endpoint: str) -> list[list[str]]:
        try:
            tokens = response.json()["tokens"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceError(f"NLP API at {endpoint} answered without a 'tokens' list: {exc}") from exc
        if not isinstance(tokens, list) or len(tokens) != n:
            got = len(tokens) if isinstance(tokens, list) else type(tokens).__name__
            raise ServiceError(f"NLP API at {endpoint} answered {got} token lists for {n} texts")
        return tokens

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Tokens of each text, in order; each distinct uncached text is sent once.

        Parameters
        ----------
        texts : sequence of str, length N

        Returns
        -------
        list of N lists of str

        Raises
        ------
        InvalidInput
            ``texts`` is one string, or holds an item that is not a string.
        ServiceError
            The API still failed after all retries, or refused a batch (400/413); names the URL and the
            last status.
        """
        check_texts(texts)
        keys = [_key(text) for text in texts]
        todo: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._cache and key not in todo:
                todo[key] = text
        with self._lock:
            self.stats.cache_hits += len(texts) - len(todo)
            self.stats.texts_sent += len(todo)
        pending = list(todo.items())
        batches = [pending[i : i + self.batch_size] for i in range(0, len(pending), self.batch_size)]

        def run(batch: list[tuple[bytes, str]]) -> None:
            tokens = self._post([text for _, text in batch])
            with self._lock:
                self._cache.update(zip((key for key, _ in batch), tokens, strict=True))

        if len(batches) == 1:
            run(batches[0])
        elif batches:
            pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(batches)))
            try:
                for future in [pool.submit(run, batch) for batch in batches]:
                    future.result()
            finally:  # on the first failure, drop the batches not started yet
                pool.shutdown(wait=True, cancel_futures=True)
        return [self._cache[key] for key in keys]

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> NlpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def tokenize_partition(
    texts: Iterable[str | None],
    client_config: NlpClientConfig | Mapping[str, Any],
    *,
    chunk_size: int = 10_000,
) -> Iterator[list[str]]:
    """Tokenize one partition's texts through the NLP API; for Spark ``mapPartitions`` or local batches.

    The client is created inside the partition (executors cannot share one), reads ``chunk_size`` texts at a
    time so memory stays bounded, and yields one token list per input text, in order. ``None`` gives ``[]``
    without a request. With several partitions running at once, give each a share of the proxy's rate
    (``rate / partitions``); the proxy enforces the total anyway and the client retries what it rejects.

    Parameters
    ----------
    texts : iterable of str or None
    client_config : NlpClientConfig or mapping
        Keyword arguments of :class:`NlpClient`, including ``url``.
    chunk_size : int, default 10000

    Yields
    ------
    list of str

    Examples
    --------
    >>> config = NlpClientConfig("http://127.0.0.1:8080", rate="50/s")
    >>> rdd.mapPartitions(lambda rows: tokenize_partition((r.text for r in rows), config))  # doctest: +SKIP
    """
    validate_params({"chunk_size": chunk_size}, _CONSTRAINTS)
    iterator = iter(texts)
    with NlpClient.from_config(client_config) as client:
        while chunk := list(itertools.islice(iterator, chunk_size)):
            present = [text for text in chunk if text is not None]
            tokens = iter(client.tokenize(present))
            for text in chunk:
                yield [] if text is None else next(tokens)
