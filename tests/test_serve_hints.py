"""Guided colorization over REST and on the web page (issue 22): the ``hints`` field (a
hints file's JSON) and the ``reference`` upload of ``POST /api/colorize``, their 422s, the
OpenAPI description, and the page's hint editor (its elements and its JS).

The hint model is test_guide's hand-wired untrained network (:func:`test_guide.wire`): a
red hint must turn the output red near the point, and the answer must be exactly what
``Colorizer.colorize`` gives for the same hints.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tinct import checkpoint
from tinct.hints import Hint, from_json, to_json
from tinct.models import create_model

from conftest import make_photo
from test_guide import RED, _ab, _mean_ab, wire

STATIC = Path(__file__).resolve().parents[1] / "src" / "tinct" / "serve" / "static"


@pytest.fixture(scope="module")
def models(tiny_checkpoint, tmp_path_factory):
    """Overrides conftest's: "hinty" (a hint model, the default) and "tiny" (none)."""
    from tinct.serve import load_models

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("hint") / "hinty.pt"
    checkpoint.save(path, wire(create_model("effunet_bins313", pretrained=False, hints=True)).eval(), {"size": 64})
    return load_models([f"hinty={path}", f"tiny={tiny_checkpoint}"])


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _post(client, photo: bytes, reference: bytes | None = None, **fields):
    files = {"image": ("p.png", photo, "image/png")}
    if reference is not None:
        files["reference"] = ("ref.png", reference, "image/png")
    return client.post("/api/colorize", files=files, data=fields)


def _hints(*points, **extra) -> str:
    return json.dumps({"version": 1, "units": "relative", "points": list(points), **extra})


PHOTO = make_photo(128, 96, seed=3)


def test_a_hint_over_rest_turns_the_point_red_as_the_library_does(make_client, models):
    client = make_client()
    base = _post(client, _png(PHOTO))
    text = _hints({"x": 0.25, "y": 0.5, "colour": "#ff0000"})
    hinted = _post(client, _png(PHOTO), hints=text)
    assert base.status_code == hinted.status_code == 200, hinted.text
    assert hinted.headers["x-tinct-model"] == "hinty"
    out, before = _ab(Image.open(io.BytesIO(hinted.content))), _ab(Image.open(io.BytesIO(base.content)))
    gain = (_mean_ab(out, 32, 48, 5) - _mean_ab(before, 32, 48, 5)) @ RED
    assert gain > 15, gain  # toward red near the point, in Lab units
    assert np.abs(out - before)[:, 64:].mean() < 0.5  # far away as it was
    expected = models["hinty"].colorizer.colorize(PHOTO, hints=[Hint(0.25, 0.5, "#ff0000")])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(hinted.content)).convert("RGB")), np.asarray(expected))
    # what the page saves (to_json's format) is what the server reads
    again = _post(client, _png(PHOTO), hints=json.dumps(to_json(from_json(json.loads(text)))))
    assert again.content == hinted.content
    wider = _post(client, _png(PHOTO), hints=_hints({"x": 0.25, "y": 0.5, "colour": "#ff0000"}, point_size=15))
    assert wider.status_code == 200 and wider.content != hinted.content  # the file's point_size is kept
    # an empty field, or a file with no points, is no hints
    for empty in ("", "  ", _hints()):
        assert _post(client, _png(PHOTO), hints=empty).content == base.content


def test_hints_as_an_uploaded_file(make_client):
    client = make_client()
    text = _hints({"x": 32, "y": 48, "colour": "red"}, units="pixels")
    r = client.post("/api/colorize", files={"image": ("p.png", _png(PHOTO), "image/png"),
                                            "hints": ("p.hints.json", text.encode(), "application/json")})
    same = _post(client, _png(PHOTO), hints=_hints({"x": 0.25, "y": 0.5, "colour": "red"}))
    assert r.status_code == 200, r.text
    assert np.abs(_ab(Image.open(io.BytesIO(r.content))) - _ab(Image.open(io.BytesIO(same.content)))).mean() < 1.0


