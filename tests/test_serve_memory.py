"""Peak RSS of single REST requests in child processes (issue 26), through
benchmarks/serve_memory.py: each case under RLIMIT_AS, so nothing can exhaust the machine.

With the tiny checkpoint (the bundled architecture): ``size`` at its maximum on a
1024x1024 photo is answered under 2.5 GB peak RSS; the 40,000,000 x 1 strip and the 180 MP
square (pixel limit raised to 180 MP) are colorized under 2.5 GB or refused with 413 before
decoding, as the colorizer's memory budget decides at the server's ``max_job_mb``; the
180 MP square at the default pixel limit is a 413; a real failed allocation (budget off,
address space short) is a 503, not a crash.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import serve_memory  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("case", ["max-size", "pano-max-size", "strip-40M", "square-180MP", "square-180MP-allowed", "oom"])
def test_peak_rss(case, tiny_checkpoint, tmp_path_factory):
    workdir = tmp_path_factory.getbasetemp() / "serve-memory"
    workdir.mkdir(exist_ok=True)
    result = serve_memory.run_case(case, f"tiny={tiny_checkpoint}", workdir)
    assert result["ok"] and not result["traceback"], result
    if result["status"] == 200:
        assert result["peak_rss_mb"] < 2500, result
    else:
        assert result["peak_rss_mb"] - result["rss_before_mb"] < 600, result  # refused before anything big
