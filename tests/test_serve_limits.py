"""`tinct serve` hardening (issue 26): memory budget, out of memory, body before the slot,
security headers, Host check, short 422s, ``/api``, quiet disconnects, damaged uploads.

In-process (TestClient or the ASGI app called directly) with the tiny checkpoint; peak
RSS is measured in child processes by tests/test_serve_memory.py (slow).
"""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import make_photo
from test_serve import _bytes, _png_header_only, _post
from tinct.budget import DEFAULT_BUDGET, MemoryBudgetError
from tinct.serve import limits

# ONNX Runtime's own exception type (its module is what tinct.errors.is_out_of_memory checks)
OrtRuntimeException = type("RuntimeException", (Exception,), {"__module__": "onnxruntime.capi.onnxruntime_pybind11_state"})
OOM_ERRORS = [
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                 "you tried to allocate 25769803776 bytes."),
    OrtRuntimeException("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested "
                        "buffer of size 1"),
]


# ---------------------------------------------------------------- memory budget: the colorizer's
def test_each_app_has_its_own_budget_on_shared_models(make_client, models):
    """The limit is the colorizer's memory_budget, set per app on a copy sharing the network."""
    small, large = make_client(max_job_mb=1000), make_client(max_job_mb=5000)
    for client, mb in ((small, 1000), (large, 5000)):
        colorizer = client.app.state.tinct.models["tiny"].colorizer
        assert colorizer.memory_budget == mb * limits.MB and colorizer.net is models["tiny"].colorizer.net
    assert models["tiny"].colorizer.memory_budget == DEFAULT_BUDGET  # the loaded models are left as they were


@pytest.mark.parametrize("w,h,size", [(40_000_000, 1, None), (8000, 2000, 768), (1024, 1024, 768), (13_416, 13_416, None)])
@pytest.mark.parametrize("max_job_mb", [1500, 2200])
def test_413_exactly_when_the_colorizer_refuses(make_client, w, h, size, max_job_mb):
    """The server refuses what Colorizer.check_budget refuses at --max-job-mb, and nothing else;
    a header-only PNG that passes the budget then fails to decode (422)."""
    client = make_client(max_job_mb=max_job_mb, max_megapixels=200)
    colorizer = client.app.state.tinct.models["tiny"].colorizer
    need = colorizer.memory_needed((h, w), size, "L")
    r = _post(client, _png_header_only(w, h), name="x.png", **({"size": size} if size else {}))
    if need > max_job_mb * limits.MB:
        with pytest.raises(MemoryBudgetError):
            colorizer.check_budget((h, w), size, "L")
        detail = r.json()["detail"]
        assert r.status_code == 413 and f"{w}x{h}" in detail and f"about {need / limits.MB:,.0f} MB" in detail
        assert f"{max_job_mb:,} MB limit per colorization (--max-job-mb)" in detail
    else:
        assert r.status_code == 422, r.text  # over the budget check, into the (empty) image data


def test_the_strip_is_judged_by_the_budget_not_refused_outright(make_client):
    """40,000,000 x 1 used to be refused (estimated at 10 GB from whole-row strips); the
    colorizer works in 2-D tiles now and its budget lets the strip through at the default."""
    client = make_client()
    colorizer = client.app.state.tinct.models["tiny"].colorizer
    assert colorizer.memory_needed((1, 40_000_000), None, "L") < client.app.state.tinct.settings.max_job_bytes
    assert _post(client, _png_header_only(40_000_000, 1), name="strip.png").status_code == 422  # no pixel data


def test_size_is_capped_and_large_sizes_fit_or_say_what_fits(make_client):
    client = make_client()
    jpeg = _bytes(make_photo(64, 48).convert("L"))
    r = _post(client, jpeg, size=4096)  # it used to be accepted: 24 GB and the kernel's OOM killer
    assert r.status_code == 422 and f"between 32 and {limits.SIZE_RANGE[1]}" in r.json()["detail"]
    r = _post(client, _png_header_only(8000, 2000), name="pano.png", size=limits.SIZE_RANGE[1])
    assert r.status_code == 413 and "or less fits" in r.json()["detail"], r.text
    fits = int(r.json()["detail"].split("size ")[-1].split()[0])
    colorizer, limit = client.app.state.tinct.models["tiny"].colorizer, client.app.state.tinct.settings.max_job_bytes
    colorizer.check_budget((2000, 8000), fits, "L", limit)  # the size named fits ...
    with pytest.raises(MemoryBudgetError):  # ... and the next one up does not
        colorizer.check_budget((2000, 8000), fits + colorizer.spec.stride, "L", limit)
    assert _post(client, jpeg, size=limits.SIZE_RANGE[1]).status_code == 200  # a small photo at the maximum fits


