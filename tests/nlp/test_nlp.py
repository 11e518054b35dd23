"""The NLP API: Kiwi with a user dictionary, the FastAPI service on a real uvicorn server, the client."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiforge.errors import InvalidInput, ServiceError
from aiforge.nlp import (
    NlpClient,
    NlpClientConfig,
    NlpServer,
    TokenBucket,
    analyze,
    create_nlp_app,
    read_user_dict,
    simple_tokenize,
    tokenize,
    tokenize_partition,
)

MAX_TEXTS = 20


def metric(base_url: str, name: str) -> float:
    """Sum of every sample of ``name`` on the service's /metrics page."""
    text = httpx.get(base_url + "/metrics").text
    return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, flags=re.M))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with NlpServer(create_nlp_app(max_texts=MAX_TEXTS, max_body_bytes=4096)) as server:
        yield server.url


# --- tokenizer -------------------------------------------------------------------------------------------


def test_korean_sentence_gives_kiwi_morphemes() -> None:
    assert tokenize(["아버지가 방에 들어가신다"]) == [["아버지", "가", "방", "에", "들어가", "시", "ᆫ다"]]
    assert analyze(["나는 학교에 간다"]) == [
        [("나", "NP"), ("는", "JX"), ("학교", "NNG"), ("에", "JKB"), ("가", "VV"), ("ᆫ다", "EF")]
    ]


def test_user_dictionary_changes_segmentation(tmp_path: Path) -> None:
    words = tmp_path / "words.tsv"
    words.write_text("# domain words\n\n인공지능\tNNG\t1.0\n", encoding="utf-8")
    text = ["인공지능을 공부한다"]
    assert tokenize(text) == [["인공", "지능", "을", "공부", "하", "ᆫ다"]]
    assert tokenize(text, user_dict=words) == [["인공지능", "을", "공부", "하", "ᆫ다"]]


def test_english_and_other_text_use_the_simple_tokenizer() -> None:
    assert tokenize(["Don't panic: 42 e-mails, café!", "Привет, мир", ""]) == [
        ["Don't", "panic", "42", "e-mails", "café"],
        ["Привет", "мир"],
        [],
    ]
    assert simple_tokenize("Python 3.12 rocks") == [("Python", "SL"), ("3.12", "SN"), ("rocks", "SL")]


def test_mixed_batch_keeps_order() -> None:
    texts = ["hello world", "나는 간다", "bye"]
    assert tokenize(texts) == [["hello", "world"], ["나", "는", "가", "ᆫ다"], ["bye"]]


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=40))
def test_simple_tokens_are_substrings_without_spaces(text: str) -> None:
    for word, tag in simple_tokenize(text):
        assert word in text and not any(c.isspace() for c in word)
        assert tag in ("SL", "SN")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "인공지능\n",
            r"words.tsv, line 1: expected 'word<TAB>TAG' or 'word<TAB>TAG<TAB>score', got '인공지능'",
        ),
        ("ok\tNNG\n\tNNG\n", r"line 2: expected 'word<TAB>TAG'"),
        ("# c\n단어\tXYZ\n", r"line 2: unknown tag 'XYZ'; allowed: IC, MAG, MAJ, MM, NNB, NNG, NNP, NP"),
        ("단어\tNNG\thigh\n", r"line 1: score must be a number, got 'high'"),
    ],
)
def test_bad_user_dictionary_names_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "words.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput, match=message):
        read_user_dict(path)
    with pytest.raises(InvalidInput, match=message):
        create_nlp_app(path)


def test_missing_user_dictionary_and_bad_texts(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"user dictionary .*nope.tsv not found"):
        tokenize(["a"], user_dict=tmp_path / "nope.tsv")
    with pytest.raises(InvalidInput, match=r"^texts must be a list of strings; got one string \(wrap it in a list: "
                       r"\[text\]\)$"):
        tokenize("나는 간다")
    with pytest.raises(InvalidInput, match=r"^texts\[1\] must be a string; got int$"):
        tokenize(["a", 3])  # type: ignore[list-item]


