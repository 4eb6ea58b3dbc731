"""The web page's "Restore first" (issue 27) on the REST side: the ``restore`` field of
``POST /api/photos``, ``/api/colorize`` and ``/api/batch`` restores a photo with drawn
scratches with the bundled damage model before it is stored or coloured."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from tinct.serve.editor import L_SCALE

from test_restore import psnr, scratched, smooth_grey

pytestmark = pytest.mark.skipif(
    not (Path(__file__).parents[1] / "src/tinct/weights/restore-damage.safetensors").is_file(),
    reason="the bundled damage model is not in this checkout")


def _png(grey: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(grey, "L").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def scratched_photo():
    clean = smooth_grey(256, 192, seed=1)
    damaged, mask = scratched(clean, 1)
    return clean, damaged, mask


def _stored_grey(client, data: bytes, **fields) -> np.ndarray:
    r = client.post("/api/photos", files={"image": ("old.png", data, "image/png")}, data=fields)
    assert r.status_code == 201, r.text
    got = client.get(f"/api/photos/{r.json()['photo']}/lightness")
    L = np.frombuffer(got.content, "<u2").reshape(192, 256) / L_SCALE
    return L


def test_a_stored_photo_is_restored_when_asked(make_client, scratched_photo):
    from tinct.colorizer import Colorizer

    clean, damaged, mask = scratched_photo
    client = make_client()
    as_sent = _stored_grey(client, _png(damaged))
    restored = _stored_grey(client, _png(damaged), restore="1")
    truth = Colorizer.luminance(np.asarray(Image.fromarray(clean).convert("RGB"))).numpy()
    sent_error = np.abs(as_sent - truth)[mask].mean()
    assert np.abs(restored - truth)[mask].mean() < 0.4 * sent_error  # the scratches are gone from the lightness
    assert np.abs(as_sent - _stored_grey(client, _png(damaged), restore="")).max() == 0  # empty: as sent
    near = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(9))) > 0
    far = ~near
    assert np.abs(restored - as_sent)[far].mean() < 1.0  # away from the marks, the photo is kept (grain step: small)


@pytest.mark.parametrize("value, message", [("scratches,wrinkles", "restore:"), ("everything", "restore:")])
def test_bad_restore_steps_are_a_422_naming_the_field(make_client, scratched_photo, value, message):
    client = make_client()
    r = client.post("/api/photos", files={"image": ("old.png", _png(scratched_photo[1]), "image/png")},
                    data={"restore": value})
    assert r.status_code == 422 and r.json()["detail"].startswith(message), r.text


def test_colorize_and_batch_restore_first(make_client, scratched_photo):
    clean, damaged, _ = scratched_photo
    client = make_client()
    files = {"image": ("old.png", _png(damaged), "image/png")}
    plain = client.post("/api/colorize", files=files)
    first = client.post("/api/colorize", files=files, data={"restore": "scratches"})
    assert plain.status_code == first.status_code == 200
    grey = lambda r: np.asarray(Image.open(io.BytesIO(r.content)).convert("L"))  # noqa: E731
    assert psnr(grey(first), clean) > psnr(grey(plain), clean) + 3

    r = client.post("/api/batch", files=[("images", ("old.png", _png(damaged), "image/png"))], data={"restore": "1"})
    assert r.status_code == 202, r.text
    for _ in range(600):
        status = client.get(r.json()["status"]).json()
        if status["state"] == "done":
            break
        time.sleep(0.05)
    assert status["state"] == "done" and not status["failed"], status
    z = zipfile.ZipFile(io.BytesIO(client.get(r.json()["zip"]).content))
    out = np.asarray(Image.open(io.BytesIO(z.read("old-colorized.png"))).convert("L"))
    assert psnr(out, clean) > psnr(grey(plain), clean) + 3


def test_a_damage_model_that_cannot_load_is_a_503_saying_so(make_client, scratched_photo, tmp_path):
    client = make_client(damage_model=str(tmp_path / "missing.pt"))
    r = client.post("/api/photos", files={"image": ("old.png", _png(scratched_photo[1]), "image/png")},
                    data={"restore": "1"})
    assert r.status_code == 503 and "cannot restore" in r.json()["detail"], r.text
    r = client.post("/api/photos", files={"image": ("old.png", _png(scratched_photo[1]), "image/png")},
                    data={"restore": "grain"})  # no damage model needed
    assert r.status_code == 201, r.text
