"""What the engines' fake model APIs share: a threaded HTTP server on 127.0.0.1 that answers
each request with the next scripted reply and keeps a log of what it saw.

Each fake (`anthropic_stream`, `responses_stream`, `gemini_stream`) brings its API's checks,
its reply type, the ids its replies hand out for tool calls (`ids_of`) and its handler; the
scripting, the log and the server's life are here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar

R = TypeVar("R")


@dataclass
class Seen(Generic[R]):
    """One request the fake received, and what it answered (`refused`: the check's message;
    `ids`: the tool-call ids, or names, its reply handed out)."""

    path: str
    headers: dict[str, str]
    body: Any
    refused: str = ""
    reply: R | None = None
    ids: list[str] = field(default_factory=list)


class ScriptedServer(Generic[R]):
    """`with Fake(key) as fake:`; `fake.script(...)`; `fake.seen`, `refusals()`, `answered()`.

    A request with no reply left gets none (`take` returns None, the handler answers 500) and
    is counted in `unscripted`, so a test that runs past its script fails loudly.
    """

    def __init__(self, key: str, handler: type[BaseHTTPRequestHandler]) -> None:
        self.key = key
        # A reply, or a function of the request's body that makes one (to name a path the
        # engine told the model, such as its working directory).
        self.replies: list[R | Callable[[Any], R]] = []
        self.seen: list[Seen[R]] = []
        self.unscripted = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.fake = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def url(self) -> str:
        """The base URL to give the engine (the origin, unless the API wants a path)."""
        return self.origin

    def script(self, *replies: R | Callable[[Any], R]) -> None:
        """Answer the next requests with `replies` (or functions of the body), in order."""
        with self.lock:
            self.replies.extend(replies)

    def refusals(self) -> list[str]:
        """Why requests were refused (a strict check failed); empty when all were well-formed."""
        return [s.refused for s in self.seen if s.refused]

    def answered(self) -> list[Seen[R]]:
        """The requests that got a scripted reply, in order."""
        return [s for s in self.seen if s.reply is not None]

    def issued_ids(self) -> set[str]:
        """Every tool-call id (or name) a reply handed out so far."""
        with self.lock:
            return {i for s in self.seen for i in s.ids}

    def ids_of(self, reply: R, number: int) -> list[str]:
        """The tool-call ids `reply` hands out as the `number`th request (none by default)."""
        return []

    def take(self, seen: Seen[R]) -> R | None:
        """Log `seen`; its scripted reply, or None when refused or unscripted."""
        with self.lock:
            self.seen.append(seen)
            if seen.refused:
                return None
            if not self.replies:
                self.unscripted += 1
                return None
            scripted = self.replies.pop(0)
            reply: R = scripted(seen.body) if callable(scripted) else scripted
            seen.reply = reply
            seen.ids = self.ids_of(reply, len(self.seen))
            return reply


class FakeHandler(BaseHTTPRequestHandler):
    """The handlers' shared plumbing: quiet, HTTP/1.1, JSON bodies in, sized bodies out."""

    protocol_version = "HTTP/1.1"
    extra_headers: tuple[tuple[str, str], ...] = ()

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def request_json(self) -> tuple[dict[str, str], Any]:
        """The request's headers (lower-case names) and its JSON body (None if not JSON)."""
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            return headers, json.loads(raw)
        except ValueError:
            return headers, None

    def send_body(self, status: int, data: bytes, content_type: str) -> None:
        """Answer with `data`; a client that already went away is not an error."""
        try:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            for name, value in self.extra_headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
