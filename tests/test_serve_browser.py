"""End to end in a real browser: headless Chromium (Debian's) driven by Playwright.

A real uvicorn server runs the app in a thread, with the tiny checkpoint as its model
(or the model named by TINCT_E2E_MODEL, e.g. ``default``). On ``/`` a grey photo is
uploaded, the colorized image must appear and download as a PNG; on ``/study`` five
votes are cast and ``/study/results`` must count them. Screenshots go to
``$TINCT_ARTIFACTS`` (default ``test-artifacts/``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from tinct.serve import ServeSettings, create_app
from conftest import make_photo

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium is not installed at {CHROMIUM} "
                                                     "(Debian: apt-get install chromium; .ci/run installs it)"),
]


class ServerThread:
    """uvicorn serving ``app`` on a free loopback port, in a background thread."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    study = root / "study"
    study.mkdir()
    for i in range(3):
        make_photo(240, 160, seed=10 + i).save(study / f"photo{i}.jpg", quality=92)
    model = os.environ.get("TINCT_E2E_MODEL", f"tiny={tiny_checkpoint}")
    settings = ServeSettings(models=[model], db=root / "db" / "study.sqlite", study_data=study)
    with ServerThread(create_app(settings)) as running:
        yield running


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        context.close()
        browser.close()
        assert not errors, f"JavaScript errors in the page: {errors}"


def test_colorize_page_upload_and_download(server, page, artifacts, tmp_path):
    photo = tmp_path / "grey photo.jpg"
    make_photo(320, 224, seed=3).convert("L").save(photo, quality=92)
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelectorAll('#model option').length > 0")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("body[data-state=done]")
    assert page.is_visible("#compare") and "Done" in page.inner_text("#status")
    shown = page.eval_on_selector("#after", "c => [c.width, c.height]")
    assert shown == [320, 224]
    # The displayed result has colour: mean |a|+|b|-ish spread between channels, read back from its canvas.
    spread = page.evaluate("""() => {
        const c = document.getElementById('after');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let s = 0;
        for (let i = 0; i < d.length; i += 4) s += Math.max(d[i], d[i+1], d[i+2]) - Math.min(d[i], d[i+1], d[i+2]);
        return s / (d.length / 4); }""")
    assert spread > 2, "the result looks grey"
    page.screenshot(path=str(artifacts / "serve-colorize.png"), full_page=True)

    page.fill("#split", "80")  # the before/after slider moves the clip
    page.dispatch_event("#split", "input")
    assert "80%" in page.eval_on_selector("#after", "c => c.style.clipPath")

    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename == "grey photo-colorized.png"
    saved = tmp_path / "downloaded.png"
    download.save_as(saved)
    with Image.open(saved) as im:
        assert im.format == "PNG" and im.size == (320, 224)


def test_colorize_page_shows_errors(server, page, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    page.goto(server.url + "/")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("body[data-state=error]")
    assert "not an image" in page.inner_text("#status")


def test_study_five_votes_then_results(server, page, artifacts):
    page.goto(server.url + "/study")
    for i in range(5):
        page.wait_for_selector("body[data-state=ready]")
        sizes = page.evaluate("[0, 1].map(i => document.getElementById('img' + i).naturalWidth)")
        assert min(sizes) > 0, "a study image did not load"
        if i == 0:
            page.screenshot(path=str(artifacts / "serve-study.png"), full_page=True)
        page.click(f"#choice{i % 2}")
        page.wait_for_function(f"document.getElementById('votes').textContent === '{i + 1}'")
    page.goto(server.url + "/study/results")
    assert page.inner_text("#total") == "5"
    assert "Fooling rate" in page.inner_text("#results")
    page.screenshot(path=str(artifacts / "serve-results.png"), full_page=True)


def test_api_docs_render_offline(server, page, artifacts):
    page.goto(server.url + "/docs")
    page.get_by_text("/api/colorize", exact=True).first.wait_for()
    page.screenshot(path=str(artifacts / "serve-docs.png"))


@pytest.mark.skipif(not (Path(__file__).parents[1] / "src/tinct/weights/restore-damage.safetensors").is_file(),
                    reason="the bundled damage model is not in this checkout")
def test_restore_first_shows_the_restored_photo_before_colouring(server, page, artifacts, tmp_path):
    import numpy as np

    from test_restore import scratched, smooth_grey

    clean = smooth_grey(320, 224, seed=5)
    damaged, mask = scratched(clean, 5)
    photo = tmp_path / "old print.png"
    Image.fromarray(damaged).save(photo)
    read_before = """() => {
        const c = document.getElementById('before');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const out = [];
        for (let i = 0; i < d.length; i += 4) out.push(d[i + 1]);
        return out; }"""
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelectorAll('#model option').length > 0")
    if page.is_checked("#restore"):
        page.uncheck("#restore")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("body[data-state=done]")
    as_sent = np.array(page.evaluate(read_before), float).reshape(224, 320)
    page.check("#restore")  # the photo goes again, restored; the slider's "before" side shows it
    page.wait_for_selector("body[data-state=done]")
    restored = np.array(page.evaluate(read_before), float).reshape(224, 320)
    assert "restored" in page.get_attribute("#before", "aria-label")
    error_sent, error_restored = np.abs(as_sent - clean)[mask].mean(), np.abs(restored - clean)[mask].mean()
    assert error_restored < 0.4 * error_sent, (error_sent, error_restored)
    page.fill("#split", "50")
    page.dispatch_event("#split", "input")
    page.screenshot(path=str(artifacts / "serve-restore.png"), full_page=True)
    page.uncheck("#restore")
    page.wait_for_selector("body[data-state=done]")
    assert np.abs(np.array(page.evaluate(read_before), float).reshape(224, 320) - as_sent).max() <= 1
