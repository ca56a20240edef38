"""The HTTP transport against a small in-process server (no tuneflow binary needed)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, List, Tuple

import pytest

import tuneflow
from tuneflow._http import Transport


class _Handler(BaseHTTPRequestHandler):
    """Answers ``{"path", "auth", "peer"}``; ``/drop`` answers, then closes the connection
    without saying so, as a server does with an idle keep-alive connection."""

    protocol_version = "HTTP/1.1"
    seen: List[Tuple[str, int]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.client_address[1]))
        if self.path == "/missing":
            self._send(404, {"error": {"code": "not_found", "message": "no experiment named `x`"}})
            return
        body = {
            "path": self.path,
            "auth": self.headers.get("Authorization"),
            "peer": self.client_address[1],
        }
        self._send(200, body)
        if self.path == "/drop":
            self.close_connection = True

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def fake_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_one_connection_is_kept_alive_per_thread(fake_server: str) -> None:
    transport = Transport(fake_server)
    peers = {transport.request("GET", f"/a{i}")["peer"] for i in range(5)}
    assert len(peers) == 1
    other: List[int] = []
    thread = threading.Thread(target=lambda: other.append(transport.request("GET", "/b")["peer"]))
    thread.start()
    thread.join()
    assert other[0] not in peers
    transport.close()


def test_a_dropped_connection_is_reopened_once(fake_server: str) -> None:
    transport = Transport(fake_server)
    first = transport.request("GET", "/drop")["peer"]
    again = transport.request("GET", "/after")  # the old connection is gone: resent on a new one
    assert again["path"] == "/after" and again["peer"] != first
    transport.close()


def test_token_goes_in_the_authorization_header(fake_server: str, monkeypatch) -> None:
    assert Transport(fake_server, token="s3cret").request("GET", "/")["auth"] == "Bearer s3cret"
    monkeypatch.setenv("TUNEFLOW_TOKEN", "from-env")
    assert tuneflow.connect(fake_server).transport.request("GET", "/")["auth"] == "Bearer from-env"
    monkeypatch.delenv("TUNEFLOW_TOKEN")
    assert tuneflow.connect(fake_server).transport.request("GET", "/")["auth"] is None


def test_error_bodies_become_exceptions_with_the_server_message(fake_server: str) -> None:
    with pytest.raises(tuneflow.NotFound) as caught:
        Transport(fake_server).request("GET", "/missing")
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert caught.value.message == "no experiment named `x`"


def test_a_closed_port_is_server_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(tuneflow.ServerUnavailable) as caught:
        tuneflow.connect(f"http://127.0.0.1:{port}").experiments()
    assert caught.value.status is None
    assert f"127.0.0.1:{port}" in caught.value.message


def test_invalid_spec_details_are_listed_in_the_text() -> None:
    error = tuneflow.errors.error_from_response(
        422,
        "Unprocessable Entity",
        json.dumps(
            {
                "error": {
                    "code": "invalid_spec",
                    "message": "2 problems",
                    "details": [
                        {
                            "path": "spec.maxTrialCount",
                            "line": 3,
                            "message": "must be positive",
                            "hint": "use 1 or more",
                        }
                    ],
                }
            }
        ).encode(),
    )
    assert isinstance(error, tuneflow.InvalidInput)
    assert (
        str(error)
        == "2 problems\n  - spec.maxTrialCount (line 3): must be positive (hint: use 1 or more)"
    )


def test_an_error_without_json_keeps_the_text() -> None:
    error = tuneflow.errors.error_from_response(502, "Bad Gateway", b"upstream down")
    assert type(error) is tuneflow.TuneflowError
    assert (error.status, error.code, error.message) == (502, None, "upstream down")