def test_pixel_limit_still_from_the_header(make_client):
    r = _post(make_client(), _png_header_only(13_416, 13_416), name="square.png")  # 180 MP
    assert r.status_code == 413 and "exceeds the limit of 40 MP" in r.json()["detail"]


@pytest.mark.parametrize("error", OOM_ERRORS, ids=["MemoryError", "torch", "onnxruntime"])
def test_out_of_memory_is_a_clear_503(make_client, monkeypatch, error):
    client = make_client()
    colorizer = client.app.state.tinct.models["tiny"].colorizer

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(colorizer, "predict_ab_batched", fail)  # the network step every route takes
    r = _post(client, _bytes(make_photo(32, 32)))
    assert r.status_code == 503 and "out of memory" in r.json()["detail"] and r.headers["retry-after"]
    assert client.app.state.tinct.jobs.taken == 0


def test_an_unexpected_error_is_one_json_500_without_a_traceback(make_client, monkeypatch):
    client = make_client()
    monkeypatch.setattr(client.app.state.tinct.models["tiny"].colorizer, "predict_ab_batched",
                        lambda *a, **k: (_ for _ in ()).throw(KeyError("secret internals")))
    r = _post(client, _bytes(make_photo(32, 32)))
    assert r.status_code == 500 and r.json() == {"detail": "internal error (logged on the server)"}
    assert r.headers["x-content-type-options"] == "nosniff"


# ---------------------------------------------------------------- headers, Host, 422, /api
def test_security_headers_on_every_response(make_client):
    client = make_client(max_upload_mb=0.01)
    responses = [client.get("/"), client.get("/docs"), client.get("/nope"), client.get("/api/models"),
                 _post(client, b"x" * 100_000), client.post("/api/study/vote", json={})]
    for r in responses:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["referrer-policy"] == "no-referrer"


def test_host_header_allow_list(make_client):
    client = make_client(allowed_hosts=["tinct.example.org"])
    assert client.get("/healthz").status_code == 200  # localhost
    for host, status in [("127.0.0.1:8000", 200), ("[::1]:8000", 200), ("tinct.example.org", 200),
                         ("evil.example.com", 400), ("localhost.evil.example.com", 400)]:
        assert client.get("/healthz", headers={"Host": host}).status_code == status, host
    assert make_client(allowed_hosts=["*"]).get("/healthz", headers={"Host": "any.example"}).status_code == 200


def test_validation_errors_do_not_echo_big_fields(make_client):
    client = make_client()
    big = "a" * 100_000
    r = client.post("/api/study/vote", json={"trial": big, "choice": 0, "response_ms": 1})
    assert r.status_code == 422 and len(r.content) < 2000 and "100,000 characters" in r.text
    r = _post(client, _bytes(make_photo(32, 32)), model=big)
    assert r.status_code == 422 and len(r.content) < 2000
    r = _post(client, _bytes(make_photo(32, 32)), size=big)
    assert r.status_code == 422 and len(r.content) < 2000


def test_api_index(make_client):
    r = make_client().get("/api")
    assert r.status_code == 200 and r.json()["docs"] == "/docs" and "POST /api/colorize" in r.json()["endpoints"]


# ---------------------------------------------------------------- body before the slot
def _multipart(data: bytes) -> tuple[bytes, bytes]:
    boundary = b"tinctboundary"
    body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--" + boundary + b"--\r\n")
    return body, b"multipart/form-data; boundary=" + boundary


def _scope(body: bytes, content_type: bytes) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/api/colorize", "raw_path": b"/api/colorize", "query_string": b"", "root_path": "",
            "headers": [(b"host", b"localhost"), (b"content-type", content_type),
                        (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000), "state": {}}


def _call(app, scope, messages, hold: asyncio.Event | None = None, timeout: float = 20):
    """Run the ASGI app on a scripted client; returns (sent messages, pool places seen while held)."""
    sent, seen = [], []
    pending = list(messages)

    async def receive():
        if pending:
            return pending.pop(0)
        if hold is not None:
            seen.append(app.state.tinct.jobs.taken)
            await hold.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def main():
        task = asyncio.ensure_future(app(scope, receive, send))
        if hold is not None:
            await asyncio.sleep(0.3)
            hold.set()
        await asyncio.wait_for(task, timeout)

    asyncio.run(main())
    return sent, seen


