"""A scripted HTTP server on 127.0.0.1 in a background thread: the base of the fake services tests talk to
(an OpenAI-compatible API, Semantic Scholar), so tests use real HTTP and never the network."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JSONHandler(BaseHTTPRequestHandler):
    """A request handler that answers JSON over keep-alive HTTP/1.1 and logs nothing (test output stays clean)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """`payload` as JSON (bytes as they are); a client that gave up (a timeout test) is no error."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


class LoopbackServer:
    """Subclasses define `_handler_class()` and what their replies are; `enqueue` scripts the next ones."""

    thread_name = "loopback"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._queue: deque = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # set on stop, so a reply that waits (a slow server) ends early
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The server's root, e.g. http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Any:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"{self.thread_name}-{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _push(self, replies) -> None:
        with self._lock:
            self._queue.extend(replies)

    def _pop(self, default: Any = None) -> Any:
        with self._lock:
            return self._queue.popleft() if self._queue else default

    @property
    def pending(self) -> int:
        """Scripted replies not sent yet."""
        with self._lock:
            return len(self._queue)
