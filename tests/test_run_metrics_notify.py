"""Metrics textfile (atomic, parseable) and --notify against a real local http.server on 127.0.0.1."""

from __future__ import annotations

import threading
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


def test_notify_failure_is_reported_not_raised(server: str) -> None:
    _Sink.status = 500
    assert "HTTP 500" in (notify.post(server, "t", "m") or "")
    port = server.split(":")[2].split("/")[0]
    dead = f"http://127.0.0.1:{int(port)}/x"
    _Sink.status = 200
    assert notify.post("http://127.0.0.1:1/x", "t", "m", timeout=5) is not None
    assert notify.post(dead, "t", "m") is None
    with pytest.raises(UsageError):
        notify.check_url("ftp://example/x")
