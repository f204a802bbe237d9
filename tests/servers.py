"""Real protocol peers for tests: an SMTP server (aiosmtpd) and an HTTP webhook receiver.

Both run in threads of the test process on free loopback ports; nothing is mocked.
"""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from authapp.testing import mails as plugin_mails


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, step: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; its value, or AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


@dataclass
class Mailbox:
    """What the SMTP server received, parsed."""

    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    text = staticmethod(plugin_mails.text)  # the plugin's reading of a mail (authapp.testing)


class ClosingController(Controller):
    """aiosmtpd's Controller, whose stop closes every connection first. Its own stop ends the
    loop at once: a connection accepted in that last turn (a second mail of the app's outbox,
    arriving just as a test ends) keeps a transport nobody closes, and its socket is reported
    unclosed, as an error, in whichever later test the garbage collector runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: list[Any] = []

    def factory(self) -> Any:
        session = super().factory()
        self.sessions.append(session)
        return session

    def stop(self, no_assert: bool = False) -> None:
        if self.loop.is_running():
            # Each step in the loop's thread, then a pause for the turns it schedules.
            self._in_loop(self._close_listener)  # connections being accepted finish meanwhile
            self._in_loop(self._close_sessions)  # their connection_lost closes the sockets
        super().stop(no_assert)

    def _in_loop(self, step: Callable[[], None]) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                step()
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(timeout=10)
        time.sleep(0.05)

    def _close_listener(self) -> None:
        assert self.server is not None
        self.server.close()

    def _close_sessions(self) -> None:
        for session in self.sessions:
            if session.transport is not None:
                session.transport.close()


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox
    controller: ClosingController | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller = ClosingController(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@contextmanager
def smtp_server(port: int | None = None) -> Iterator[SmtpServer]:
    """A started SMTP server; `port` when a server's environment named it in advance."""
    server = SmtpServer(port=port or free_port(), mailbox=Mailbox())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server that records every POST; `answer(status, headers, delay)` sets its reply."""

    port: int
    deliveries: list[Delivery] = field(default_factory=list)
    status: int = 200
    reply_headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    httpd: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def answer(
        self, status: int, headers: dict[str, str] | None = None, delay: float = 0.0
    ) -> None:
        self.status, self.reply_headers, self.delay = status, headers or {}, delay

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.deliveries.append(Delivery(self.path, dict(self.headers.items()), body))
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(receiver.status)
                for name, value in receiver.reply_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver(port=free_port())
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


class Tarpit:
    """A TCP listener that accepts connections and never says a word (F4); `accepted` holds
    them, so a test can also tell that nobody connected at all."""

    def __init__(self, port: int | None = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", port or 0))
        self.listener.settimeout(0.1)
        self.port = int(self.listener.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.listener.close()
        for conn in self.accepted:
            conn.close()


class Trickler:
    """An HTTP receiver that reads each request, then answers one byte every `interval` seconds
    and never finishes its headers (F5): a socket timeout starts again with each byte,
    so only a deadline on the whole delivery ends the wait. It stops trickling when closed;
    `requests` counts the requests it has read."""

    ANSWER = b"HTTP/1.1 200 OK\r\nX-Trickle: " + b"." * 100_000

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = int(self.listener.getsockname()[1])
        self.requests = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            received = b""
            try:
                while b"\r\n\r\n" not in received:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    received += chunk
                with self.lock:
                    self.requests += 1
                for index in range(len(self.ANSWER)):
                    if self.stopping.wait(self.interval):
                        return
                    conn.sendall(self.ANSWER[index : index + 1])
            except OSError:
                return  # the client gave up: what a deadline does

    def close(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=5)
        self.listener.close()


@contextmanager
def trickler(interval: float = 0.2) -> Iterator[Trickler]:
    server = Trickler(interval)
    try:
        yield server
    finally:
        server.close()
