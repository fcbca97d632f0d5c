"""The reports as a person sees them: a real headless Chromium (Debian's chromium-headless-shell, installed by
.ci/run) opens a run page and a sweep page, every image must decode, every link must resolve, the console must
stay free of errors, and a screenshot is saved under the test's temporary folder.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages separated by NUL
bytes on file descriptors 3 and 4), so no driver package and no network port are needed. Where no browser can be
had the test says so in its skip reason; on CI (CI=true) a missing browser is a failure.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

from consolidate.sweep.run import run_sweep
from tests.conftest import REPO, TINY

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def _browser() -> str | None:
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


@pytest.fixture(scope="module")
def browser_path() -> str:
    path = _browser()
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no headless Chromium on CI: .ci/run installs Debian's chromium-headless-shell")
        pytest.skip("no headless Chromium here (apt-get install chromium-headless-shell to run this test)")
    return path


class Page:
    """One Chromium over the DevTools pipe, one tab."""

    def __init__(self, binary: str, profile: Path):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
                f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        # the browser reads commands on fd 3 and writes replies on fd 4: a small exec wrapper puts the pipe ends
        # there (dup'd above 9 first, so that neither overwrites the other)
        wrapper = ("import os, sys; r, w = os.dup(int(sys.argv[1]) ), os.dup(int(sys.argv[2])); "
                   "r, w = [os.dup2(fd, 20 + i) for i, fd in enumerate((r, w))]; os.dup2(r, 3); os.dup2(w, 4); "
                   "os.set_inheritable(3, True); os.set_inheritable(4, True); os.execvp(sys.argv[3], sys.argv[3:])")
        self.proc = subprocess.Popen([sys.executable, "-c", wrapper, str(to_chrome_r), str(from_chrome_w), *args],
                                     pass_fds=(to_chrome_r, from_chrome_w), stdout=subprocess.DEVNULL,
                                     stderr=open(os.environ.get("CHROME_LOG", os.devnull), "w"))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, session: bool = False, timeout_s: float = 30, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout_s: float = 30) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            for e in self.events:
                if e.get("method") == method:
                    self.events.remove(e)
                    return e
            self.events.append(self._read(deadline))

    def open(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str):
        res = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                        awaitPromise=True)
        return res["result"].get("value")

    def console_errors(self) -> list[str]:
        errors = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text", "exception"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(f"{p['entry'].get('url', '')}: {p['entry'].get('text', '')}")
        return errors

    def screenshot(self, path: Path) -> Path:
        height = int(self.js("document.documentElement.scrollHeight"))
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=1200, height=min(height, 8000),
                  deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout_s=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture
def page(browser_path, tmp_path):
    p = Page(browser_path, tmp_path / "profile")
    yield p
    p.close()


def _check_page(page: Page, index: Path, shot: Path) -> dict:
    """Open index.html; every image decoded, every link to an existing file or anchor, no console error."""
    page.open(index.as_uri())
    images = page.js("[...document.images].map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0, "
                     "w: i.naturalWidth, embedded: i.src.startsWith('data:image/png;base64,')}))")
    assert images and all(i["ok"] for i in images), [i for i in images if not i["ok"]]
    assert all(i["embedded"] for i in images)  # self-contained: the page can be mailed alone
    assert all(i["w"] >= 400 for i in images)
    links = page.js("[...document.links].map(a => a.href)")
    assert links
    for href in links:
        url = urlparse(href)
        if url.scheme == "file":
            assert Path(unquote(url.path)).is_file(), href
            if url.fragment:
                assert page.js(f"!!document.getElementById({json.dumps(url.fragment)})"), href
        else:
            pytest.fail(f"a link leaves the report folder: {href}")
    assert page.console_errors() == []
    page.screenshot(shot)
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000
    return {"images": len(images), "links": len(links), "text": page.js("document.body.innerText")}


def test_run_page_in_a_real_browser(page, tmp_path):
    data = {**TINY, "vms": [{**TINY["vms"][0], "count": 6}]}  # 6 VMs of 1 GiB on one 4 GiB host: 2 rejected
    data["on_unplaceable"] = "reject"
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    r = subprocess.run(["python", "-m", "consolidate", "run", str(f), "--out", str(out), "-q"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    seen = _check_page(page, out / "index.html", tmp_path / "run.png")
    assert seen["images"] == 3
    text = seen["text"]
    assert "Warning: 2 of 6 VMs fit no host and were rejected" in text
    assert "hp-proliant-ml110-g4" in text and "Headroom" in text and "By host type" in text
    assert "kWh" in text and "MiB" in text


def test_sweep_page_in_a_real_browser(page, tmp_path):
    data = {**TINY, "sweep": {"grid": {"vms.0.count": [1, 2, 3], "placement": ["first-fit", "pabfd"]}}}
    f = tmp_path / "sweep.yaml"
    f.write_text(yaml.safe_dump(data))
    res = run_sweep(f, out=tmp_path / "sweep", workers=1)
    seen = _check_page(page, res.out_dir / "index.html", tmp_path / "sweep.png")
    assert "Energy against SLA" not in seen["text"]  # a chart, not text
    assert seen["images"] >= 1 + 2  # the trade-off chart and a chart per metric and swept field
    assert "energy_kwh (kWh)" in seen["text"]


def test_the_ci_script_installs_the_browser_and_keeps_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "apt-get update" in ci and "apt-get install -y -qq chromium-headless-shell" in ci
    readme = (REPO / "README.md").read_text()
    assert "pip install -e '.[test]' && pytest" in readme and "pip install -e '.[test]' && pytest" in ci
