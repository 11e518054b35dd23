"""The throttling proxy: an nginx config with ``limit_req`` in front of the NLP API, and nginx to run it.

nginx runs in the foreground (``daemon off``) with its pid file, logs and temporary files under a work
directory, so it never touches /etc/nginx or /var/log/nginx. Requests over the rate get 429 with a JSON body.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from numbers import Integral
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiforge.errors import InvalidInput, ServiceError
from aiforge.validation import Interval, validate_params

__all__ = ["NginxProxy", "find_nginx", "parse_rate", "run_proxy", "write_nginx_config"]

_RATE = re.compile(r"^\s*(\d+)\s*r?\s*/\s*(s|m)\s*$")
_HEALTH = "/_aiforge/proxy-health"
_CONSTRAINTS: dict[str, list[Any]] = {
    "burst": [Interval(Integral, 0, None, closed="left")],
    "port": [Interval(Integral, 1, 65535, closed="both")],
}


def parse_rate(rate: str) -> tuple[int, str]:
    """Parse a request rate such as ``"200/s"`` or ``"30/m"`` (``"200r/s"`` is accepted too).

    Returns
    -------
    (int, str)
        The count and the unit, ``"s"`` or ``"m"``.

    Raises
    ------
    InvalidInput
        Not of the form ``N/s`` or ``N/m`` with a positive integer N.

    Examples
    --------
    >>> parse_rate("200/s")
    (200, 's')
    >>> parse_rate("30r/m")
    (30, 'm')
    """
    match = _RATE.match(rate) if isinstance(rate, str) else None
    if match is None or int(match.group(1)) < 1:
        raise InvalidInput(
            f"invalid rate {rate!r}; expected N/s or N/m with a positive integer N, e.g. '200/s' or '30/m'"
        )
    return int(match.group(1)), match.group(2)


def rate_per_second(rate: str | float) -> float:
    """Requests per second from ``"200/s"``, ``"30/m"`` or a positive number."""
    if isinstance(rate, str):
        count, unit = parse_rate(rate)
        return count / (60.0 if unit == "m" else 1.0)
    if not rate > 0:
        raise InvalidInput(
            f"invalid rate {rate!r}; expected a positive number of requests per second or 'N/s'"
        )
    return float(rate)


def _upstream_address(upstream: str) -> str:
    parts = urlsplit(upstream if "://" in upstream else f"http://{upstream}")
    try:
        port = parts.port or 80
    except ValueError:
        port = -1
    if parts.scheme != "http" or not parts.hostname or port < 1 or parts.path not in ("", "/"):
        raise InvalidInput(
            f"invalid upstream {upstream!r}; expected http://HOST:PORT, e.g. http://127.0.0.1:8000"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


def write_nginx_config(
    upstream: str,
    rate: str = "200/s",
    burst: int = 50,
    port: int = 8080,
    workdir: str | Path = ".aiforge/nginx",
    *,
    host: str = "127.0.0.1",
    per_client: bool = False,
    nodelay: bool = False,
) -> Path:
    """Write a complete nginx.conf that throttles requests to ``upstream`` with ``limit_req``.

    Requests beyond ``rate`` wait in a queue of ``burst`` (or pass at once with ``nodelay``); beyond that they
    get ``429 {"error": ...}``. ``GET /_aiforge/proxy-health`` answers 200 from nginx itself, unthrottled.

    Parameters
    ----------
    upstream : str
        The NLP API, ``http://HOST:PORT``.
    rate : str, default "200/s"
        ``N/s`` or ``N/m``.
    burst : int, default 50
        Requests allowed above the rate before nginx answers 429.
    port : int, default 8080
        Port the proxy listens on.
    workdir : str or Path
        Directory for nginx.conf, the pid file, logs/ and tmp/; created if missing.
    host : str, default "127.0.0.1"
        Interface the proxy listens on.
    per_client : bool, default False
        Limit each client address separately instead of all traffic together.
    nodelay : bool, default False
        Forward burst requests at once instead of spacing them out at ``rate``.

    Returns
    -------
    Path
        The nginx.conf written.

    Raises
    ------
    InvalidInput
        A bad rate, burst, port or upstream URL.

    Examples
    --------
    >>> import tempfile
    >>> conf = write_nginx_config("http://127.0.0.1:8000", "200/s", 50, 8080, tempfile.mkdtemp())
    >>> "limit_req_zone" in conf.read_text() and "limit_req_status 429;" in conf.read_text()
    True
    """
    count, unit = parse_rate(rate)
    validate_params({"burst": burst, "port": port}, _CONSTRAINTS)
    server = _upstream_address(upstream)
    workdir = Path(workdir).resolve()
    tmp = workdir / "tmp"
    for sub in ("logs", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    user_line = ""
    if os.geteuid() == 0:
        # As root, nginx's workers drop to an unprivileged user, who must be able to write the temp dirs.
        import grp
        import pwd

        nobody = pwd.getpwnam("nobody")
        group = grp.getgrgid(nobody.pw_gid).gr_name
        user_line = f"user nobody {group};\n"
        for path in [tmp, *tmp.iterdir()]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    key = "$binary_remote_addr" if per_client else "$server_name"
    delay = " nodelay" if nodelay else ""
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    text = f"""# Written by aiforge.nlp.write_nginx_config: {count}r/{unit}, burst {burst}.
{user_line}daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/logs/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    default_type application/octet-stream;
    log_format throttle '$msec $status $request_time "$request"';
    access_log {workdir}/logs/access.log throttle;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 16m;
    client_body_buffer_size 1m;
    keepalive_requests 100000;

    limit_req_zone {key} zone=aiforge_nlp:1m rate={count}r/{unit};
    limit_req_status 429;
    limit_req_log_level info;

    upstream aiforge_nlp_upstream {{
        server {server};
        keepalive 32;
    }}

    server {{
        listen {listen};
        server_name aiforge_nlp;

        location / {{
            limit_req zone=aiforge_nlp burst={burst}{delay};
            proxy_pass http://aiforge_nlp_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_connect_timeout 5s;
            proxy_read_timeout 300s;
            error_page 429 = @throttled;
            error_page 502 504 = @upstream_down;
        }}

        location = {_HEALTH} {{
            default_type application/json;
            return 200 '{{"status": "ok"}}';
        }}

        location @throttled {{
            default_type application/json;
            return 429 '{{"error": "rate limit of {count}/{unit} exceeded; retry with backoff"}}';
        }}

        location @upstream_down {{
            default_type application/json;
            return 502 '{{"error": "the NLP API at {upstream} is not answering"}}';
        }}
    }}
}}
"""
    conf = workdir / "nginx.conf"
    conf.write_text(text, encoding="utf-8")
    return conf


def find_nginx() -> str:
    """Path of the nginx binary, or a clear :class:`~aiforge.errors.ServiceError` telling how to install it."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise ServiceError("nginx is not installed; install Debian's package with `apt-get install nginx`")
    return found


