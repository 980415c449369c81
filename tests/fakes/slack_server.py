"""A real local HTTP server that plays the Slack Web API, for slack-sdk's WebClient.

Point `WebClient(base_url=fake.base_url)` at it. It records every request (API method, headers,
JSON or form body) and answers `ok` with a generated `ts` and a channel id, unless the test
scripted something else: queued one-off responses (429 with Retry-After, 500, a Slack error such
as invalid_auth, a response slower than the client's timeout) or a standing error per channel.

Slow responses wait on an event that `stop()` sets, so shutting down never waits for them.

File uploads follow the flow slack-sdk's `files_upload_v2` uses: files.getUploadURLExternal
answers an upload URL on this server, the bytes are POSTed there (kept as `uploads`), and
files.completeUploadExternal shares them in a channel or thread (`shared_files()`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["FAKE_TOKEN", "FakeSlack", "Reply", "SharedFile", "SlackCall"]

FAKE_TOKEN = "xoxb-fake-0000-secret-token"  # a test token, checked by the fake


@dataclass(frozen=True)
class SlackCall:
    """One request as the fake Slack saw it."""

    method: str  # e.g. "chat.postMessage"
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True)
class SharedFile:
    """An uploaded file as files.completeUploadExternal shared it."""

    file_id: str
    title: str
    channel: str
    thread_ts: str | None
    data: bytes


@dataclass(frozen=True)
class Reply:
    """A scripted answer; `error` makes an HTTP 200 `{"ok": false}`, `status` an HTTP error."""

    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    delay_s: float = 0.0
    method: str | None = None  # only consumed by a request to this API method

    @classmethod
    def rate_limited(cls, retry_after: int = 1) -> Reply:
        return cls(status=429, error="ratelimited", retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls(status=status)

    @classmethod
    def slack_error(cls, error: str, method: str | None = None) -> Reply:
        return cls(error=error, method=method)

    @classmethod
    def slow(cls, delay_s: float = 5.0) -> Reply:
        return cls(delay_s=delay_s)


@dataclass
class _State:
    calls: list[SlackCall] = field(default_factory=list)
    script: deque[Reply] = field(default_factory=deque)
    channel_errors: dict[str, str] = field(default_factory=dict)
    next_ts: int = 1_772_632_800_000_100  # microsecond-ish counter rendered as "sss.uuuuuu"
    uploads: dict[str, bytes] = field(default_factory=dict)  # file id -> bytes POSTed
    # (channel id, ts) -> the message as last posted or updated (what a reader sees now)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)


class FakeSlack:
    """The server; use as a context manager or call `start()` / `stop()`."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token  # when set, other bearer tokens get invalid_auth
        self._state = _State()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.block_on_close = True  # join handler threads on close: none may linger
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/api/"

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting and inspection ---------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Answers for the next requests, in order (a reply with `method` waits for that one)."""
        with self._state.lock:
            self._state.script.extend(replies)

    def fail_channel(self, channel: str, error: str = "channel_not_found") -> None:
        """Every request for `channel` (name or id) answers this Slack error."""
        with self._state.lock:
            self._state.channel_errors[channel] = error

    @property
    def calls(self) -> list[SlackCall]:
        with self._state.lock:
            return list(self._state.calls)

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]

    @property
    def uploads(self) -> dict[str, bytes]:
        """The bytes POSTed to each upload URL, by file id."""
        with self._state.lock:
            return dict(self._state.uploads)

    def shared_files(self) -> list[SharedFile]:
        """Every file files.completeUploadExternal shared, with the bytes uploaded for it."""
        uploads, shared = self.uploads, []
        for call in self.calls:
            if call.method == "files.completeUploadExternal" and call.body.get("files"):
                for f in json.loads(call.body["files"]):
                    shared.append(SharedFile(f["id"], f.get("title") or "",
                                             str(call.body.get("channel_id", "")),
                                             call.body.get("thread_ts"), uploads.get(f["id"], b"")))
        return shared

    def messages(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The workspace as a reader sees it now: every message posted, by (channel id, ts),
        with the body of its last successful chat.postMessage or chat.update."""
        with self._state.lock:
            return {key: dict(body) for key, body in self._state.messages.items()}

    @staticmethod
    def channel_id(channel: str) -> str:
        """The id the fake gives a channel name (ids are kept as they are)."""
        if not channel.startswith("#"):
            return channel
        return "C" + hashlib.sha1(channel.encode()).hexdigest()[:8].upper()

    # --- answering -------------------------------------------------------------------------

    def _answer(self, call: SlackCall) -> tuple[Reply, dict[str, Any]]:
        with self._state.lock:
            self._state.calls.append(call)
            reply = self._take(call.method)
            channel = str(call.body.get("channel", ""))
            standing = self._state.channel_errors.get(channel) or self._state.channel_errors.get(
                self.channel_id(channel) if channel else ""
            )
            if self.token and call.headers.get("Authorization") != f"Bearer {self.token}":
                reply = Reply(error="invalid_auth")
            elif standing and reply == Reply():
                reply = Reply(error=standing)
            ts = self._new_ts() if call.method == "chat.postMessage" else call.body.get("ts")
            file_id = f"F{len(self._state.calls):08d}"
        if reply.error or reply.status != 200:
            return reply, {"ok": False, "error": reply.error or "internal_error"}
        if call.method == "files.getUploadURLExternal":
            return reply, {"ok": True, "file_id": file_id,
                           "upload_url": self.base_url.replace("/api/", f"/upload/{file_id}")}
        if call.method == "files.completeUploadExternal":
            return reply, {"ok": True, "files": json.loads(call.body.get("files") or "[]")}
        self._keep(call, self.channel_id(channel), str(ts))
        return reply, {"ok": True, "channel": self.channel_id(channel), "ts": ts}

    def _keep(self, call: SlackCall, channel: str, ts: str) -> None:
        """A message as it now reads: posted, or replaced by an update (an update of a message
        never posted is kept too, so a test sees it)."""
        if call.method in ("chat.postMessage", "chat.update"):
            with self._state.lock:
                self._state.messages[channel, ts] = dict(call.body)

    def _store_upload(self, file_id: str, data: bytes) -> None:
        with self._state.lock:
            self._state.uploads[file_id] = data

    def _take(self, method: str) -> Reply:
        for reply in self._state.script:
            if reply.method in (None, method):
                self._state.script.remove(reply)
                return reply
        return Reply()

    def _new_ts(self) -> str:
        self._state.next_ts += 100
        seconds, micros = divmod(self._state.next_ts, 1_000_000)
        return f"{seconds}.{micros:06d}"


