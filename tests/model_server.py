"""A local HTTP file server for download tests: byte ranges, broken and slow transfers.

Serves ``files`` (URL path → bytes) on 127.0.0.1. ``mode`` changes how it
answers:

- ``"normal"``: 200, or 206 for a ``Range: bytes=N-`` request
- ``"break"``: announces the full length, sends ``break_after`` bytes, closes
- ``"ignore-range"``: always 200 with the whole file
- ``"slow"``: like normal, ``delay_s`` between 16 KiB chunks

Every request is logged, in the order they arrive, as ``[path, range header
or None, bytes sent]``.
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 16 * 1024


class ModelServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.mode = "normal"
        self.break_after = 0
        self.delay_s = 0.0
        self.log: list[list] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def requests_for(self, path: str) -> list[tuple[str | None, int]]:
        """(range header, bytes sent) of every request for ``path``."""
        return [(rng, sent) for p, rng, sent in self.log if p == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(server: ModelServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            data = server.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            wanted = self.headers.get("Range")
            entry = [self.path, wanted, 0]
            server.log.append(entry)
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
            if match and server.mode != "ignore-range":
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if server.mode == "break":
                body = body[: server.break_after]
            for i in range(0, len(body), CHUNK):
                entry[2] += len(body[i : i + CHUNK])  # counted before the client can have it
                self.wfile.write(body[i : i + CHUNK])
                if server.mode == "slow":
                    time.sleep(server.delay_s)
            if server.mode == "break":
                self.close_connection = True

    return Handler
