"""Verify's user checks run where they run on a host: against a local server, a closed port, commands."""

import http.server
import json
import socket
import threading
import unittest

from safeapply.target import checks

from target_helpers import run_entry


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class ChecksTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        cls.port = cls.server.server_address[1]
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.shutdown()
        cls.server.server_close()

    def closed_port(self) -> int:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        s.close()
        return port

    def test_each_kind(self) -> None:
        url = f"http://127.0.0.1:{self.port}"
        cases = [
            {"kind": "tcp", "target": str(self.port), "port": self.port, "host": "127.0.0.1", "timeout": 5},
            {"kind": "tcp", "target": "x", "port": self.closed_port(), "host": "127.0.0.1", "timeout": 5},
            {"kind": "http", "target": url + "/ok", "status": 200, "timeout": 5},
            {"kind": "http", "target": url + "/down", "status": 200, "timeout": 5},
            {"kind": "command", "target": "true", "timeout": 5},
            {"kind": "command", "target": "echo nope >&2; exit 3", "timeout": 5},
        ]
        got = checks.run_all(cases)
        self.assertIsNone(got[0])
        self.assertTrue(got[1] and got[1].startswith("ConnectionRefusedError"), got[1])
        self.assertEqual(got[2:], [None, "HTTP 503, expected 200", None, "exited 3: nope"])

    def test_entry_reads_stdin_and_answers_json(self) -> None:
        doc = [{"kind": "command", "target": "exit 0", "timeout": 5}, {"kind": "command", "target": "false",
                                                                      "timeout": 5}]
        rc, out, err = run_entry(["checks.run"], json.dumps(doc).encode())
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), [None, "exited 1"])


if __name__ == "__main__":
    unittest.main()
