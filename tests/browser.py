"""A page rendered in headless Chromium (Debian's `chromium`), read over the DevTools protocol.

`render(path)` opens a local file in a fresh headless Chromium (its own --user-data-dir, no
sandbox, no GPU, no background networking, no first-run), waits for the load event and returns
what a reader would notice: console errors, uncaught exceptions, failed resources, and every
image with whether it decoded; optionally a PNG screenshot of the whole page.

The protocol is spoken with aiohttp's websocket client (already a dependency): no browser
driver to install.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["CHROMIUM_FLAGS", "Rendered", "chromium", "render"]

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--no-first-run")
START_S = 30.0
LOAD_S = 30.0
WIDTH = 1400


@dataclass
class Rendered:
    """What the page did while loading."""

    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    images: list[dict[str, Any]] = field(default_factory=list)  # {alt, complete, width}
    title: str = ""
    screenshot: bytes | None = None

    @property
    def broken_images(self) -> list[str]:
        return [i["alt"] for i in self.images if not (i["complete"] and i["width"] > 0)]


def chromium() -> str | None:
    """The Chromium binary on PATH, if any."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(path: Path, screenshot: bool = False) -> Rendered:
    binary = chromium()
    if binary is None:
        raise RuntimeError("no chromium on PATH")
    with tempfile.TemporaryDirectory(prefix="sg-chromium-") as profile:
        proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port = _devtools_port(Path(profile), proc)
            return asyncio.run(_render(port, path.resolve().as_uri(), screenshot))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _devtools_port(profile: Path, proc: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + START_S
    marker = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        if marker.exists() and (first := marker.read_text().split("\n")[0]).isdigit():
            return int(first)
        time.sleep(0.05)
    raise RuntimeError("chromium did not open its DevTools port")


class _Session:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.next_id = ws, 0
        self.events: list[dict[str, Any]] = []  # everything the browser said meanwhile

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method,
                                           "params": params}))
        while True:
            message = json.loads((await self.ws.receive(timeout=LOAD_S)).data)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    async def until(self, event: str) -> None:
        if any(e.get("method") == event for e in self.events):
            return
        while True:
            message = json.loads((await self.ws.receive(timeout=LOAD_S)).data)
            self.events.append(message)
            if message.get("method") == event:
                return


async def _render(port: int, url: str, screenshot: bool) -> Rendered:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t.get("type") == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            session = _Session(ws)
            for domain in ("Runtime", "Log", "Page", "Network"):
                await session.call(f"{domain}.enable")
            await session.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=900,
                               deviceScaleFactor=1, mobile=False)
            await session.call("Page.navigate", url=url)
            await session.until("Page.loadEventFired")
            rendered = Rendered(
                images=await _evaluate(session, "Array.from(document.images).map(i => ({alt: "
                                       "i.alt, complete: i.complete, width: i.naturalWidth}))"),
                title=await _evaluate(session, "document.title"))
            rendered.errors = _errors(session.events)
            if screenshot:
                rendered.screenshot = await _screenshot(session)
            return rendered


async def _evaluate(session: _Session, expression: str) -> Any:
    result = await session.call("Runtime.evaluate", expression=expression, returnByValue=True)
    return result["result"].get("value")


async def _screenshot(session: _Session) -> bytes:
    height = await _evaluate(session, "document.documentElement.scrollHeight")
    await session.call("Emulation.setDeviceMetricsOverride", width=WIDTH,
                       height=min(int(height), 8000), deviceScaleFactor=1, mobile=False)
    shot = await session.call("Page.captureScreenshot", format="png")
    return base64.b64decode(shot["data"])


def _errors(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions, error log entries and failed network loads."""
    found = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            found.append("exception: " + str(details.get("exception", {}).get(
                "description", details.get("text"))))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            found.append("log: " + str(params["entry"].get("text")))
        elif method == "Network.loadingFailed":
            found.append("network: " + str(params.get("errorText")))
    return found
