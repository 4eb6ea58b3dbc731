"""`tinct serve`: the REST API, its limits, the worker pool and the study store.

The app is built with the tiny random-weight checkpoint and driven in-process through
FastAPI's TestClient; the browser test is tests/test_serve_browser.py.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest
from PIL import Image

from tinct.cli import main
from tinct.serve.jobs import Busy, JobPool
from tinct.serve.study import VoteLimits, VoteStore, wilson_interval
from conftest import make_photo


def _bytes(im: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def _post(client, data: bytes, name: str = "photo.jpg", **fields):
    return client.post("/api/colorize", files={"image": (name, data, "application/octet-stream")},
                       data={k: str(v) for k, v in fields.items()})


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG that claims w x h pixels in a few dozen bytes (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


# ---------------------------------------------------------------- API
def test_colorize_grey_jpeg(make_client):
    client = make_client()
    r = _post(client, _bytes(make_photo(96, 64).convert("L")), saturation=1.5, size=64)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    out = Image.open(io.BytesIO(r.content))
    assert out.size == (96, 64) and out.mode == "RGB"
    assert r.headers["x-tinct-model"] == "tiny" and r.headers["x-tinct-size"] == "96x64"
    assert 'filename="photo-colorized.png"' in r.headers["content-disposition"]


def test_alpha_kept_and_client_path_never_used(make_client, tmp_path):
    client = make_client()
    before = sorted(p.name for p in tmp_path.iterdir())
    r = _post(client, _bytes(make_photo(40, 30).convert("LA"), "PNG"), name="../../etc/passwd\\x.png")
    assert r.status_code == 200
    assert Image.open(io.BytesIO(r.content)).mode == "RGBA"
    assert 'filename="x-colorized.png"' in r.headers["content-disposition"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written for an upload


def test_models_health_openapi(make_client):
    client = make_client()
    assert client.get("/api/models").json()["default"] == "tiny"
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["jobs"] == 0 and health["capacity"] == 5
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/colorize", "/api/models", "/healthz", "/api/study/vote"} <= set(paths)
    assert "multipart/form-data" in paths["/api/colorize"]["post"]["requestBody"]["content"]


@pytest.mark.parametrize("case,status,message", [
    ("text", 415, "not an image"),
    ("empty", 415, "empty"),
    ("truncated", 422, "truncated"),
    ("bomb", 413, "exceeds the limit"),
    ("no-image-field", 422, "image: missing"),
    ("bad-size", 422, "size: expected an integer"),
    ("small-size", 422, "size: must be between"),
    ("bad-saturation", 422, "saturation: must be between"),
    ("nan-temperature", 422, "temperature: must be between"),
    ("bad-model", 422, "unknown model 'nope'; available: tiny"),
])
def test_bad_requests_are_clear_4xx(make_client, case, status, message):
    client = make_client()
    jpeg = _bytes(make_photo(64, 48).convert("L"))
    r = {
        "text": lambda: _post(client, b"this is not an image\n", name="notes.txt"),
        "empty": lambda: _post(client, b""),
        "truncated": lambda: _post(client, jpeg[: len(jpeg) // 3]),
        "bomb": lambda: _post(client, _png_header_only(100_000, 100_000), name="bomb.png"),
        "no-image-field": lambda: client.post("/api/colorize", data={"saturation": "1"}),
        "bad-size": lambda: _post(client, jpeg, size="big"),
        "small-size": lambda: _post(client, jpeg, size=8),
        "bad-saturation": lambda: _post(client, jpeg, saturation=-1),
        "nan-temperature": lambda: _post(client, jpeg, temperature="nan"),
        "bad-model": lambda: _post(client, jpeg, model="nope"),
    }[case]()
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_oversized_upload_413(make_client):
    client = make_client(max_upload_mb=0.05)  # 51 KiB (+ 64 KiB allowed for the form around it)
    big = _bytes(make_photo(900, 700), "BMP")  # ~1.9 MB
    r = _post(client, big, name="big.bmp")
    assert r.status_code == 413 and "larger than the 0.05 MB limit" in r.json()["detail"]
    # Just over the file limit but under the body limit: refused after parsing.
    r = _post(client, b"\0" * (int(0.05 * 2**20) + 10), name="x.bmp")
    assert r.status_code == 413
    # A body without Content-Length (chunked) is cut off as it streams.
    chunks = (b"x" * 65536 for _ in range(8))
    r = client.post("/api/colorize", content=chunks, headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413
    assert _post(client, _bytes(make_photo(32, 32).convert("L"))).status_code == 200  # still serving


def test_pixel_limit_configurable(make_client):
    client = make_client(max_megapixels=0.001)  # 1000 pixels
    r = _post(client, _bytes(make_photo(40, 30)))
    assert r.status_code == 413 and "exceeds the limit of" in r.json()["detail"]


def test_busy_server_answers_503_then_recovers(make_client):
    client = make_client(workers=1, queue=0)
    pool = client.app.state.tinct.jobs
    ticket = pool.take()  # the only place
    r = _post(client, _bytes(make_photo(32, 32)))
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert client.get("/healthz").status_code == 200  # the event loop is not blocked
    ticket.release()
    assert _post(client, _bytes(make_photo(32, 32))).status_code == 200
    assert pool.taken == 0


def test_job_pool_bounds_and_releases():
    pool = JobPool(workers=1, queue=1)
    gate = threading.Event()

    async def scenario():
        t1, t2 = pool.take(), pool.take()
        with pytest.raises(Busy):
            pool.take()
        first = asyncio.ensure_future(pool.run(t1, gate.wait, 5))
        second = asyncio.ensure_future(pool.run(t2, lambda: 42))
        await asyncio.sleep(0.05)
        second.cancel()  # cancelled while queued: its place comes back without running
        await asyncio.sleep(0.05)
        assert pool.taken == 1
        gate.set()
        assert await first is True
        await asyncio.sleep(0.05)
        assert pool.taken == 0
        with pool.take():  # a ticket never handed to the pool is given back on exit
            assert pool.taken == 1
        assert pool.taken == 0

    try:
        asyncio.run(scenario())
    finally:
        gate.set()
        pool.shutdown()


def test_pages_use_no_external_assets(make_client):
    client = make_client()
    for url in ["/", "/study", "/study/results", "/docs", "/static/app.js", "/static/study.js", "/static/style.css"]:
        r = client.get(url)
        assert r.status_code == 200, url
        for needle in ('src="http', 'href="http', "src='http", "url(http", "//cdn", "https://"):
            assert needle not in r.text, (url, needle)


# ---------------------------------------------------------------- study
@pytest.fixture
def study_dir(tmp_path):
    folder = tmp_path / "study"
    (folder / "sub").mkdir(parents=True)
    make_photo(120, 80, seed=1).save(folder / "a.jpg")
    make_photo(80, 120, seed=2).save(folder / "sub" / "b.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    make_photo(60, 60, seed=3).convert("L").save(folder / "grey.png")  # left out: no colour original
    return folder


def _vote(client, session: str | None = None, choice: int = 0) -> dict:
    trial = client.get("/api/study/next", params={"session": session} if session else None)
    assert trial.status_code == 200, trial.text
    data = trial.json()
    images = [Image.open(io.BytesIO(client.get(url).content)) for url in data["images"]]
    assert images[0].size == images[1].size and max(images[0].size) <= 512
    r = client.post("/api/study/vote", json={"trial": data["trial"], "choice": choice, "response_ms": 1234})
    assert r.status_code == 200, r.text
    return data


def test_study_votes_results_and_restart(make_client, study_dir, tmp_path):
    client = make_client(study_data=study_dir, vote_interval=0)  # pacing: tests/test_serve_study.py
    first = _vote(client)
    session = first["session"]
    assert len(session) == 32
    for choice in (1, 0, 1, 0):
        assert _vote(client, session, choice)["session"] == session
    results = client.get("/api/study/results").json()
    assert results["total_votes"] == 5 and results["models"][0]["model"] == "tiny"
    low, high = results["models"][0]["ci95"]
    assert 0 <= low <= results["models"][0]["fooling_rate"] <= high <= 1
    again = client.post("/api/study/vote", json={"trial": first["trial"], "choice": 0, "response_ms": 5})
    assert again.status_code == 409
    unknown = client.post("/api/study/vote", json={"trial": "0" * 32, "choice": 0, "response_ms": 5})
    assert unknown.status_code == 404
    assert client.post("/api/study/vote", json={"trial": "../x", "choice": 0, "response_ms": 5}).status_code == 422
    assert client.get("/api/study/image/" + "0" * 32 + "/0").status_code == 404
    assert client.get("/api/study/image/..%2F..%2Fetc/0").status_code in (404, 422)

    cache = tmp_path / "db" / "study-cache"
    assert len(list(cache.glob("*-u.png"))) == 4  # 2 readable photos x (original + colorized)
    client.__exit__(None, None, None)  # stop the server ...

    restarted = make_client(study_data=study_dir)  # ... and start a new one on the same db
    page = restarted.get("/study/results")
    assert page.status_code == 200 and '<strong id="total">5</strong>' in page.text
    assert restarted.get("/api/study/results").json()["total_votes"] == 5
    store = restarted.app.state.tinct.store
    assert store.journal_mode() == "wal"
    vote = store.votes()[0]
    assert vote["photo_name"] in ("a.jpg", "b.png") and vote["response_ms"] == 1234
    assert vote["shown_order"] in ("original,colorized", "colorized,original")
    assert vote["chose_colorized"] == int(vote["shown_order"].split(",")[vote["choice"]] == "colorized")


def test_study_without_photos_is_a_clear_404(make_client):
    r = make_client().get("/api/study/next")
    assert r.status_code == 404 and "--study-data" in r.json()["detail"]


def test_vote_store_counts(tmp_path):
    store = VoteStore(tmp_path / "v.sqlite", VoteLimits(interval=0))
    for i in range(4):
        trial = store.new_trial("s" * 32, "p", "p.jpg", "m", colorized_slot=i % 2)
        store.vote(trial, choice=0, response_ms=10)  # picks slot 0: colorized in trials 0 and 2
    (result,) = store.results()
    assert (result.model, result.votes, result.fooled, result.rate) == ("m", 4, 2, 0.5)
    assert store.seen("s" * 32) == {("p", "m")}
    store.close()


def test_wilson_interval_reference_values():
    # Reference: statsmodels proportion_confint(k, n, method="wilson").
    assert wilson_interval(5, 10) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)
    assert wilson_interval(0, 0) == (0.0, 1.0)


# ---------------------------------------------------------------- CLI
@pytest.mark.parametrize("args,message", [
    (["--model", "no/such/model.pt"], "cannot load model"),
    (["--study-data", "no/such/folder"], "no such folder"),
    (["--port", "70000"], "--port"),
])
def test_serve_usage_errors_exit_2(tiny_checkpoint, tmp_path, capsys, args, message):
    base = ["serve", "--db", str(tmp_path / "s.sqlite")]
    if "--model" not in args:
        base += ["--model", str(tiny_checkpoint)]
    assert main(base + args) == 2
    assert message in capsys.readouterr().err


def test_tinct_serve_command_starts_and_stops(tiny_checkpoint, tmp_path):
    """The real command: listens, answers /healthz, stops cleanly on Ctrl-C (SIGINT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "tinct", "serve", "--model", str(tiny_checkpoint), "--port", str(port),
           "--db", str(tmp_path / "s.sqlite")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, status = time.monotonic() + 60, None
        while status != 200 and time.monotonic() < deadline and proc.poll() is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                status = conn.getresponse().status
            except OSError:
                time.sleep(0.2)
        assert status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}/" in out and "Traceback" not in out
