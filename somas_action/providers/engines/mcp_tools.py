"""SOMAS's repository tools offered to engines over MCP, every call reported.

An `McpToolServer` serves the tool loop's read tools (`list_files`, `read_file`, `search`) and
`run_tests` over MCP's streamable HTTP on 127.0.0.1, for the length of one engine run. The
implementations are injected (`RepositoryTools`: the tool loop's, running tests in the
sandbox); each call, answered or failed, is reported to `on_call` as a `ToolCallRecord`, which
`as_observation` turns into an `engine_tool_called` event. A random bearer token keeps other
local processes out: the engine gets it in its MCP settings.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio.to_thread
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from starlette.types import ASGIApp, Receive, Scope, Send

from somas_action.core.events import EventType
from somas_action.core.ports import Observation
from somas_action.providers.engines.catalog import MCP_SERVER_NAME, McpEndpoint

DEFAULT_MAX_OUTPUT_CHARS = 20_000
START_POLLS = 200  # x 25 ms: how long start() waits for the server to listen
MCP_PATH = "/mcp"


class RepositoryTools(Protocol):
    """The tool loop's tools, bound to one scratch checkout (another module implements them)."""

    def list_files(self, prefix: str) -> str:
        """Tracked files under `prefix`, one a line."""

    def read_file(self, path: str, start: int, end: int) -> str:
        """Lines `start`..`end` of `path`, numbered."""

    def search(self, pattern: str, prefix: str) -> str:
        """`path:line:text` for each line matching `pattern` under `prefix`."""

    def run_tests(self) -> str:
        """Run the repository's tests in the sandbox; a report of the results."""


@dataclass(frozen=True)
class ToolCallRecord:
    """One call an engine made: arguments, whether it worked, and its result's digest and size."""

    tool: str
    arguments: dict[str, Any]
    ok: bool
    result_sha256: str
    result_chars: int
    output: str


def as_observation(record: ToolCallRecord) -> Observation:
    """The event for a call (the full output goes to an artifact, not the event)."""
    return Observation(
        EventType.ENGINE_TOOL_CALLED,
        "ok" if record.ok else "error",
        {
            "tool": record.tool,
            "arguments": record.arguments,
            "result_sha256": record.result_sha256,
            "result_chars": record.result_chars,
        },
    )


class McpToolServer:
    """`with McpToolServer(tools, on_call) as endpoint:` serves the tools until the block ends."""

    def __init__(
        self,
        tools: RepositoryTools,
        on_call: Callable[[ToolCallRecord], None],
        *,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    ) -> None:
        self.tools = tools
        self.on_call = on_call
        self.max_output_chars = max_output_chars
        self.token = secrets.token_urlsafe(24)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> McpEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> McpEndpoint:
        """Listen on a free port of 127.0.0.1; return the URL and token for the engine."""
        app = _RequireBearer(build_mcp_app(self).streamable_http_app(), self.token)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [listener]}, daemon=True
        )
        self._thread.start()
        for _ in range(START_POLLS):
            if self._server.started:
                return McpEndpoint(url=f"http://127.0.0.1:{port}{MCP_PATH}", token=self.token)
            time.sleep(0.025)
        self.stop()
        raise RuntimeError("the MCP tool server did not start listening within 5 seconds")

    def stop(self) -> None:
        """Stop serving (open engine connections are closed)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def call(self, tool: str, arguments: dict[str, Any], work: Callable[[], str]) -> str:
        """Run one tool call, bound its output, report it; a failure becomes a ToolError."""
        try:
            output, ok = self._bounded(work()), True
        except Exception as error:  # any failure is the model's to see, not a server crash
            output, ok = str(error) or type(error).__name__, False
        digest = hashlib.sha256(output.encode()).hexdigest()
        self.on_call(ToolCallRecord(tool, arguments, ok, digest, len(output), output))
        if not ok:
            raise ToolError(output)
        return output

    def _bounded(self, output: str) -> str:
        if len(output) <= self.max_output_chars:
            return output
        cut = len(output) - self.max_output_chars
        return f"{output[: self.max_output_chars]}\n[... {cut} more characters not shown]"


def build_mcp_app(server: McpToolServer) -> MCPServer:
    """The MCP server object with SOMAS's four tools, each routed through `server.call`."""
    mcp = MCPServer(
        name=MCP_SERVER_NAME, instructions="SOMAS's repository tools.", log_level="WARNING"
    )
    tools = server.tools

    def threaded(tool: str, arguments: dict[str, Any], work: Callable[[], str]) -> Awaitable[str]:
        # Tests can take minutes: run calls off the event loop so the server stays responsive.
        return anyio.to_thread.run_sync(server.call, tool, arguments, work)

    async def list_files(prefix: str = "") -> str:
        """List the repository's tracked files under a path prefix ("" for all)."""
        return await threaded("list_files", {"prefix": prefix}, lambda: tools.list_files(prefix))

    async def read_file(path: str, start: int = 1, end: int = 200) -> str:
        """Read lines start..end (1-based, inclusive) of a file, with line numbers."""
        arguments = {"path": path, "start": start, "end": end}
        return await threaded("read_file", arguments, lambda: tools.read_file(path, start, end))

    async def search(pattern: str, prefix: str = "") -> str:
        """Search tracked files under a prefix for a regular expression; path:line:text."""
        arguments = {"pattern": pattern, "prefix": prefix}
        return await threaded("search", arguments, lambda: tools.search(pattern, prefix))

    async def run_tests() -> str:
        """Run the repository's own test suite in SOMAS's sandbox and report the results."""
        return await threaded("run_tests", {}, tools.run_tests)

    for tool in (list_files, read_file, search, run_tests):
        mcp.add_tool(tool, structured_output=False)
    return mcp


class _RequireBearer:
    """ASGI wrapper: HTTP requests without `Authorization: Bearer <token>` get 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"missing or wrong bearer token"})
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        return secrets.compare_digest(given, self.expected)
