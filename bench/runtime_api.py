"""A small AWS Lambda Runtime API emulator for the benchmarks.

It serves the endpoints a runtime client uses (GET /2018-06-01/runtime/invocation/next, POST
.../invocation/{id}/response and .../error, POST /2018-06-01/runtime/init/error) with the usual
headers, and records monotonic timestamps (time.monotonic, CLOCK_MONOTONIC on Linux: comparable
with the same clock read in another process): the first /next of a function process, when each
event was handed out and when its response arrived.

One function process at a time: `start_generation()` before spawning a process gives it a fresh
event queue (a /next still blocked from a killed process is released, not given an event).
Events are queued up front (`submit`); the function takes them one at a time, as in Lambda, so
each invocation's time is the function's own plus the loopback HTTP hops: from just before the
/next answer is written to the arrival of the response's request line.
"""

from __future__ import annotations

import itertools
import json
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:fraudflow-bench"
DEADLINE_S = 30.0


@dataclass
class Invocation:
    request_id: str
    payload: bytes
    handed: float | None = None
    done: float | None = None
    response: bytes | None = None
    error: bytes | None = None

    @property
    def seconds(self) -> float:
        if self.handed is None or self.done is None:
            raise ValueError(f"invocation {self.request_id} did not complete")
        return self.done - self.handed


@dataclass
class Generation:
    """Everything about one function process."""

    events: queue.Queue = field(default_factory=queue.Queue)
    invocations: dict[str, Invocation] = field(default_factory=dict)
    first_next: float | None = None
    completed: int = 0
    init_error: bytes | None = None


class RuntimeApi:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.generation = Generation()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def close(self) -> None:
        self.start_generation()
        self._server.shutdown()
        self._server.server_close()

    def start_generation(self) -> Generation:
        """A fresh queue and records for the next function process."""
        with self._lock:
            old = self.generation
            self.generation = Generation()
        old.events.put(None)  # release a /next still waiting for the killed process
        return self.generation

    def submit(self, payloads: list[bytes]) -> list[Invocation]:
        generation = self.generation
        queued = []
        for payload in payloads:
            invocation = Invocation(f"bench-{next(self._ids):08d}", payload)
            with self._lock:
                generation.invocations[invocation.request_id] = invocation
            generation.events.put(invocation)
            queued.append(invocation)
        return queued

    def wait(self, invocations: list[Invocation], timeout: float, alive=lambda: True) -> None:
        """Until every one has a response or an error (or the init failed, or `alive()` is false)."""
        generation = self.generation
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if all(i.done is not None for i in invocations):
                    return
                if generation.init_error is not None:
                    raise RuntimeError(f"init error: {generation.init_error.decode(errors='replace')}")
                if not alive():
                    raise RuntimeError("the function process exited")
                left = deadline - time.monotonic()
                if left <= 0:
                    done = sum(i.done is not None for i in invocations)
                    raise TimeoutError(f"{done} of {len(invocations)} invocations answered in {timeout} s")
                self._changed.wait(min(left, 0.25))

    # Called by the handler threads.
    def _next(self, generation: Generation) -> Invocation | None:
        with self._lock:
            if generation.first_next is None:
                generation.first_next = time.monotonic()
        return generation.events.get()

    def _finish(self, generation: Generation, request_id: str, body: bytes, arrived: float, error: bool) -> bool:
        with self._changed:
            invocation = generation.invocations.get(request_id)
            if invocation is None or invocation.done is not None:
                return False
            if error:
                invocation.error = body
            else:
                invocation.response = body
            invocation.done = arrived
            generation.completed += 1
            self._changed.notify_all()
            return True

    def _init_error(self, generation: Generation, body: bytes) -> None:
        with self._changed:
            generation.init_error = body or b"(empty)"
            self._changed.notify_all()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A killed function process resets its connections: expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the runtime clients expect
    disable_nagle_algorithm = True

    def parse_request(self) -> bool:
        # Right after the request line was read: the arrival time of a response.
        self.arrived = time.monotonic()
        return super().parse_request()

    def log_message(self, format: str, *args) -> None:
        pass

    @property
    def api(self) -> RuntimeApi:
        return self.server.api  # type: ignore[attr-defined]

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        # One write for status line, headers and body: no Nagle / delayed-ACK stalls.
        lines = [f"HTTP/1.1 {status} {'OK' if status < 300 else 'Error'}",
                 "Content-Type: application/json", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.wfile.flush()

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        if self.path != f"{PREFIX}/invocation/next":
            self._send(404, b'{"errorMessage": "not found"}')
            return
        generation = self.api.generation
        invocation = self.api._next(generation)
        if invocation is None:  # the process this was for is gone
            self.close_connection = True
            self._send(410, b'{"errorMessage": "gone"}')
            return
        deadline_ms = int((time.time() + DEADLINE_S) * 1000)
        # Taken before the write: the response cannot arrive before it, whichever thread runs.
        invocation.handed = time.monotonic()
        self._send(200, invocation.payload, {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
            "Lambda-Runtime-Trace-Id": f"Root=1-00000000-{invocation.request_id:0>24};Sampled=0",
        })

    def do_POST(self) -> None:
        arrived = self.arrived
        body = self._body()
        generation = self.api.generation
        parts = self.path.removeprefix(PREFIX).strip("/").split("/")
        if parts == ["init", "error"]:
            self.api._init_error(generation, body)
            self._send(202, b'{"status": "OK"}')
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            known = self.api._finish(generation, parts[1], body, arrived, error=parts[2] == "error")
            if known:
                self._send(202, b'{"status": "OK"}')
            else:
                self._send(400, json.dumps({"errorMessage": f"unknown request id {parts[1]}"}).encode())
        else:
            self._send(404, b'{"errorMessage": "not found"}')