def test_a_reference_photo_is_accepted_and_reaches_the_network(make_client, models):
    client = make_client()
    ref = _png(make_photo(64, 64, seed=5))
    base = _post(client, _png(PHOTO))
    r = _post(client, _png(PHOTO), reference=ref)
    assert r.status_code == 200, r.text
    assert r.content != base.content
    expected = models["hinty"].colorizer.colorize(PHOTO, reference=Image.open(io.BytesIO(ref)))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB")), np.asarray(expected))
    # with points too; the uploaded reference replaces the hints' own
    both = _post(client, _png(PHOTO), reference=ref, hints=_hints({"x": 0.25, "y": 0.5, "colour": "red"},
                                                                   reference={"distribution": [1] * 313}))
    assert both.status_code == 200 and both.content not in (r.content, base.content)
    # a form's empty file input is no reference
    empty = client.post("/api/colorize", files={"image": ("p.png", _png(PHOTO), "image/png"),
                                                "reference": ("", b"", "application/octet-stream")})
    assert empty.status_code == 200 and empty.content == base.content


@pytest.mark.parametrize("reference, status, says", [
    (b"not an image at all", 415, "reference"),
    (_png(PHOTO)[:200], 422, "reference"),
    (_png(PHOTO.convert("L")), 422, "grey"),
])
def test_bad_references(make_client, reference, status, says):
    r = _post(make_client(), _png(PHOTO), reference=reference)
    assert r.status_code == status and says in r.json()["detail"], r.text


def test_a_reference_goes_through_the_pixel_limit_and_memory_budget(make_client):
    big = _png(Image.new("RGB", (1200, 1000), "red"))
    r = _post(make_client(max_megapixels=1.0), _png(PHOTO), reference=big)
    assert r.status_code == 413, r.text
    r = _post(make_client(max_job_mb=1.0), _png(make_photo(32, 32)), reference=big)
    assert r.status_code == 413 and r.json()["detail"].startswith("reference: this 1200x1000 image needs"), r.text
    r = make_client().post("/api/colorize", files={"image": ("p.png", _png(PHOTO), "image/png")},
                           data={"reference": "red"})
    assert r.status_code == 422 and "reference: expected an image file" in r.json()["detail"]


@pytest.mark.parametrize("text, says", [
    ("{not json", "hints: not JSON"),
    ("[]", "expected a JSON object"),
    ('{"version": 2, "points": []}', "version must be 1"),
    (_hints({"x": 0.5, "y": 0.5, "colour": "reddish"}), "point 1: unknown colour 'reddish'"),
    (_hints({"x": 0.5, "y": 1.5, "colour": "red"}), "y 1.5 is outside [0, 1]"),
    (_hints({"x": 500, "y": 5, "colour": "red"}, units="pixels"), "outside the 128x96 photo"),
    (_hints(*[{"x": 0.5, "y": 0.5, "colour": "red"}] * 1001), "at most 1000"),
    (_hints(*[{"x": 0.5, "y": 0.5, "colour": "red"}] * 10_000), "10000 points: at most 1000"),
    (_hints({"x": 0.5, "colour": "red"}), "point 1 has no y"),
    (_hints({"x": 0.5, "y": 0.5, "colour": "red"}, reference={"distribution": [1, 2]}), "reference must be null"),
    (_hints(reference="ref.jpg"), "not a file name"),
])
def test_bad_hints_are_422_naming_the_problem(make_client, text, says):
    r = _post(make_client(), _png(PHOTO), hints=text)
    assert r.status_code == 422, r.text
    assert says in r.json()["detail"]


@pytest.mark.parametrize("route", ["/api/ab", "/api/suggest", "/api/batch"])
def test_the_editor_routes_refuse_bad_hints_alike(make_client, route):
    client = make_client()
    key = client.post("/api/photos", files={"image": ("p.png", _png(PHOTO), "image/png")}).json()["photo"]
    photo = {"files": [("images", ("p.png", _png(PHOTO), "image/png"))]} if route == "/api/batch" else {}
    fields = {} if route == "/api/batch" else {"photo": key, "x": "0.5", "y": "0.5"}
    for text, says in (("{not json", "hints: not JSON"),
                       (_hints({"x": 0.5, "y": 0.5, "colour": "reddish"}), "unknown colour 'reddish'"),
                       (_hints(*[{"x": 0.5, "y": 0.5, "colour": "red"}] * 10_000), "at most 1000"),
                       (_hints({"x": 500, "y": 5, "colour": "red"}, units="pixels"), "outside the 128x96 photo")):
        r = client.post(route, data={**fields, "hints": text}, **photo)
        if route == "/api/batch" and r.status_code == 202:  # a pixel point is checked against each photo
            status = client.get(r.json()["status"]).json()
            while status["state"] != "done":
                status = client.get(r.json()["status"]).json()
            assert says in status["failed"][0]["error"], status
            continue
        assert r.status_code == 422 and says in r.json()["detail"], (route, r.text)
    files = photo.get("files", []) + [("reference", ("ref.png", b"not an image at all", "image/png"))]
    r = client.post(route, data=fields, files=files)
    assert r.status_code == 415 and "reference" in r.json()["detail"], r.text


