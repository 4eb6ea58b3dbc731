"""Fuzz the server in-process (issue 26): generated malformed requests and images, no 500.

Every answer must have a documented status (docs/SERVE.md) and, for an error, a JSON
``detail`` (or uvicorn/starlette's plain 400 for a bad Host); a 200 from
``/api/colorize`` must be a PNG. ``N_FAST`` cases run in seconds; the slow run is larger.
"""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image

from conftest import make_photo

N_FAST, N_SLOW = 300, 3000
COLORIZE_STATUSES = {200, 400, 408, 413, 415, 422, 503}
OTHER_STATUSES = {200, 400, 404, 405, 409, 413, 422, 429}
FORMATS = ["PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP"]


def _seeds(rng: random.Random) -> list[bytes]:
    out = []
    for fmt in FORMATS:
        for mode in ("L", "RGB"):
            im = make_photo(rng.randint(8, 80), rng.randint(8, 80), seed=rng.randint(0, 99)).convert(mode)
            buf = io.BytesIO()
            im.save(buf, format=fmt)
            out.append(buf.getvalue())
    return out


def _mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(b[: rng.randrange(len(b) + 1)])
    if kind == 1:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 2:
        i = rng.randrange(len(b))
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == 3:
        i = rng.randrange(len(b))
        del b[i: i + rng.randint(1, 64)]
    elif kind == 4:  # header fields set to extremes (widths, heights, lengths)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(min(len(b), 64))
            b[i:i + 4] = rng.choice([b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x7f\xff\xff\xff", b"\0\0\x01\0"])
    else:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    return bytes(b)


_FIELD_VALUES = ["", "0", "-1", "nan", "inf", "1e309", "64", "768", "769", "4096", "abc", "１２", "\0", "a" * 5000,
                 "1.5", "0x40", " 64 "]


def _request(client, rng: random.Random, seeds: list[bytes]):
    kind = rng.randrange(10)
    if kind < 6:  # colorize with a damaged or odd image and odd fields
        data = _mutate(rng.choice(seeds), rng) if rng.random() < 0.9 else rng.choice(seeds)
        fields = {name: rng.choice(_FIELD_VALUES) for name in ("size", "saturation", "temperature", "model")
                  if rng.random() < 0.3}
        name = rng.choice(["p.png", "../../x.jpg", "", "a" * 300, "x\ny.gif", "\udcff.bmp".encode("utf-8", "surrogatepass").decode("utf-8", "replace")])
        files = {rng.choice(["image", "image", "image", "img", ""]): (name, data, rng.choice(["image/png", "text/plain", ""]))}
        return "colorize", client.post("/api/colorize", files=files, data=fields)
    if kind == 6:  # raw bodies and headers
        body = _mutate(rng.choice(seeds), rng)
        headers = {"Content-Type": rng.choice(["multipart/form-data", "multipart/form-data; boundary=",
                                               "multipart/form-data; boundary=x", "application/json", "image/png",
                                               "text/plain; charset=utf-8"])}
        return "colorize", client.post("/api/colorize", content=body, headers=headers)
    if kind == 7:
        body = rng.choice([b"", b"{", b"[]", b'{"trial": 1}', b'{"trial": "' + b"0" * 32 + b'", "choice": 7}',
                           b'{"trial": "' + b"f" * 32 + b'", "choice": 0, "response_ms": -5}', _mutate(b'{"a": 1}', rng)])
        return "other", client.post("/api/study/vote", content=body, headers={"Content-Type": "application/json"})
    if kind == 8:
        path = rng.choice(["/api/study/image/" + "".join(rng.choice("0123456789abcdefg/.%") for _ in range(34)) + "/0",
                           "/api/study/image/" + "0" * 32 + "/" + rng.choice(["2", "-1", "x", "00"]),
                           "/api/study/next?session=" + rng.choice(["", "z" * 32, "0" * 31, "%00", "a" * 5000]),
                           "/api/" + "x" * rng.randint(0, 300), "/static/../../etc/passwd", "/static/%2e%2e/x",
                           "/api", "/healthz", "/docs", "/study/results"])
        return "other", client.request(rng.choice(["GET", "GET", "HEAD", "DELETE", "PUT"]), path)
    return "other", client.get("/healthz", headers={"Host": rng.choice(["localhost", "evil.example", "",
                                                                        "localhost:99999", "[::1]", "a" * 300])})


def _fuzz(client, n: int, seed: int) -> None:
    rng = random.Random(seed)
    seeds = _seeds(rng)
    bad = []
    for i in range(n):
        where, r = _request(client, rng, seeds)
        allowed = COLORIZE_STATUSES if where == "colorize" else OTHER_STATUSES
        if r.status_code not in allowed:
            bad.append((i, r.status_code, r.text[:200]))
        elif r.status_code >= 400 and r.status_code != 400 and r.request.method != "HEAD":
            assert "detail" in r.json(), (i, r.status_code, r.text[:200])
        elif where == "colorize" and r.status_code == 200:
            assert np.asarray(Image.open(io.BytesIO(r.content))).size > 0
    assert not bad, bad[:10]
    assert client.app.state.tinct.jobs.taken == 0  # every place given back


def test_fuzz_fast(make_client):
    _fuzz(make_client(max_upload_mb=1), N_FAST, seed=26)


@pytest.mark.slow
def test_fuzz_slow(make_client):
    _fuzz(make_client(max_upload_mb=1), N_SLOW, seed=2026)
