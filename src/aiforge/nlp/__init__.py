"""The NLP API of the BATCH stage: a tokenizing service, its throttling nginx proxy and a bulk client.

Text features need morphemes, and Korean morphemes need a dictionary-backed analyzer (Kiwi). Many feature jobs
calling one such service at once would overwhelm it, so the service sits behind nginx's ``limit_req`` and the
client sends one batch of texts per request, at a bounded rate, retrying what the proxy turns away::

    NlpClient / tokenize_partition ──► nginx (NginxProxy, limit_req, 429) ──► NLP API (create_nlp_app, Kiwi)

Pieces:

- :func:`tokenize` / :func:`analyze`: the pure functions the service runs (Kiwi for text with Hangul, a
  Unicode word splitter for the rest), with an optional user dictionary (:func:`read_user_dict`).
- :func:`create_nlp_app`, :func:`serve_nlp`, :class:`NlpServer`: the FastAPI service and ways to run it.
- :func:`write_nginx_config`, :class:`NginxProxy`, :func:`run_proxy`: the throttling proxy.
- :class:`NlpClient`, :func:`tokenize_partition`: the bulk client, also per Spark partition.

Examples
--------
>>> tokenize(["아버지가 방에 들어가신다", "Hello, world!"])
[['아버지', '가', '방', '에', '들어가', '시', 'ᆫ다'], ['Hello', 'world']]
"""

from __future__ import annotations

from aiforge.nlp._client import ClientStats, NlpClient, NlpClientConfig, TokenBucket, tokenize_partition
from aiforge.nlp._proxy import NginxProxy, find_nginx, parse_rate, run_proxy, write_nginx_config
from aiforge.nlp._service import NlpServer, TokenizeRequest, TokenizeResponse, create_nlp_app, serve_nlp
from aiforge.nlp._tokenize import UserWord, analyze, read_user_dict, simple_tokenize, tokenize

__all__ = [
    "ClientStats",
    "NginxProxy",
    "NlpClient",
    "NlpClientConfig",
    "NlpServer",
    "TokenBucket",
    "TokenizeRequest",
    "TokenizeResponse",
    "UserWord",
    "analyze",
    "create_nlp_app",
    "find_nginx",
    "parse_rate",
    "read_user_dict",
    "run_proxy",
    "serve_nlp",
    "simple_tokenize",
    "tokenize",
    "tokenize_partition",
    "write_nginx_config",
]