def test_no_worker_place_before_the_body_is_in(make_client):
    app = make_client().app
    body, ctype = _multipart(_bytes(make_photo(32, 32), "PNG"))
    half = [{"type": "http.request", "body": body[:100], "more_body": True}]
    sent, seen = _call(app, _scope(body, ctype), half, hold=asyncio.Event())
    assert seen == [0]  # the client stalls mid-body: no place taken
    assert sent == []  # ... and then it goes away: nothing to answer


def test_disconnect_mid_upload_raises_nothing(make_client, caplog):
    """It used to raise ClientDisconnect out of the app: an ASGI traceback in uvicorn's log."""
    app = make_client().app
    body, ctype = _multipart(b"\x89PNG" + b"\0" * 5000)
    messages = [{"type": "http.request", "body": body[:2000], "more_body": True}, {"type": "http.disconnect"}]
    sent, _ = _call(app, _scope(body, ctype), messages)
    assert sent == [] and "Traceback" not in caplog.text and app.state.tinct.jobs.taken == 0


def test_body_timeout_408(make_client):
    app = make_client(body_timeout=0.3).app
    body, ctype = _multipart(_bytes(make_photo(32, 32), "PNG"))
    never = asyncio.Event()  # the rest of the body never comes
    sent, _ = _call_with_stall(app, _scope(body, ctype), body[:50], never)
    assert sent[0]["status"] == 408 and b"within 0.3 s" in sent[1]["body"]


def _call_with_stall(app, scope, first: bytes, stall: asyncio.Event):
    sent = []
    state = {"first": True}

    async def receive():
        if state.pop("first", False):
            return {"type": "http.request", "body": first, "more_body": True}
        await stall.wait()

    async def send(message):
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))
    return sent, None


# ---------------------------------------------------------------- damaged uploads
def _formats() -> dict[str, bytes]:
    rng = np.random.default_rng(26)
    im = make_photo(64, 48, seed=4).convert("L")
    noisy = Image.fromarray(np.clip(np.asarray(im, np.int16) + rng.integers(-20, 20, (48, 64)), 0, 255).astype(np.uint8))
    return {fmt: _bytes(noisy, fmt) for fmt in ("PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP")}


def _damaged(data: bytes, flips: bool = True) -> list[bytes]:
    """Truncations, then single flipped bytes past the signature (a deterministic sample)."""
    out = [data[: len(data) * k // 8] for k in (1, 3, 5, 7)]
    for pos in np.linspace(16, len(data) - 2, 12).astype(int) if flips else []:
        flipped = bytearray(data)
        flipped[pos] ^= 0xFF
        out.append(bytes(flipped))
    return out


@pytest.mark.parametrize("fmt,flips", [
    ("PNG", True),  # CRC and Adler-32 checksums: every flipped byte is detectable
    # No checksums: a flipped pixel, palette or entropy-coded byte is a valid image (no decoder
    # can tell); truncations must fail. JPEG flips that libjpeg warns about: tests/test_io.py.
    ("GIF", False), ("TIFF", False), ("BMP", False), ("JPEG", False), ("WEBP", False),
])
def test_damaged_upload_is_a_4xx_or_the_intact_result(make_client, fmt, flips):
    """Never a 500, never a 200 with a different picture."""
    client = make_client()
    intact = _formats()[fmt]
    reference = _post(client, intact, name=f"p.{fmt.lower()}", size=64)
    assert reference.status_code == 200
    ref = np.asarray(Image.open(io.BytesIO(reference.content)))
    wrong = []
    for i, data in enumerate(_damaged(intact, flips)):
        r = _post(client, data, name=f"p.{fmt.lower()}", size=64)
        assert r.status_code in (200, 413, 415, 422), (i, r.status_code, r.text)
        if r.status_code == 200:
            out = np.asarray(Image.open(io.BytesIO(r.content)))
            if out.shape != ref.shape or not np.array_equal(out, ref):
                wrong.append(i)
        else:
            assert json.loads(r.text)["detail"]
    assert not wrong, f"{fmt}: damaged uploads {wrong} answered 200 with a different image"
