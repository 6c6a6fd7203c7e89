"""The chat page (given, not graded): ``course serve`` serves ``static/chat.html`` at ``/``; in a
real browser, typing a message streams an answer from ``/v1/chat/completions``.

The browser is headless Chromium (Debian's ``chromium`` package), driven through the Chrome
DevTools Protocol over a websocket; the test skips with a reason where no Chromium is found.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time

import httpx
import pytest

from .serving_fixtures import course_server_fixture, free_port, raises_server_errors, require_chat_template  # noqa: F401

pytestmark = [pytest.mark.task(8), pytest.mark.scaffold]

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@raises_server_errors
def test_the_chat_page_is_served(course_server):
    page = httpx.get(course_server.url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/v1/chat/completions" in page.text


@raises_server_errors
def test_typing_a_message_streams_an_answer_in_chromium(course_server):
    require_chat_template()
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if browser is None:
        pytest.skip("needs headless Chromium (Debian: apt-get install chromium); none found on PATH")
    websockets = pytest.importorskip("websockets", reason="needs the websockets package to drive Chromium")
    port = free_port()
    profile = tempfile.mkdtemp(prefix="chat-page-")
    process = subprocess.Popen([browser, "--headless=new", "--no-sandbox", "--disable-gpu",
                                f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
                                course_server.url + "/"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        target = None
        while target is None and time.monotonic() < deadline:
            try:
                pages = httpx.get(f"http://127.0.0.1:{port}/json", timeout=2).json()
                target = next((p for p in pages if p.get("type") == "page" and course_server.url in p.get("url", "")),
                              None)
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert target is not None, "Chromium did not open the chat page"

        async def drive() -> str:
            async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
                counter = iter(range(1, 10_000))

                async def evaluate(expression: str):
                    ident = next(counter)
                    await ws.send(json.dumps({"id": ident, "method": "Runtime.evaluate",
                                              "params": {"expression": expression, "returnByValue": True}}))
                    while True:
                        message = json.loads(await ws.recv())
                        if message.get("id") == ident:
                            return message.get("result", {}).get("result", {}).get("value")

                for _ in range(100):  # wait until the page has loaded its model name
                    if await evaluate("document.getElementById('model').textContent") not in (None, "?"):
                        break
                    await asyncio.sleep(0.1)
                assert await evaluate("document.getElementById('temperature').value") == "0", \
                    "the page should be greedy by default"
                # Send, then press Send again at once (a second message while the answer streams):
                # the button is disabled, and the second message is not sent in the middle.
                submitted = await evaluate(
                    "document.getElementById('input').value = 'Where does Ana live?';"
                    "document.getElementById('max').value = '12';"
                    "document.getElementById('form').requestSubmit();"
                    "const disabled = document.getElementById('send').disabled;"
                    "document.getElementById('input').value = 'And Tom?';"
                    "document.getElementById('form').requestSubmit(); disabled")
                assert submitted is True, "Send stays enabled while an answer streams"
                for _ in range(300):
                    done = await evaluate("(document.querySelector('.assistant[data-done]') || {}).textContent")
                    if done is not None:
                        history = await evaluate("JSON.stringify(messages.map(m => m.role))")
                        enabled = await evaluate("!document.getElementById('send').disabled")
                        return done, json.loads(history), enabled
                    await asyncio.sleep(0.1)
                raise AssertionError("no streamed answer appeared within 30 s")

        answer, roles, enabled = asyncio.run(drive())
        assert answer.strip(), "the answer stayed empty"
        assert roles == ["user", "assistant"], f"the history is out of order: {roles}"
        assert enabled, "Send stays disabled after the answer"
        client_answer = httpx.post(course_server.base_url + "/chat/completions", timeout=60, json={
            "messages": [{"role": "user", "content": "Where does Ana live?"}], "max_tokens": 12,
            "temperature": 0}).json()
        assert answer == client_answer["choices"][0]["message"]["content"], "the page's greedy answer"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)
