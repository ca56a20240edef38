"""Starting a local ``tuneflow serve`` process for the lifetime of a client."""

from __future__ import annotations

import atexit
import collections
import logging
import os
import queue
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import IO, Callable, Deque, Dict, List, Optional, Union

from .client import Client
from .errors import ServerUnavailable

__all__ = ["serve", "LocalServer", "find_binary"]

log = logging.getLogger("tuneflow.server")

READY = re.compile(r"tuneflow serving on (https?://\S+)")
STOP_GRACE_SECONDS = 5.0
KEPT_LINES = 200  # lines of the server's output kept for error messages


def serve(
    store_dir: Union[str, "os.PathLike[str]"] = "runs",
    binary: Optional[str] = None,
    token: Optional[str] = None,
    port: int = 0,
    startup_timeout: float = 30.0,
) -> Client:
    """Starts ``tuneflow serve`` on 127.0.0.1 and returns a client of it.

    The store is ``<store_dir>/tuneflow.db`` (the folder is created). The binary is
    ``binary``, else the ``TUNEFLOW_BIN`` environment variable, else ``tuneflow`` on the
    ``PATH``. ``port=0`` picks a free port. With a ``token`` (default: the
    ``TUNEFLOW_TOKEN`` environment variable; ``""`` for none) the server requires it and
    the client sends it; it reaches the server through its environment, not its command
    line, where other users could read it.

    The server stops (SIGTERM, then SIGKILL after 5 s) when the returned client is closed
    or leaves its ``with`` block, and at the latest when the interpreter exits.

    Raises:
        FileNotFoundError: no tuneflow binary was found.
        ServerUnavailable: the server exited or printed no address within
            ``startup_timeout`` seconds; the message holds what it wrote on stderr.
    """
    executable = find_binary(binary)
    store = Path(store_dir)
    store.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if token is None:
        token = env.get("TUNEFLOW_TOKEN") or None
    if token:
        env["TUNEFLOW_TOKEN"] = token
    else:
        env.pop("TUNEFLOW_TOKEN", None)
    command = [
        executable,
        "serve",
        "--addr",
        f"127.0.0.1:{port}",
        "--store",
        str(store / "tuneflow.db"),
    ]
    server = LocalServer(command, env, startup_timeout)
    return Client(server.url, token=token or "", server=server)


def find_binary(binary: Optional[str] = None) -> str:
    """The path of the tuneflow binary: ``binary``, ``$TUNEFLOW_BIN`` or ``tuneflow`` on PATH."""
    for candidate, origin in (
        (binary, "binary="),
        (os.environ.get("TUNEFLOW_BIN"), "TUNEFLOW_BIN="),
    ):
        if candidate:
            found = shutil.which(candidate)
            if found is None:
                raise FileNotFoundError(
                    f"{origin}{candidate}: no such executable file (build it with `cargo build`)"
                )
            return found
    found = shutil.which("tuneflow")
    if found is None:
        raise FileNotFoundError(
            "the tuneflow binary was not found: pass binary=PATH, set TUNEFLOW_BIN, or put "
            "`tuneflow` on the PATH (`cargo install --path .` in the tuneflow repository)"
        )
    return found


class LocalServer:
    """A ``tuneflow serve`` child process whose output is drained in background threads.

    Attributes:
        process: the :class:`subprocess.Popen` of the server.
        url: the address the server printed, e.g. ``http://127.0.0.1:40123``.
    """

    def __init__(
        self, command: List[str], env: Dict[str, str], startup_timeout: float = 30.0
    ) -> None:
        self.command = command
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.stderr: Deque[str] = collections.deque(maxlen=KEPT_LINES)
        self._first_line: "queue.Queue[Optional[str]]" = queue.Queue()
        self._stdout_lines = 0
        self._lock = threading.Lock()
        self._readers = [
            _reader(self.process.stdout, self._on_stdout, "stdout"),
            _reader(self.process.stderr, self._on_stderr, "stderr"),
        ]
        atexit.register(self.stop)
        try:
            self.url = self._wait_ready(startup_timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def running(self) -> bool:
        """True while the server process has not exited."""
        return self.process.poll() is None

    def stop(self) -> None:
        """Stops the server: SIGTERM, then SIGKILL if it is still there after 5 s. Idempotent."""
        with self._lock:
            atexit.unregister(self.stop)
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        for reader in self._readers:
            reader.join(1.0)

    def _on_stdout(self, line: Optional[str]) -> None:
        """Hands the first stdout line (``None``: stdout closed) to the waiting constructor."""
        if self._stdout_lines == 0:
            self._first_line.put(line)
        elif line is not None:
            log.debug("tuneflow serve: %s", line)
        self._stdout_lines += 1

    def _on_stderr(self, line: Optional[str]) -> None:
        if line is not None:
            log.debug("tuneflow serve (stderr): %s", line)
            self.stderr.append(line)

    def _wait_ready(self, timeout: float) -> str:
        try:
            line = self._first_line.get(timeout=timeout)
        except queue.Empty:
            raise self._start_error(f"printed no address within {timeout:g} s") from None
        if line is None:
            try:
                status = self.process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                status = None
            raise self._start_error(f"exited (status {status}) before it was ready")
        match = READY.search(line)
        if match is None:
            raise self._start_error(f"printed {line!r} instead of its address")
        return match.group(1)

    def _start_error(self, what: str) -> ServerUnavailable:
        self.stop()  # also lets the readers catch the last lines
        stderr = "\n".join(self.stderr).strip() or "(nothing on stderr)"
        command = " ".join(self.command)
        return ServerUnavailable(f"`{command}` {what}; its stderr:\n{stderr}")


def _reader(
    stream: Optional[IO[bytes]], sink: Callable[[Optional[str]], None], name: str
) -> threading.Thread:
    """A daemon thread that reads ``stream`` line by line into ``sink`` until it closes.

    ``sink`` gets each line as text without its line ending, then ``None`` at the end (so
    a server that dies before its first line is noticed).
    """

    def drain() -> None:
        assert stream is not None
        with stream:
            for raw in stream:
                sink(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        sink(None)

    thread = threading.Thread(target=drain, name=f"tuneflow-serve-{name}", daemon=True)
    thread.start()
    return thread
