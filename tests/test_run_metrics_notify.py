"""Metrics textfile (atomic, parseable) and --notify against a real local http.server on 127.0.0.1, a port that
refuses connections and a server that never answers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from safeapply import metrics, notify
from safeapply.errors import UsageError


def test_metrics_file(tmp_path: Path) -> None:
    m = metrics.RunMetrics("site web", 20, 1700000000.5, 12.25, True, 3)
    path = metrics.write(tmp_path, m)
    assert path.name == "safeapply_site_web.prom"
    text = path.read_text()
    assert 'safeapply_last_run_exit_code{playbook="site web"} 20' in text
    assert 'safeapply_rollbacks_total{playbook="site web"} 3' in text
    assert "# TYPE safeapply_rollbacks_total counter" in text
    assert 'safeapply_last_run_success{playbook="site web"} 0' in text
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind
    metrics.write(tmp_path, metrics.RunMetrics("site web", 0, 1700000100, 1, False, 3))
    assert 'safeapply_last_run_success{playbook="site web"} 1' in path.read_text()


class _Sink(BaseHTTPRequestHandler):
    got: ClassVar[list[dict[str, Any]]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        _Sink.got.append({"path": self.path, "title": self.headers["Title"], "body": body})
        self.send_response(_Sink.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    srv = HTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    _Sink.got, _Sink.status = [], 200
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/topic"
    finally:
        srv.shutdown()
        srv.server_close()


def test_notify_posts(server: str) -> None:
    assert notify.post(server, "safeapply: web1 rolled back", "run 42: verify failed\nrestored") is None
    assert _Sink.got == [{"path": "/topic", "title": "safeapply: web1 rolled back",
                          "body": "run 42: verify failed\nrestored"}]


def test_notify_rejected_is_reported_not_raised(server: str) -> None:
    _Sink.status = 500
    err = notify.post(server, "t", "m")
    assert err is not None and "HTTP 500" in err and err.startswith(f"POST {server}: ") and "\n" not in err
    assert len(_Sink.got) == 1  # it reached the server, which said no
    _Sink.status = 200  # the same server, live and accepting again
    assert notify.post(server, "t", "m") is None
    assert len(_Sink.got) == 2
    with pytest.raises(UsageError):
        notify.check_url("ftp://example/x")


@pytest.fixture
def refusing() -> Iterator[str]:
    """A port that is bound and never listens: every connection to it is refused while this lasts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}/x"


@pytest.fixture
def silent() -> Iterator[str]:
    """A server that accepts the connection and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"http://127.0.0.1:{s.getsockname()[1]}/x"


def test_notify_to_a_dead_endpoint_is_reported_not_raised(refusing: str) -> None:
    for url in (refusing, "http://127.0.0.1:1/x"):  # nothing listens on port 1 either
        err = notify.post(url, "t", "m", timeout=5)
        assert err is not None and err.startswith(f"POST {url}: ") and "refused" in err.lower(), err
        assert "\n" not in err


def test_notify_to_a_server_that_never_answers_gives_up_at_the_timeout(silent: str) -> None:
    t0 = time.monotonic()
    err = notify.post(silent, "t", "m", timeout=1)
    assert err is not None and err.startswith(f"POST {silent}: ") and "timed out" in err and "\n" not in err
    assert time.monotonic() - t0 < 5