def _handler_for(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.path.startswith("/upload/"):  # step 2 of files_upload_v2: the raw bytes
                fake._store_upload(self.path.rsplit("/", 1)[-1], self.rfile.read(length))
                self._send(Reply(), f"OK - {length}")
                return
            raw = self.rfile.read(length).decode()
            method = self.path.rsplit("/", 1)[-1].split("?")[0]
            call = SlackCall(method, dict(self.headers.items()), _parse_body(self.headers, raw))
            reply, payload = fake._answer(call)
            if reply.delay_s and fake._state.stopping.wait(reply.delay_s):
                return  # shutting down: drop the slow answer
            self._send(reply, payload)

        def _send(self, reply: Reply, payload: dict[str, Any] | str) -> None:
            body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            if reply.status >= 500:
                body = b"<html>upstream error</html>"  # Slack's 5xx pages are not JSON
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            if reply.retry_after is not None:
                self.send_header("Retry-After", str(reply.retry_after))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)  # fails when the client gave up (timeout test)
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


def _parse_body(headers: Any, raw: str) -> dict[str, Any]:
    content_type = headers.get("Content-Type", "")
    if "json" in content_type:
        loaded = json.loads(raw or "{}")
        return loaded if isinstance(loaded, dict) else {"_": loaded}
    return dict(parse_qsl(raw))
