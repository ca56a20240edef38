"""The HTTP transport: JSON requests over keep-alive connections, one per thread."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
import weakref
from typing import Any, Dict, Optional, Tuple

from ._version import __version__
from .errors import ServerUnavailable, error_from_response

# Errors that mean a kept-alive connection was closed by the server while idle (or was
# left unusable by an interrupted request). A request that fails this way on a reused
# connection was not processed, so it is sent again once on a new connection.
_DROPPED = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    http.client.ImproperConnectionState,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)

_JSON = "application/json"


class Transport:
    """Sends requests to one server; each thread keeps its own persistent connection."""

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: "weakref.WeakSet[http.client.HTTPConnection]" = weakref.WeakSet()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: Optional[bytes] = None,
        content_type: str = _JSON,
    ) -> Any:
        """Sends one request and returns the decoded JSON answer (``None`` when empty).

        ``body`` is encoded as JSON; ``raw`` is sent as it is with ``content_type``.
        Raises a :class:`~tuneflow.TuneflowError` subclass for an error answer, and
        :class:`~tuneflow.ServerUnavailable` when the server cannot be reached.
        """
        headers = {"Accept": _JSON, "User-Agent": f"tuneflow-python/{__version__}"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        payload = raw
        if body is not None:
            payload = json.dumps(body, allow_nan=False).encode("utf-8")
        if payload is not None:
            headers["Content-Type"] = content_type
        status, reason, data = self._exchange(method, self._prefix + path, payload, headers)
        if status >= 400:
            raise error_from_response(status, reason, data)
        if not data:
            return None
        return json.loads(data.decode("utf-8"))

    def close(self) -> None:
        """Closes the connections of every thread (each reopens on its next request)."""
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            conn.close()

    def release(self) -> None:
        """Closes and forgets the calling thread's connection (for threads that end)."""
        conn = self._local.__dict__.pop("conn", None)
        if conn is not None:
            conn.close()
            with self._lock:
                self._connections.discard(conn)

    def _exchange(
        self, method: str, path: str, payload: Optional[bytes], headers: Dict[str, str]
    ) -> Tuple[int, str, bytes]:
        conn = self._connection()
        reused = conn.sock is not None
        try:
            return _round_trip(conn, method, path, payload, headers)
        except _DROPPED as err:
            conn.close()
            if not reused:
                raise self._unavailable(err) from err
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            raise self._unavailable(err) from err
        try:
            return _round_trip(conn, method, path, payload, headers)
        except (OSError, http.client.HTTPException) as err:
            conn.close()
            raise self._unavailable(err) from err

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = (
                http.client.HTTPSConnection
                if self._scheme == "https"
                else http.client.HTTPConnection
            )
            conn = cls(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
            with self._lock:
                self._connections.add(conn)
        return conn

    def _unavailable(self, err: Exception) -> ServerUnavailable:
        if isinstance(err, TimeoutError):
            text = f"no answer from the tuneflow server at {self.url} within {self._timeout:g} s"
        else:
            text = f"cannot reach the tuneflow server at {self.url}: {err or type(err).__name__}"
        return ServerUnavailable(text)


def _round_trip(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    payload: Optional[bytes],
    headers: Dict[str, str],
) -> Tuple[int, str, bytes]:
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    data = response.read()  # read it all, so the connection can carry the next request
    return response.status, response.reason, data