class NginxProxy:
    """A real nginx throttling requests to ``upstream``; a context manager that starts and stops it.

    Parameters are those of :func:`write_nginx_config`. :meth:`start` checks the config (``nginx -t``),
    starts ``nginx -c CONF -p WORKDIR`` and waits until it answers; :meth:`stop` asks for a graceful
    shutdown (SIGQUIT).

    Examples
    --------
    >>> with NginxProxy("http://127.0.0.1:8000", rate="200/s", burst=50, port=8080,
    ...                 workdir="/tmp/proxy") as proxy:  # doctest: +SKIP
    ...     httpx.post(proxy.url + "/v1/tokenize", json={"texts": ["hi"]})
    """

    def __init__(
        self,
        upstream: str,
        rate: str = "200/s",
        burst: int = 50,
        port: int = 8080,
        workdir: str | Path = ".aiforge/nginx",
        *,
        host: str = "127.0.0.1",
        per_client: bool = False,
        nodelay: bool = False,
    ) -> None:
        self.upstream, self.rate, self.burst, self.port = upstream, rate, burst, port
        self.workdir, self.host, self.per_client, self.nodelay = Path(workdir), host, per_client, nodelay
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def access_log(self) -> Path:
        """One line per request: ``epoch-seconds status request-time "request"``."""
        return self.workdir.resolve() / "logs" / "access.log"

    def _error_log_tail(self) -> str:
        path = self.workdir.resolve() / "logs" / "error.log"
        lines = path.read_text(errors="replace").splitlines()[-5:] if path.exists() else []
        return "\n  ".join(lines)

    def start(self, timeout: float = 15.0) -> NginxProxy:
        import httpx

        conf = write_nginx_config(
            self.upstream, self.rate, self.burst, self.port, self.workdir,
            host=self.host, per_client=self.per_client, nodelay=self.nodelay,
        )  # fmt: skip
        nginx = find_nginx()
        prefix = str(conf.parent)
        errlog = str(conf.parent / "logs" / "error.log")
        base = [nginx, "-c", str(conf), "-p", prefix, "-e", errlog]
        check = subprocess.run([*base, "-t", "-q"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise ServiceError(f"nginx rejected {conf}: {(check.stderr or check.stdout).strip()}")
        self.process = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                self.process = None
                reason = stderr.strip() or self._error_log_tail()
                raise ServiceError(f"nginx exited while starting on port {self.port}: {reason}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + _HEALTH, timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise ServiceError(
            f"nginx did not answer on {self.url} within {timeout:.0f} s: {self._error_log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown (SIGQUIT: finish requests in flight), then SIGTERM/SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig in (signal.SIGQUIT, signal.SIGTERM):
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def wait(self) -> int:
        """Block until nginx exits; return its exit code."""
        if self.process is None:
            raise InvalidInput("the proxy is not running; call start() first")
        return self.process.wait()

    def __enter__(self) -> NginxProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_proxy(
    upstream: str,
    rate: str = "200/s",
    burst: int = 50,
    port: int = 8080,
    workdir: str | Path = ".aiforge/nginx",
    *,
    host: str = "127.0.0.1",
) -> int:
    """Run the throttling nginx in the foreground until it exits or Ctrl-C/SIGTERM, then stop it gracefully.

    Parameters are those of :func:`write_nginx_config`.

    Returns
    -------
    int
        nginx's exit code (0 after a graceful stop).

    Examples
    --------
    >>> run_proxy("http://127.0.0.1:8000", "200/s", 50, 8080, ".aiforge/nginx")  # doctest: +SKIP
    """
    proxy = NginxProxy(upstream, rate, burst, port, workdir, host=host)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Catch SIGTERM before nginx starts, so a stop request at any moment still shuts nginx down cleanly.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if in_main else None
    try:
        proxy.start()
        return proxy.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        proxy.stop()
        if in_main:
            signal.signal(signal.SIGTERM, previous)