def test_hint_errors_do_not_echo_a_big_field(make_client):
    client = make_client()
    for text in (_hints({"x": 0.5, "y": 0.5, "colour": "r" * 100_000}), "{" + "x" * 100_000,
                 _hints({"x": 0.5, "y": 0.5, "colour": "red " * 20_000})):
        r = _post(client, _png(PHOTO), hints=text)
        assert r.status_code == 422 and len(r.content) < 600, r.text[:300]
    r = client.post("/api/colorize", files={"image": ("p.png", _png(PHOTO), "image/png"),
                                            "hints": ("h.json", b" " * (2**20 + 10), "application/json")})
    assert r.status_code == 422 and "over 1 MB" in r.json()["detail"]


def test_a_model_without_hint_inputs_follows_them(make_client):
    client = make_client()
    plain = _post(client, _png(PHOTO), model="tiny")
    for r in (_post(client, _png(PHOTO), model="tiny", hints=_hints({"x": 0.5, "y": 0.5, "colour": "red"})),
              _post(client, _png(PHOTO), model="tiny", reference=_png(make_photo(32, 32)))):
        assert r.status_code == 200, r.text
        assert r.content != plain.content
    assert _post(client, _png(PHOTO), model="tiny", hints="").content == plain.content
    assert make_client().app.state.tinct.jobs.taken == 0


def test_models_say_which_take_hints_and_openapi_describes_the_fields(make_client):
    client = make_client()
    info = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert {n: (m["hints"], m["hint_inputs"], m["reference"]) for n, m in info.items()} == \
        {"hinty": (True, True, True), "tiny": (True, False, True)}
    body = client.get("/openapi.json").json()["paths"]["/api/colorize"]["post"]["requestBody"]
    props = body["content"]["multipart/form-data"]["schema"]["properties"]
    assert "hints file's JSON" in props["hints"]["description"] and props["hints"]["type"] == "string"
    assert props["reference"]["format"] == "binary" and "palette" in props["reference"]["description"]
    assert "hints" in client.get("/api").json()["endpoints"]["POST /api/colorize"]


# ---------------------------------------------------------------- the page's editor
EDITOR_IDS = ["editor", "hint-layer", "swatches", "hint-colour", "hint-undo", "hint-redo", "hint-delete", "hint-clear",
              "hints-save", "hints-load", "reference", "reference-drop"]
PAGE_JS = ["lab.js", "hints.js", "app.js", "batch.js"]


def test_the_page_serves_the_hint_editor(make_client):
    client = make_client()
    page = client.get("/").text
    for id_ in EDITOR_IDS + ["file", "model", "before", "after", "split", "download", "status", "progress",
                             "batch-files", "batch-progress"]:
        assert re.search(rf'id="{id_}"', page), id_
    assert '<input type="color" id="hint-colour"' in page and '<progress id="progress"' in page
    for id_ in ("hint-undo", "hint-redo", "hint-delete", "hint-clear", "hints-save", "download"):  # buttons with text
        assert re.search(rf'<button[^>]*id="{id_}"[^>]*>[^<]*\w', page), id_
    for name in PAGE_JS:
        assert f'<script src="/static/{name}"></script>' in page
        js = client.get(f"/static/{name}")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        assert "http" not in js.text.replace("XMLHttpRequest", "").replace("HttpError", "")  # nothing from elsewhere
        assert not re.search(r"^\s*import\b|\bimport\(", js.text, re.M)  # no modules: plain scripts
    everything = "".join((STATIC / name).read_text() for name in PAGE_JS)
    for needle in ('"/api/ab"', '"/api/photos"', '"/api/suggest"', '"/api/palette"', '"/api/batch"', "debounce",
                   '"relative"', "version: 1", "Delete", "Ctrl+Z"):
        assert needle in everything, needle
    # nothing asked of any server but this app's own API
    for name in PAGE_JS:
        text = (STATIC / name).read_text()
        urls = re.findall(r"fetch\(\s*([^,)]+)", text) + re.findall(r'request\("[A-Z]+",\s*([^,)]+)', text)
        for url in urls:
            assert url.strip().startswith(('"/api/', '`/api/', '"/healthz"', "status.zip")), (name, url)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("name", PAGE_JS + ["study.js"])
def test_the_pages_js_parses(name):
    r = subprocess.run(["node", "--check", str(STATIC / name)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
