"""Peak memory of one ``POST /api/colorize`` per case, each in a fresh child process.

    python benchmarks/serve_memory.py                      # bundled model, every case
    python benchmarks/serve_memory.py --model runs/x/best.pt --cases max-size strip-40M

Each case runs in its own interpreter: it builds the app (as ``tinct serve`` does, with
the server's default limits), warms it up with one small request, then sends the case's
image through FastAPI's TestClient and reports the status, the detail of an error, the
RSS before the request and the peak RSS of the process (``ru_maxrss``). The child runs
under ``RLIMIT_AS`` (its virtual size after start-up plus ``--headroom-gb``), so a case
that would need far more memory fails inside the child instead of swapping the machine;
the ``oom`` case lowers it further on purpose, with the budget switched off, to check that
a real failed allocation is a 503 and not a crash.

Passes (exit 0) when every case gets one of its expected answers, and a 200 peaks under
``--max-rss-mb`` (2500). The budget that decides is the colorizer's own
(:meth:`tinct.Colorizer.check_budget`, ``--max-job-mb``), the one ``tinct colorize`` applies.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

# case -> (image, form fields, ServeSettings overrides, expected statuses). The decision is the
# colorizer's memory budget (Colorizer.check_budget at --max-job-mb, the same as tinct colorize's):
# where an image is near the limit either answer is right, as long as a 200 peaks under --max-rss-mb.
CASES = {
    "max-size": ("noise:1024x1024", {"size": "768"}, {}, (200,)),
    "photo-12MP": ("noise:4000x3000", {}, {}, (200,)),
    "portrait-max-size": ("noise:768x1024", {"size": "768"}, {}, (200, 413)),  # 413 says which size fits
    "pano-max-size": ("flat:8000x2000", {"size": "768"}, {}, (413,)),  # far over: "size N or less fits"
    "strip-40M": ("flat:40000000x1", {}, {}, (200, 413)),  # colorized in 2-D tiles when it fits the budget
    "square-180MP": ("flat:13416x13416", {}, {}, (413,)),  # the 40 MP pixel limit
    "square-180MP-allowed": ("flat:13416x13416", {}, {"max_megapixels": 180}, (200, 413)),  # the memory budget
    "oom": ("noise:1024x1024", {"size": "768"}, {"max_job_mb": 100_000}, (503,)),
}


def png_stream(w: int, h: int, kind: str) -> bytes:
    """A grey (or RGB) 8-bit PNG written row by row: constant rows compress to almost nothing."""
    import numpy as np

    bands = 3 if kind == "noise-rgb" else 1
    rng = np.random.default_rng(0)
    z = zlib.compressobj(6)
    parts = []
    flat = b"\0" + b"\x80" * (w * bands)
    for _ in range(h):
        row = flat if kind == "flat" else b"\0" + rng.integers(0, 256, w * bands, dtype=np.uint8).tobytes()
        parts.append(z.compress(row))
    parts.append(z.flush())

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2 if bands == 3 else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


_CHILD = r"""
import io, json, resource, sys, warnings
case = json.loads(sys.argv[1])
def vm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1])
from tinct.serve import ServeSettings, create_app, load_models
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
settings = ServeSettings(models=[case["model"]], db=case["db"], **case["settings"])
client = TestClient(create_app(settings, load_models(settings.models)), base_url="http://localhost")
from PIL import Image
b = io.BytesIO(); Image.new("L", (64, 64), 100).save(b, "PNG")
client.post("/api/colorize", files={"image": ("w.png", b.getvalue())})  # warm-up
limit = (vm_kb() * 1024 + int(case["headroom_gb"] * 2**30))
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
data = open(case["image"], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = client.post("/api/colorize", files={"image": ("x.png", data)}, data=case["fields"])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
detail = r.json().get("detail") if r.headers.get("content-type") == "application/json" else None
print("RESULT " + json.dumps({"status": r.status_code, "detail": detail, "rss_before_mb": before // 1024,
                              "peak_rss_mb": peak // 1024}))
"""


def run_case(name: str, model: str, workdir: Path, headroom_gb: float = 4.0, timeout: float = 300,
             max_rss_mb: float = 2500) -> dict:
    image, fields, settings, expected = CASES[name]
    kind, size = image.split(":")
    w, h = (int(v) for v in size.split("x"))
    path = workdir / f"{kind}-{w}x{h}.png"
    if not path.is_file():
        path.write_bytes(png_stream(w, h, kind))
    if name == "oom":
        headroom_gb = 0.25  # the colorization needs 0.6 GB (tiny) to 1.1 GB (bundled): an allocation must fail
    case = {"model": model, "db": str(workdir / "db.sqlite"), "settings": settings, "fields": fields,
            "image": str(path), "headroom_gb": headroom_gb}
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(case)], capture_output=True, text=True,
                          timeout=timeout)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return {"case": name, "ok": False, "error": f"child exited {proc.returncode}: {proc.stderr[-2000:]}"}
    result = {"case": name, "upload_kb": path.stat().st_size // 1024, **json.loads(line[7:])}
    result["ok"] = result["status"] in expected and (result["status"] != 200 or result["peak_rss_mb"] < max_rss_mb)
    result["traceback"] = "Traceback" in proc.stderr
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--workdir", default=None, help="where the test images are written (default: a temp folder)")
    p.add_argument("--headroom-gb", type=float, default=4.0)
    p.add_argument("--max-rss-mb", type=float, default=2500, help="a 200 must peak below this (default 2500)")
    args = p.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = [run_case(name, args.model, workdir, args.headroom_gb, max_rss_mb=args.max_rss_mb)
                   for name in args.cases]
    for r in results:
        print(json.dumps(r))
    print("\n| case | upload | answer | RSS before | peak RSS | ok |\n| --- | --- | --- | --- | --- | --- |")
    for r in results:
        answer = r.get("status", "-") if not r.get("detail") else f"{r['status']}: {r['detail'][:90]}"
        print(f"| {r['case']} | {r.get('upload_kb', '-')} KB | {answer} | {r.get('rss_before_mb', '-')} MB "
              f"| {r.get('peak_rss_mb', '-')} MB | {'yes' if r['ok'] and not r.get('traceback') else 'NO'} |")
    return 0 if all(r["ok"] and not r.get("traceback") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