# --- service on a real uvicorn server --------------------------------------------------------------------


def test_service_tokenizes_a_list(service: str) -> None:
    r = httpx.post(service + "/v1/tokenize", json={"texts": ["나는 학교에 간다", "Hi there"]})
    assert r.status_code == 200
    assert r.json() == {"tokens": [["나", "는", "학교", "에", "가", "ᆫ다"], ["Hi", "there"]]}
    r = httpx.post(service + "/v1/tokenize", json={"texts": ["나는 학교에 간다", "Hi"], "pos": True})
    assert r.json() == {
        "tokens": [["나", "는", "학교", "에", "가", "ᆫ다"], ["Hi"]],
        "tags": [["NP", "JX", "NNG", "JKB", "VV", "EF"], ["SL"]],
    }


def test_service_health_and_metrics(service: str) -> None:
    assert httpx.get(service + "/health/live").json() == {"live": True}
    assert httpx.get(service + "/health/ready").json() == {"ready": True}
    before = metric(service, "aiforge_nlp_texts_total")
    httpx.post(service + "/v1/tokenize", json={"texts": ["a", "b", "c"]})
    text = httpx.get(service + "/metrics").text
    assert metric(service, "aiforge_nlp_texts_total") == before + 3
    assert 'aiforge_nlp_requests_total{route="/v1/tokenize",status="200"}' in text
    assert 'aiforge_nlp_latency_seconds_bucket{le="+Inf",stage="total"}' in text
    assert "aiforge_nlp_ready 1.0" in text


