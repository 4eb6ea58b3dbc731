"""Where tinct keeps files it can rebuild: ONNX exports and decoded training photos."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$TINCT_CACHE_DIR``, else ``~/.cache/tinct``; everything under it may be deleted at any time."""
    return Path(os.environ.get("TINCT_CACHE_DIR") or Path.home() / ".cache" / "tinct")
