"""The colour-hint editor in a real browser (headless Debian Chromium driven by Playwright).

- With any hint model (test_guide's hand-wired one): click a point, choose a swatch, add a
  reference photo, undo and redo; the hints JSON the page saves, given to ``tinct colorize
  --hints`` on the same photo, makes the page's image (at most one 8-bit step apart). The
  saturation slider changes the picture without a request; a tall photo fits the screen; a
  390 px phone page is no wider than the screen; a batch of photos comes back as a zip.
- With a model that obeys hints (TINCT_E2E_HINT_MODEL, else the bundled ``default``): the
  output pixel at a chosen swatch's point has the swatch's hue, and the saved hints JSON
  through ``tinct colorize --hints`` makes the page's image. It also writes the editor's screenshots (desktop and phone) to
  ``$TINCT_ARTIFACTS``, and to ``$TINCT_SCREENSHOTS`` (e.g. docs/images) when set.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tinct import checkpoint, color
from tinct.cli import main
from tinct.models import create_model
from tinct.serve import ServeSettings, create_app

from conftest import make_photo
from test_guide import wire
from test_serve_browser import CHROMIUM, CHROMIUM_ARGS, ServerThread

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"Chromium is not installed at {CHROMIUM} "
                                                     "(Debian: apt-get install chromium; .ci/run installs it)"),
]
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "rhea.jpg"
PIXELS_JS = """() => { const c = document.getElementById('after');
    return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"""


def obeying_model() -> str:
    """A model that follows hints: TINCT_E2E_HINT_MODEL (e.g. a trained hint model), else the
    bundled default (which follows them without hint inputs: tinct.Colorizer.follow)."""
    return os.environ.get("TINCT_E2E_HINT_MODEL") or "default"


@pytest.fixture(scope="module")
def wired_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("hint") / "hinty.pt"
    checkpoint.save(path, wire(create_model("effunet_bins313", pretrained=False, hints=True)).eval(), {"size": 64})
    return path


def _serve(model: str, root: Path) -> ServerThread:
    return ServerThread(create_app(ServeSettings(models=[model], db=root / "db" / "study.sqlite")))


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser, width: int = 1100, height: int = 900):
    context = browser.new_context(accept_downloads=True, viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


def _settled(page) -> None:
    """Wait until the page shows the result of its latest edit."""
    page.wait_for_function("document.body.dataset.state === 'done' && "
                           "document.body.dataset.rendered === document.body.dataset.revision")


def _open(page, url: str, photo: Path) -> None:
    page.goto(url + "/")
    page.wait_for_function("document.querySelectorAll('#model option').length > 0")
    page.set_input_files("#file", str(photo))
    _settled(page)


def _click_photo(page, fx: float, fy: float) -> None:
    box = page.locator("#hint-layer").bounding_box()
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])


def _pick_swatch(page, which: int) -> str:
    """Choose the ``which``-th swatch of the selected point (once they are there); its colour."""
    page.wait_for_selector("#swatches:not([aria-busy]) .swatch")
    swatch = page.locator("#swatches .swatch").nth(which)
    colour = swatch.get_attribute("data-colour")
    swatch.click()
    _settled(page)
    return colour


def _page_image(page) -> np.ndarray:
    w, h = page.eval_on_selector("#after", "c => [c.width, c.height]")
    return np.array(page.evaluate(PIXELS_JS), dtype=np.uint8).reshape(h, w, 4)[..., :3]


def _save_hints(page, path: Path) -> dict:
    with page.expect_download() as info:
        page.click("#hints-save")
    info.value.save_as(path)
    return json.loads(path.read_text())


def test_editor_hints_json_gives_the_pages_image_through_the_cli(browser, wired_checkpoint, tmp_path, artifacts):
    photo, ref = tmp_path / "street.jpg", tmp_path / "holiday.png"
    make_photo(320, 224, seed=3).convert("L").save(photo, quality=92)
    make_photo(96, 64, seed=8).save(ref)
    with _serve(f"hinty={wired_checkpoint}", tmp_path) as server:
        page = _page(browser)
        _open(page, server.url, photo)
        assert page.is_visible("#editor") and page.is_visible("#workspace")
        _click_photo(page, 0.25, 0.5)
        first = _pick_swatch(page, 1)
        _click_photo(page, 0.7, 0.3)
        _pick_swatch(page, 0)
        page.set_input_files("#reference", str(ref))
        page.wait_for_selector("#reference-clear:not([hidden])")
        _settled(page)
        # undo takes the reference away, redo brings it back; the image follows
        with_ref = _page_image(page)
        page.locator("#hint-layer").focus()
        page.keyboard.press("Control+z")
        _settled(page)
        assert page.is_hidden("#reference-clear") and not np.array_equal(_page_image(page), with_ref)
        page.keyboard.press("Control+Shift+z")
        _settled(page)
        assert page.is_visible("#reference-clear") and np.array_equal(_page_image(page), with_ref)
        # the keyboard: Tab to a point, Delete removes it, Ctrl+Z brings it back
        page.locator("#hint-layer .hint-point").nth(1).focus()
        page.keyboard.press("Delete")
        _settled(page)
        assert page.locator("#hint-layer .hint-point").count() == 1
        page.keyboard.press("Control+z")
        _settled(page)
        assert page.locator("#hint-layer .hint-point").count() == 2 and np.array_equal(_page_image(page), with_ref)

        saved = _save_hints(page, tmp_path / "street.hints.json")
        assert [p["colour"] for p in saved["points"]][0] == first and len(saved["points"]) == 2
        assert len(saved["reference"]["distribution"]) == 313
        out = tmp_path / "cli.png"
        assert main(["colorize", str(photo), "--model", str(wired_checkpoint), "--hints",
                     str(tmp_path / "street.hints.json"), "-o", str(out), "-q"]) == 0
        cli = np.asarray(Image.open(out).convert("RGB"))
        diff = np.abs(cli.astype(int) - with_ref.astype(int))
        assert diff.max() <= 1, f"page vs tinct colorize --hints: max {diff.max()}, {np.mean(diff > 0):.4%} differ"

        # the saturation slider works in the page: no request, and 0 is grey
        asked = []
        page.on("request", lambda r: asked.append(r.url) if "/api/" in r.url else None)
        page.fill("#saturation", "0")
        page.dispatch_event("#saturation", "input")
        page.wait_for_timeout(300)
        grey = _page_image(page).astype(int)
        assert asked == [] and (grey.max(-1) - grey.min(-1)).max() <= 2
        # the download is the page's image, as a PNG
        page.fill("#saturation", "1")
        page.dispatch_event("#saturation", "input")
        page.wait_for_timeout(300)
        with page.expect_download() as info:
            page.click("#download")
        info.value.save_as(tmp_path / "page.png")
        assert info.value.suggested_filename == "street-colorized.png"
        assert np.array_equal(np.asarray(Image.open(tmp_path / "page.png").convert("RGB")), with_ref)
        page.screenshot(path=str(artifacts / "editor-wired.png"), full_page=True)
        assert not page.errors, page.errors


def test_tall_photos_fit_the_screen_and_the_phone_page_is_not_wider(browser, wired_checkpoint, tmp_path, artifacts):
    tall = tmp_path / "tall.png"
    make_photo(300, 1500, seed=4).convert("L").save(tall)
    with _serve(f"a-model-with-a-long-name-{'x' * 30}={wired_checkpoint}", tmp_path) as server:
        page = _page(browser, 1100, 800)
        _open(page, server.url, tall)
        box = page.locator("#before").bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 800, box  # all of it on the screen
        assert abs(box["width"] / box["height"] - 300 / 1500) < 0.02  # the aspect kept
        phone = _page(browser, 390, 844)
        _open(phone, server.url, tall)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the 390 px page is {width} px wide"
        assert not page.errors and not phone.errors


def test_batch_upload_gives_a_zip(browser, wired_checkpoint, tmp_path):
    files = []
    for i in range(3):
        files.append(tmp_path / f"photo{i}.jpg")
        make_photo(160, 120, seed=20 + i).convert("L").save(files[-1])
    files.append(tmp_path / "notes.txt")
    files[-1].write_text("not a photo")
    with _serve(f"hinty={wired_checkpoint}", tmp_path) as server:
        page = _page(browser)
        page.goto(server.url + "/")
        page.wait_for_function("document.querySelectorAll('#model option').length > 0")
        page.set_input_files("#batch-files", [str(f) for f in files])
        page.wait_for_selector("body[data-batch=done]")
        assert "3 of 4 colorized" in page.inner_text("#batch-status") and "notes.txt" in page.inner_text("#batch-status")
        assert page.eval_on_selector("#batch-progress", "p => p.value") == 1
        with page.expect_download() as info:
            page.click("#batch-download")
        info.value.save_as(tmp_path / "out.zip")
        with zipfile.ZipFile(tmp_path / "out.zip") as z:
            assert sorted(z.namelist()) == ["errors.txt"] + [f"photo{i}-colorized.png" for i in range(3)]
            assert Image.open(io.BytesIO(z.read("photo1-colorized.png"))).size == (160, 120)
        assert not page.errors


def _hue(rgb: np.ndarray) -> tuple[float, float]:
    """(hue in degrees, chroma) of the mean Lab ab of sRGB pixels ``(..., 3)`` uint8."""
    lab = color.rgb_to_lab(rgb.reshape(-1, 1, 3).astype(np.float32) / 255).reshape(-1, 3)
    a, b = lab[:, 1].mean(), lab[:, 2].mean()
    return math.degrees(math.atan2(b, a)) % 360, math.hypot(a, b)


def test_a_chosen_swatch_colours_its_point(browser, tmp_path, artifacts):
    model = obeying_model()
    photo = tmp_path / "rhea.jpg"
    Image.open(EXAMPLE).convert("L").save(photo, quality=95)
    with _serve(f"hints={model}", tmp_path) as server:
        page = _page(browser)
        _open(page, server.url, photo)
        fx, fy = 0.5, 0.45
        before = _page_image(page)
        _click_photo(page, fx, fy)
        page.wait_for_selector("#swatches:not([aria-busy]) .swatch")
        swatches = page.eval_on_selector_all("#swatches .swatch", "bs => bs.map(b => b.dataset.colour)")
        h, w = before.shape[:2]
        y, x = int(fy * h), int(fx * w)
        now, _ = _hue(before[y - 2:y + 3, x - 2:x + 3])
        hues = [_hue(np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)]], np.uint8)) for c in swatches]
        # the swatch whose hue is farthest from the output's there, among clearly coloured ones
        far = max((i for i, (_, c) in enumerate(hues) if c > 15), key=lambda i: abs((hues[i][0] - now + 180) % 360 - 180))
        chosen = _pick_swatch(page, far)
        after = _page_image(page)
        got, chroma = _hue(after[y - 2:y + 3, x - 2:x + 3])
        want = hues[far][0]
        gap = abs((got - want + 180) % 360 - 180)
        _save_hints(page, tmp_path / "rhea.hints.json")
        assert main(["colorize", str(photo), "--model", model, "--hints", str(tmp_path / "rhea.hints.json"),
                     "-o", str(tmp_path / "cli.png"), "-q"]) == 0
        diff = np.abs(np.asarray(Image.open(tmp_path / "cli.png").convert("RGB")).astype(int) - after.astype(int))
        page.screenshot(path=str(artifacts / "editor.png"))
        shots = os.environ.get("TINCT_SCREENSHOTS")
        if shots:
            page.screenshot(path=str(Path(shots) / "editor.png"))
        phone = _page(browser, 390, 844)
        _open(phone, server.url, photo)
        _click_photo(phone, fx, fy)
        _pick_swatch(phone, far)
        phone.screenshot(path=str(artifacts / "editor-phone.png"), full_page=True)
        if shots:
            phone.screenshot(path=str(Path(shots) / "editor-phone.png"), full_page=True)
        assert chroma > 5 and gap <= 30, (f"swatch {chosen} (hue {want:.0f}) chosen, the output there has hue "
                                          f"{got:.0f} (chroma {chroma:.1f}); it was {now:.0f} before")
        assert diff.max() <= 1, f"page vs tinct colorize --hints: max {diff.max()}, {np.mean(diff > 0):.4%} differ"
        assert not page.errors and not phone.errors