def test_service_metrics_are_public_unless_told_otherwise() -> None:
    auth = {"Authorization": "Bearer s3cret"}
    with NlpServer(create_nlp_app(token="s3cret")) as server:
        assert httpx.post(server.url + "/v1/tokenize", json={"texts": ["a"]}).status_code == 401
        assert httpx.post(server.url + "/v1/tokenize", json={"texts": ["a"]}, headers=auth).status_code == 200
        assert httpx.get(server.url + "/metrics").status_code == 200  # a scraper needs no token by default
    with NlpServer(create_nlp_app(token="s3cret", metrics_public=False)) as server:
        assert httpx.get(server.url + "/metrics").status_code == 401
        metrics = httpx.get(server.url + "/metrics", headers=auth)
        assert metrics.status_code == 200 and "aiforge_nlp_ready 1.0" in metrics.text
        assert httpx.get(server.url + "/health/ready").status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, r"^body is not valid JSON \(Expecting property name"),
        (b'{"texts": "one"}', 400, r"^texts: Input should be a valid list; expected"),
        (b'{"texts": ["a", 1]}', 400, r"^texts\.1: Input should be a valid string"),
        (b'{"pos": true}', 400, r"^texts: Field required"),
        (
            b'{"texts": [' + b",".join([b'"x"'] * (MAX_TEXTS + 1)) + b"]}",
            400,
            r"^21 texts in one request; at most 20",
        ),
        (
            b'{"texts": ["' + b"x" * 5000 + b'"]}',
            413,
            r"^the request body is larger than 4096 bytes; send fewer texts$",
        ),
    ],
)
def test_service_rejects_bad_requests_with_json(service: str, body: bytes, status: int, error: str) -> None:
    r = httpx.post(service + "/v1/tokenize", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    assert list(r.json()) == ["error"]
    assert re.search(error, r.json()["error"]), r.json()


class SlowAnalyzer:
    """Answers like the real analyzer once ``release`` is set; counts the calls that are waiting."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.waiting = 0

    def analyze(self, texts: list[str]) -> list[list[tuple[str, str]]]:
        self.waiting += 1
        self.release.wait(30)
        return [[(text, "SL")] for text in texts]


def test_service_over_max_in_flight_is_503_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiforge.nlp._service as service_module

    slow = SlowAnalyzer()
    monkeypatch.setattr(service_module, "get_analyzer", lambda user_dict: slow)
    with NlpServer(create_nlp_app(max_in_flight=1)) as server:
        first: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: first.append(httpx.post(server.url + "/v1/tokenize", json={"texts": ["a"]}, timeout=30))
        )
        thread.start()
        for _ in range(3000):  # wait until the first request is inside the analyzer
            if slow.waiting:
                break
            threading.Event().wait(0.01)
        refused = httpx.post(server.url + "/v1/tokenize", json={"texts": ["b"]})
        slow.release.set()
        thread.join(30)
        text = httpx.get(server.url + "/metrics").text
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {
        "error": "the NLP API is at its limit of 1 requests in flight; retry after the Retry-After seconds"
    }
    assert first[0].json() == {"tokens": [["a"]]}
    assert 'aiforge_nlp_requests_total{route="/v1/tokenize",status="503"} 1.0' in text


def test_service_while_loading_and_after_a_failed_load(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiforge.nlp._service as service_module

    loaded = threading.Event()

    def load(user_dict: object) -> object:
        loaded.wait(30)
        raise InvalidInput("user dictionary words.tsv, line 1: unknown tag 'XYZ'")

    monkeypatch.setattr(service_module, "get_analyzer", load)
    with NlpServer(create_nlp_app(), ready_path=None) as server:
        ready = httpx.get(server.url + "/health/ready")
        busy = httpx.post(server.url + "/v1/tokenize", json={"texts": ["a"]})
        assert (ready.status_code, ready.headers["retry-after"], ready.json()) == (503, "1", {"ready": False})
        assert (busy.status_code, busy.headers["retry-after"], busy.json()) == (
            503, "1", {"error": "the analyzer is still loading; retry shortly"})
        assert httpx.get(server.url + "/health/live").json() == {"live": True}
        loaded.set()
        for _ in range(3000):
            failed = httpx.get(server.url + "/health/ready")
            if "error" in failed.json():
                break
            threading.Event().wait(0.01)
        broken = httpx.post(server.url + "/v1/tokenize", json={"texts": ["a"]})
        assert "aiforge_nlp_ready 0.0" in httpx.get(server.url + "/metrics").text
    message = "analyzer failed to load: user dictionary words.tsv, line 1: unknown tag 'XYZ'"
    assert (failed.status_code, failed.json()) == (503, {"error": message})
    assert "retry-after" not in failed.headers
    assert (broken.status_code, broken.json()) == (503, {"error": message})


def test_create_app_validates_limits() -> None:
    with pytest.raises(InvalidInput, match=r"^max_texts must be a positive integer; got 0$"):
        create_nlp_app(max_texts=0)


# --- client ----------------------------------------------------------------------------------------------


def test_client_batches_and_keeps_order(service: str) -> None:
    texts = [f"문장 {i} 입니다" if i % 2 else f"sentence {i}" for i in range(10)]
    before = metric(service, "aiforge_nlp_requests_total")
    with NlpClient(service, batch_size=3, max_concurrency=3) as client:
        assert client.tokenize(texts) == tokenize(texts)
        assert client.stats.requests == 4
    assert metric(service, "aiforge_nlp_requests_total") == before + 4


def test_client_cache_sends_duplicates_once(service: str) -> None:
    before = metric(service, "aiforge_nlp_texts_total")
    with NlpClient(service, batch_size=10) as client:
        assert client.tokenize(["a b", "c", "a b", "a b"]) == [["a", "b"], ["c"], ["a", "b"], ["a", "b"]]
        assert client.tokenize(["c", "a b"]) == [["c"], ["a", "b"]]
        assert (client.stats.texts_sent, client.stats.cache_hits, client.stats.requests) == (2, 4, 1)
    assert metric(service, "aiforge_nlp_texts_total") == before + 2


def test_client_error_after_retries_when_service_is_down() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with NlpClient(url, retries=2, backoff=0.01) as client, pytest.raises(ServiceError) as info:
        client.tokenize(["x"])
    assert re.match(
        rf"NLP API at {url}/v1/tokenize failed after 3 attempts; last ConnectError: .*refused.*"
        r"Check that the service \(`aiforge nlp serve`\) and the proxy are running",
        str(info.value),
    )
    assert client.stats.requests == 3 and client.stats.retries == 2


def test_client_does_not_retry_a_refused_batch(service: str) -> None:
    with (
        NlpClient(service, batch_size=MAX_TEXTS + 5, retries=3) as client,
        pytest.raises(ServiceError) as info,
    ):
        client.tokenize([f"t{i}" for i in range(MAX_TEXTS + 1)])
    assert f"NLP API at {service}/v1/tokenize refused a batch of 21 texts with status 400" in str(info.value)
    assert client.stats.requests == 1


def test_tokenize_partition_creates_its_client(service: str) -> None:
    rows = iter(["나는 간다", None, "hello", "나는 간다"])
    config = NlpClientConfig(service, batch_size=2)
    assert list(tokenize_partition(rows, config, chunk_size=3)) == [
        ["나", "는", "가", "ᆫ다"],
        [],
        ["hello"],
        ["나", "는", "가", "ᆫ다"],
    ]
    assert list(tokenize_partition([], {"url": service})) == []
    with pytest.raises(InvalidInput, match=r"bad NLP client config: .*unexpected keyword argument 'colour'"):
        list(tokenize_partition(["a"], {"url": service, "colour": 1}))
    with pytest.raises(InvalidInput, match=r"needs a 'url'"):
        list(tokenize_partition(["a"], {}))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, r"^batch_size must be a positive integer; got 0$"),
        ({"max_concurrency": 1.5}, r"^max_concurrency must be a positive integer; got 1.5$"),
        ({"burst": True}, r"^burst must be a positive integer; got True$"),
        ({"retries": -1}, r"^retries must be an integer >= 0; got -1$"),
        ({"backoff": 0}, r"^backoff must be a positive number; got 0$"),
        ({"timeout": float("nan")}, r"^timeout must be a positive number; got nan$"),
        ({"rate": "fast"}, r"invalid rate 'fast'; expected N/s or N/m"),
        ({"rate": -2.0}, r"invalid rate -2.0; expected a positive number"),
    ],
)
def test_client_validates_parameters(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        NlpClient("http://127.0.0.1:1", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"invalid NLP API url 'localhost:80'; expected http://HOST:PORT"):
        NlpClient("localhost:80")


def test_client_and_partition_refuse_bad_texts_and_chunk_size_before_any_request() -> None:
    with NlpClient("http://127.0.0.1:1", retries=0) as client:
        with pytest.raises(InvalidInput, match=r"^texts must be a list of strings; got one string \(wrap it in a "):
            client.tokenize("나는 간다")
        with pytest.raises(InvalidInput, match=r"^texts\[0\] must be a string; got bytes$"):
            client.tokenize([b"a"])  # type: ignore[list-item]
        assert client.stats.requests == 0
    with pytest.raises(InvalidInput, match=r"^chunk_size must be a positive integer; got 0$"):
        next(tokenize_partition(["a"], {"url": "http://127.0.0.1:1"}, chunk_size=0))


@pytest.mark.parametrize(
    ("rate", "burst", "message"),
    [
        (0.0, 1, r"^rate must be a positive number; got 0.0$"),
        (float("nan"), 1, r"^rate must be a positive number; got nan$"),
        (5.0, 0, r"^burst must be a positive integer; got 0$"),
    ],
)
def test_token_bucket_validates_parameters(rate: float, burst: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        TokenBucket(rate, burst)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(("rate", "burst", "calls"), [(5.0, 1, 20), (200.0, 50, 500), (0.5, 3, 7)])
def test_token_bucket_never_exceeds_rate(rate: float, burst: int, calls: int) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, burst, clock=clock.monotonic, sleep=clock.sleep)
    start = clock.now
    stamps = []
    for _ in range(calls):
        bucket.acquire()
        stamps.append(clock.now)
    # In any window of length w, at most rate * w + burst calls go through; the first `burst` are immediate.
    assert stamps[:burst] == [start] * burst
    for i in range(calls):
        for j in range(i, calls):
            assert j - i + 1 <= rate * (stamps[j] - stamps[i]) + burst + 1e-9
    assert stamps[-1] - start == pytest.approx((calls - burst) / rate)
