"""Load test for ``tinct serve``: the real server, on loopback, hit by concurrent clients.

    python benchmarks/serve_load.py --model default              # the bundled model
    python benchmarks/serve_load.py --random-weights             # no weights needed

Starts ``python -m tinct serve`` on 127.0.0.1 on a free port, sends ``--requests`` POST
/api/colorize requests (a grey JPEG) from ``--clients`` threads, polls /healthz meanwhile
(the event loop must stay responsive), samples the server's RSS, then stops the server.
Bounded in count (``--requests``) and time (``--deadline``; each request ``--timeout``).

Passes (exit 0) when every request got 200 or 503 (503 = turned away by design when
every worker and queue place is taken), none failed or hung, and the server's peak RSS
stayed under ``--max-rss-mb``. Prints latency percentiles, status counts and peak RSS.
Only the standard library is used on the client side.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image


def grey_jpeg(w: int, h: int) -> bytes:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    g = 0.5 + 0.25 * np.sin(x / 17) + 0.25 * np.cos(y / 23)
    buf = io.BytesIO()
    Image.fromarray((np.clip(g, 0, 1) * 255).astype(np.uint8), "L").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def multipart(fields: dict[str, str], image: bytes, boundary: str = "tinctloadboundary") -> tuple[bytes, str]:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="load.jpg"\r\n'
                 f"Content-Type: image/jpeg\r\n\r\n".encode() + image + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def random_checkpoint(folder: Path) -> str:
    """A random-weight checkpoint of the default architecture (working size 64)."""
    import torch

    from tinct import checkpoint
    from tinct.models import create_model

    torch.manual_seed(0)
    path = folder / "random.pt"
    checkpoint.save(path, create_model("effunet_bins313", pretrained=False), {"size": 64, "temperature": 0.38})
    return str(path)


class Server:
    def __init__(self, model: str, workdir: Path, workers: int, queue: int):
        self.port = free_port()
        self.log = open(workdir / "server.log", "w+")  # noqa: SIM115 - open for the server's lifetime
        cmd = [sys.executable, "-m", "tinct", "serve", "--model", model, "--port", str(self.port),
               "--db", str(workdir / "study.sqlite"), "--workers", str(workers), "--queue", str(queue)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"server exited with {self.proc.returncode}:\n{self.log.read()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"server not ready after {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_load(port: int, body: bytes, content_type: str, n: int, clients: int, timeout: float, deadline: float,
             backoff: float) -> list[tuple[str, float]]:
    """``n`` POSTs from ``clients`` threads; returns (status or error name, seconds) per request."""
    results: list[tuple[str, float]] = []
    lock = threading.Lock()
    remaining = [n]
    stop_at = time.monotonic() + deadline

    def client():
        conn = None
        while True:
            with lock:
                if remaining[0] == 0 or time.monotonic() > stop_at:
                    return
                remaining[0] -= 1
            conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/api/colorize", body=body, headers={"Content-Type": content_type})
                response = conn.getresponse()
                response.read()
                outcome = str(response.status)
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                outcome = "timeout" if isinstance(e, TimeoutError) else type(e).__name__
                conn.close()
                conn = None
            with lock:
                results.append((outcome, time.perf_counter() - t0))
            if outcome == "503":
                time.sleep(backoff)  # a polite client honours Retry-After; we wait a little

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default", help="model spec passed to tinct serve (default: default)")
    p.add_argument("--random-weights", action="store_true", help="use a random-weight checkpoint of the default arch")
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--image", default="512x384", help="WxH of the grey JPEG sent (default 512x384)")
    p.add_argument("--size", type=int, default=None, help="working size sent with each request (default: the model's)")
    p.add_argument("--workers", type=int, default=1, help="tinct serve --workers (default 1)")
    p.add_argument("--queue", type=int, default=4, help="tinct serve --queue (default 4)")
    p.add_argument("--timeout", type=float, default=120, help="per-request timeout, s (a hang counts as a failure)")
    p.add_argument("--deadline", type=float, default=480, help="stop sending after this many seconds")
    p.add_argument("--backoff", type=float, default=0.25, help="client pause after a 503, s")
    p.add_argument("--max-rss-mb", type=float, default=3000, help="fail if the server's peak RSS exceeds this")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    w, h = (int(v) for v in args.image.lower().split("x"))
    fields = {"saturation": "1.0"} | ({"size": str(args.size)} if args.size else {})
    body, content_type = multipart(fields, grey_jpeg(w, h))
    with tempfile.TemporaryDirectory(prefix="tinct-load-") as tmp:
        workdir = Path(tmp)
        model = random_checkpoint(workdir) if args.random_weights else args.model
        server = Server(model, workdir, args.workers, args.queue)
        peak_sampled, health = [0], []
        done = threading.Event()
        try:
            server.wait_ready(timeout=180)
            rss_idle = rss_kb(server.proc.pid)

            def monitor():
                while not done.is_set():
                    peak_sampled[0] = max(peak_sampled[0], rss_kb(server.proc.pid))
                    t0 = time.perf_counter()
                    try:
                        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                        conn.request("GET", "/healthz")
                        conn.getresponse().read()
                        health.append(time.perf_counter() - t0)
                    except OSError:
                        health.append(float("inf"))
                    done.wait(0.25)

            watcher = threading.Thread(target=monitor, daemon=True)
            watcher.start()
            t0 = time.perf_counter()
            results = run_load(server.port, body, content_type, args.requests, args.clients, args.timeout,
                               args.deadline, args.backoff)
            wall = time.perf_counter() - t0
            done.set()
            watcher.join()
            peak_kb = max(rss_kb(server.proc.pid, "VmHWM"), peak_sampled[0])
            alive = server.proc.poll() is None
        finally:
            done.set()
            server.stop()

    counts = Counter(status for status, _ in results)
    ok = [s for status, s in results if status == "200"]
    busy = [s for status, s in results if status == "503"]
    figures = {
        "requests": len(results), "clients": args.clients, "image": f"{w}x{h}", "size": args.size or "model's", "model": args.model if not args.random_weights
        else "random-weights", "workers": args.workers, "queue": args.queue, "wall_s": round(wall, 2),
        "status_counts": dict(sorted(counts.items())),
        "latency_200_s": {q: round(percentile(ok, int(q[1:])), 3) for q in ("p50", "p90", "p99")} | {"max": round(max(ok, default=float("nan")), 3)},
        "latency_503_s": {"p50": round(percentile(busy, 50), 4), "max": round(max(busy, default=float("nan")), 4)},
        "throughput_200_per_s": round(len(ok) / wall, 2) if wall else 0.0,
        "healthz_during_load_s": {"p50": round(percentile(health, 50), 4), "max": round(max(health, default=float("nan")), 4)},
        "server_rss_mb": {"idle": round(rss_idle / 1024), "peak": round(peak_kb / 1024)},
        "server_alive_after": alive,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "(unset)"),
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")

    problems = []
    if len(results) != args.requests:
        problems.append(f"only {len(results)} of {args.requests} requests were sent before the deadline")
    bad = {k: v for k, v in counts.items() if k not in ("200", "503")}
    if bad:
        problems.append(f"unexpected outcomes: {bad}")
    if not ok:
        problems.append("no request succeeded")
    if peak_kb / 1024 > args.max_rss_mb:
        problems.append(f"server peak RSS {peak_kb / 1024:.0f} MB > {args.max_rss_mb:.0f} MB")
    if not alive:
        problems.append("the server died during the test")
    for line in problems:
        print(f"FAIL: {line}", file=sys.stderr)
    print("PASS" if not problems else "FAIL", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
