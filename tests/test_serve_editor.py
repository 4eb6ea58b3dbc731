"""The hint editor's REST side (issue 22): a photo uploaded once (``POST /api/photos``) and
named by id after; its lightness and the low-resolution ab (``/api/ab``) compose, in
Python or in the page's own lab.js, to the image ``/api/colorize`` gives; swatches
(``/api/suggest``, :meth:`tinct.Colorizer.likely_colours`); a reference's palette
(``/api/palette``); batches into a zip (``/api/batch``); the bounded photo store.

The hint model is test_guide's hand-wired one (:func:`test_guide.wire`): a red hint turns
the output red near it, so the likeliest colours beside a red hint are red.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi import HTTPException
from PIL import Image

from tinct import checkpoint, hints
from tinct.likely import top_bins
from tinct.models import create_model
from tinct.serve.photos import PhotoStore, StoredPhoto

from conftest import make_photo
from test_guide import wire

STATIC = Path(__file__).resolve().parents[1] / "src" / "tinct" / "serve" / "static"
PHOTO = make_photo(128, 96, seed=3)
RED = '{"version": 1, "points": [{"x": 0.25, "y": 0.5, "colour": "#ff0000"}]}'


@pytest.fixture(scope="module")
def models(tiny_checkpoint, tmp_path_factory):
    """"hinty" (a hint model, the default), "tiny" (none) and "rgb" (no bins)."""
    from tinct.serve import load_models

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hint")
    checkpoint.save(folder / "hinty.pt", wire(create_model("effunet_bins313", pretrained=False, hints=True)).eval(),
                    {"size": 64})
    checkpoint.save(folder / "rgb.pt", create_model("cnn_rgb").eval(), {"size": 64})
    return load_models([f"hinty={folder / 'hinty.pt'}", f"tiny={tiny_checkpoint}", f"rgb={folder / 'rgb.pt'}"])


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _upload(client, im: Image.Image = PHOTO, name: str = "p.png") -> str:
    r = client.post("/api/photos", files={"image": (name, _png(im), "image/png")})
    assert r.status_code == 201, r.text
    assert (r.json()["width"], r.json()["height"], r.json()["name"]) == (*im.size, name)
    return r.json()["photo"]


def _rgb(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))


def test_a_stored_photo_colorizes_as_the_upload_does(make_client, models):
    client = make_client()
    key = _upload(client)
    for fields in ({}, {"hints": RED}, {"hints": RED, "saturation": "1.5", "size": "96"}):
        by_id = client.post("/api/colorize", data={"photo": key, **fields})
        sent = client.post("/api/colorize", files={"image": ("p.png", _png(PHOTO), "image/png")}, data=fields)
        assert by_id.status_code == sent.status_code == 200, by_id.text
        assert by_id.content == sent.content
    assert by_id.headers["content-disposition"] == 'inline; filename="p-colorized.png"'
    r = client.post("/api/colorize", data={"photo": key}, files={"image": ("p.png", _png(PHOTO), "image/png")})
    assert r.status_code == 422 and "not both" in r.json()["detail"]


def test_lightness_and_ab_compose_to_the_colorized_image(make_client, models):
    client = make_client()
    key = _upload(client)
    colorizer = models["hinty"].colorizer
    light = client.get(f"/api/photos/{key}/lightness")
    assert light.status_code == 200 and light.headers["x-tinct-size"] == "128x96"
    L = np.frombuffer(light.content, "<u2").reshape(96, 128) / 655.35
    exact = colorizer.luminance(np.asarray(PHOTO))
    assert np.abs(L - exact.numpy()).max() <= 0.5 / 655.35 + 1e-6
    r = client.post("/api/ab", data={"photo": key, "hints": RED})
    assert r.status_code == 200, r.text
    w, h = map(int, r.headers["x-tinct-grid"].split("x"))
    ab = torch.from_numpy(np.frombuffer(r.content, "<f4").reshape(2, h, w).copy())
    png = client.post("/api/colorize", data={"photo": key, "hints": RED}).content
    assert np.array_equal(np.asarray(colorizer.render(exact, ab)), _rgb(png))  # the server's own composition
    # ... and the page's (lab.js, run by Node) from the uint16 lightness: at most one 8-bit step apart
    if shutil.which("node") is None:
        pytest.skip("node is not installed: lab.js not run")
    script = (f"const Lab = require({json.dumps(str(STATIC / 'lab.js'))}); const fs = require('fs');"
              "const [l, a] = JSON.parse(fs.readFileSync(0, 'utf8'));"
              "const L = new Uint16Array(Buffer.from(l, 'base64').buffer.slice(0));"
              "const ab = new Float32Array(new Uint8Array(Buffer.from(a, 'base64')).buffer);"
              f"const out = new Uint8ClampedArray({128 * 96 * 4}); Lab.compose(L, 128, 96, ab, {w}, {h}, 1, out, null);"
              "process.stdout.write(Buffer.from(out).toString('base64'));")
    import base64

    stdin = json.dumps([base64.b64encode(light.content).decode(), base64.b64encode(r.content).decode()])
    done = subprocess.run(["node", "-e", script], input=stdin, capture_output=True, text=True, timeout=60, check=True)
    page = np.frombuffer(base64.b64decode(done.stdout), np.uint8).reshape(96, 128, 4)[..., :3]
    assert np.abs(page.astype(int) - _rgb(png).astype(int)).max() <= 1


def test_unknown_or_dropped_photo_ids_are_404(make_client):
    client = make_client()
    for r in (client.get("/api/photos/nope/lightness"), client.post("/api/ab", data={"photo": "nope"}),
              client.post("/api/colorize", data={"photo": "nope"}),
              client.post("/api/suggest", data={"photo": "nope", "x": "0.5", "y": "0.5"})):
        assert r.status_code == 404 and "upload the photo again" in r.json()["detail"], r.text
    r = client.post("/api/ab", data={"model": "hinty"})
    assert r.status_code == 422 and "image: missing" in r.json()["detail"]


def test_photo_store_is_bounded():
    now = [0.0]
    store = PhotoStore(max_bytes=3 * 4 * 100, max_items=2, ttl=10, clock=lambda: now[0])

    def photo(n: int = 100) -> StoredPhoto:
        return StoredPhoto(torch.zeros(1, n), None, "p", "L")

    a, b = store.add(photo()), store.add(photo())
    assert store.get(a) is not None
    c = store.add(photo())  # two at most: b, the least recently used, goes
    assert store.get(b) is None and store.get(a) is not None and store.get(c) is not None
    big = store.add(photo(250))  # bytes: both others go to make room
    assert len(store) == 1 and store.get(big) is not None and store.bytes == 1000
    now[0] = 11.0
    assert store.get(big) is None and store.bytes == 0  # unused for longer than ttl
    with pytest.raises(HTTPException) as e:
        store.add(photo(400))
    assert e.value.status_code == 413 and "photo store" in e.value.detail


def _hue(a: float, b: float) -> float:
    return math.degrees(math.atan2(b, a)) % 360


def test_suggest_gives_the_models_likely_colours(make_client, models):
    client = make_client()
    key = _upload(client)
    r = client.post("/api/suggest", data={"photo": key, "x": "0.25", "y": "0.5", "k": "5"})
    assert r.status_code == 200, r.text
    got = r.json()["colours"]
    assert len(got) == 5 and [c["probability"] for c in got] == sorted((c["probability"] for c in got), reverse=True)
    assert sum(c["probability"] for c in got) <= 1.0
    for c in got:  # the hex shows the bin's ab (what a hint keeps) as near as sRGB can
        a, b = hints.colour_ab(c["colour"])
        assert math.hypot(a - c["a"], b - c["b"]) <= 15 and abs((_hue(a, b) - _hue(c["a"], c["b"]) + 180) % 360 - 180) < 8, c
    ab = np.array([[c["a"], c["b"]] for c in got])
    assert min(np.linalg.norm(ab[i] - ab[j]) for i in range(5) for j in range(i)) >= 15  # no near-copies
    # beside a red hint the wired model's likeliest colour there is red (the library says the same)
    near = client.post("/api/suggest", data={"photo": key, "x": "0.27", "y": "0.5", "hints": RED}).json()["colours"]
    red = _hue(*hints.colour_ab("#ff0000"))
    assert abs((_hue(near[0]["a"], near[0]["b"]) - red + 180) % 360 - 180) < 25, near[0]
    same = models["hinty"].colorizer.likely_colours(PHOTO, 0.27, 0.5, hints=[hints.Hint(0.25, 0.5, "#ff0000")])
    assert [c.hex for c in same] == [c["colour"] for c in near]


@pytest.mark.parametrize("fields, says", [
    ({"x": "1.5", "y": "0.5"}, "x: must be between 0.0 and 1.0"),
    ({"y": "0.5"}, "x and y: required"),
    ({"x": "0.5", "y": "0.5", "k": "99"}, "k: must be between 1 and 32"),
    ({"x": "0.5", "y": "0.5", "model": "rgb"}, "swatches need a bin model"),
    ({"x": "0.5", "y": "0.5", "hints": "{oops"}, "hints: not JSON"),
])
def test_bad_suggest_requests(make_client, fields, says):
    client = make_client()
    r = client.post("/api/suggest", data={"photo": _upload(client), **fields})
    assert r.status_code == 422 and says in r.json()["detail"], r.text


def test_top_bins_skips_near_copies():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0], [40.0, 0.0], [0.0, 30.0]])
    assert top_bins(torch.tensor([0.4, 0.3, 0.2, 0.1]), centers, 3) == [(0, pytest.approx(0.4)), (2, pytest.approx(0.2)),
                                                                        (3, pytest.approx(0.1))]


def test_palette_is_the_reference_hint(make_client):
    client = make_client()
    ref = make_photo(64, 48, seed=5)
    r = client.post("/api/palette", files={"image": ("ref.png", _png(ref), "image/png")})
    assert r.status_code == 200, r.text
    dist = np.array(r.json()["distribution"])
    assert dist.shape == (313,) and np.allclose(dist, hints.reference_hint(ref)[:-1].numpy(), atol=1e-6)
    for data, status in ((b"not an image", 415), (_png(ref.convert("L")), 422)):
        r = client.post("/api/palette", files={"image": ("x.png", data, "image/png")})
        assert r.status_code == status, r.text
    # the palette in a hints file is what the reference photo gives
    key = _upload(client)
    with_file = client.post("/api/colorize", data={"photo": key}, files={"reference": ("r.png", _png(ref), "image/png")})
    with_dist = client.post("/api/colorize", data={"photo": key, "hints": json.dumps(
        {"version": 1, "points": [], "reference": {"distribution": dist.tolist()}})})
    assert np.abs(_rgb(with_file.content).astype(int) - _rgb(with_dist.content).astype(int)).max() <= 1


def _finished(client, key: str) -> dict:
    for _ in range(600):
        status = client.get(f"/api/batch/{key}").json()
        if status["state"] == "done":
            return status
        time.sleep(0.1)
    raise AssertionError(f"batch {key} did not finish: {status}")


def test_batch_zip_holds_every_photo_and_the_errors(make_client):
    client = make_client()
    photos = [make_photo(64 + 16 * i, 48, seed=i) for i in range(3)]
    files = [("images", ("a.png", _png(photos[0]), "image/png")), ("images", ("notes.txt", b"hello", "text/plain")),
             ("images", ("b.png", _png(photos[1]), "image/png")), ("images", ("a.png", _png(photos[2]), "image/png"))]
    r = client.post("/api/batch", files=files, data={"hints": RED, "saturation": "1.2"})
    assert r.status_code == 202, r.text
    key = r.json()["batch"]
    status = _finished(client, key)
    assert (status["done"], status["total"]) == (4, 4) and [f["name"] for f in status["failed"]] == ["notes.txt"]
    z = client.get(f"/api/batch/{key}/zip")
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        assert zf.namelist() == ["a-colorized.png", "b-colorized.png", "a-2-colorized.png", "errors.txt"]
        assert "notes.txt" in zf.read("errors.txt").decode() and "not an image" in zf.read("errors.txt").decode()
        for name, im in zip(["a-colorized.png", "b-colorized.png", "a-2-colorized.png"], [photos[0], photos[1], photos[2]]):
            one = client.post("/api/colorize", files={"image": ("p.png", _png(im), "image/png")},
                              data={"hints": RED, "saturation": "1.2"})
            assert zf.read(name) == one.content, name
    assert client.app.state.tinct.jobs.taken == 0


def test_bad_batches(make_client, tmp_path):
    client = make_client(max_batch_files=2)
    one = ("images", ("a.png", _png(PHOTO), "image/png"))
    for kwargs, status, says in (({"data": {"model": "hinty"}}, 422, "no photos"),
                                 ({"files": [one] * 3}, 422, "at most 2"),
                                 ({"files": [one, ("reference", ("r.png", _png(make_photo(32, 32)), "image/png"))],
                                   "data": {"model": "rgb"}}, 422, "cannot follow a reference palette")):
        r = client.post("/api/batch", **kwargs)
        assert r.status_code == status and says in r.json()["detail"], r.text
    assert client.get("/api/batch/nope").status_code == 404
    job = client.app.state.tinct.batches.new(3, "hinty")  # still running: no zip yet
    r = client.get(f"/api/batch/{job.id}/zip")
    assert r.status_code == 409 and "0 of 3" in r.json()["detail"]


def test_openapi_documents_the_editor_routes(make_client):
    paths = make_client().get("/openapi.json").json()["paths"]
    for route in ("/api/photos", "/api/ab", "/api/suggest", "/api/palette", "/api/batch"):
        assert "post" in paths[route] and paths[route]["post"].get("description"), route
    props = paths["/api/suggest"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"photo", "x", "y", "k", "hints"} <= set(props)
    assert "photo" in paths["/api/colorize"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert "/api/batch/{batch}/zip" in paths and "/api/photos/{photo}/lightness" in paths


def test_display_hex_shows_every_bins_hue():
    from tinct import color
    from tinct.likely import display_hex

    for a, b in color.bin_centers("313")[::7]:
        got = hints.colour_ab(display_hex(float(a), float(b), 50))
        assert math.hypot(got[0] - a, got[1] - b) <= 15
        if math.hypot(a, b) > 0:
            assert abs((_hue(*got) - _hue(a, b) + 180) % 360 - 180) < 8, (a, b)
    assert display_hex(0, 0, 50) == "#777777"  # grey at the asked lightness
