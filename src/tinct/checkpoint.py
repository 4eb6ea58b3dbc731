"""tinct checkpoints: weights plus what is needed to rebuild the model by name.

Two on-disk forms, both safe to load (no pickle code runs):
    ``*.safetensors``: weights, with the model description in the header metadata
        (used for the bundled default model).
    ``*.pt``: a ``torch.save`` dict loaded with ``weights_only=True``; training runs also
        keep optimiser state and progress here.

Both carry ``format = "tinct"``, ``arch`` (a registered model name), ``arch_kwargs`` and
``meta`` (decoding defaults such as temperature and working size, training notes).
Files are written atomically (:func:`tinct.io.atomic_write`): to a temporary file in the same
folder, then renamed.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from . import io

FORMAT = "tinct"
VERSION = 1


class CheckpointError(Exception):
    """A file that is missing, truncated or not a tinct checkpoint."""


def save(path: str | os.PathLike, model: torch.nn.Module, meta: dict[str, Any] | None = None, **extra: Any) -> None:
    """Save ``model`` (built by ``tinct.models.create_model``) with its description.

    Args:
        path: ``.safetensors`` for weights only, anything else for a torch file that
            may also hold ``extra`` entries (optimiser state, step, ...).
        model: a model with ``arch`` and ``arch_kwargs`` attributes.
        meta: JSON-serialisable description (decoding defaults, training notes).
    """
    kwargs = {k: v for k, v in model.arch_kwargs.items() if k != "pretrained"}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = dict(meta or {})
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        header = {"format": FORMAT, "version": str(VERSION), "arch": model.arch,
                  "arch_kwargs": json.dumps(kwargs), "meta": json.dumps(meta)}
        io.atomic_write(path, lambda tmp: save_file(state, tmp, metadata=header))
    else:
        blob = {"format": FORMAT, "version": VERSION, "arch": model.arch, "arch_kwargs": kwargs,
                "meta": meta, "state_dict": state, **extra}
        io.atomic_write(path, lambda tmp: torch.save(blob, tmp))


def read(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint into a dict with keys format, arch, arch_kwargs, meta, state_dict.

    Raises:
        CheckpointError: the file is missing, unreadable, truncated or not from tinct.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    if path.suffix == ".safetensors":
        blob = _read_safetensors(path)
    elif not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated, or not a torch/safetensors file)")
    else:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
            raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a torch file): {first_line(e)}") from None
        except Exception as e:  # weights_only refuses pickles with code in them
            raise CheckpointError(f"{path}: refused to load (not a plain tinct checkpoint): {first_line(e)}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT or "state_dict" not in blob:
        raise CheckpointError(f"{path}: not a tinct checkpoint (no tinct model description inside)")
    return blob


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated or corrupt): {first_line(e)}") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a tinct checkpoint (safetensors header has no tinct model description)")
    return {"format": FORMAT, "arch": header["arch"], "arch_kwargs": json.loads(header.get("arch_kwargs", "{}")),
            "meta": json.loads(header.get("meta", "{}")), "state_dict": state}


def load_model(path: str | os.PathLike) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights (eval mode).

    Returns:
        (model, meta)
    """
    from .models import create_model

    blob = read(path)
    try:
        model = create_model(blob["arch"], pretrained=False, **blob["arch_kwargs"])
    except KeyError as e:
        raise CheckpointError(f"{path}: {e.args[0]}") from None
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit model {blob['arch']!r}: {first_line(e)}") from None
    model.eval()
    return model, dict(blob.get("meta") or {})


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
