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

Both also carry ``sha256``: a SHA-256 over the weights (:func:`state_digest`: every tensor's
name, dtype, shape and bytes, in name order). A file whose weights do not match it is
refused. Files written before checksums existed have none: one with a ``<file>.sha256``
beside it (the bundled default's, so that a 20 MB file was not committed again only to
carry its digest) is checked against that; the others load once every floating weight is
checked to be finite (a damaged weight that is still a finite number cannot be told apart
in such a file).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from . import io
from .errors import EXIT_USAGE, TinctError, first_line

FORMAT = "tinct"
VERSION = 1


class CheckpointError(TinctError):
    """A file that is missing, truncated, damaged or not a tinct checkpoint."""

    exit_code = EXIT_USAGE  # a model that cannot be loaded is a usage error (exit code 2)


class Checkpoint(dict):
    """A checkpoint's entries; asking for one it lacks is a :class:`CheckpointError` naming the
    file (``--resume`` of a weights-only ``best.pt`` copied over ``last.pt``: no ``task``)."""

    def __init__(self, path, entries: dict[str, Any]):
        super().__init__(entries)
        self.path = path

    def __missing__(self, key: str):
        training = key in ("task", "step", "rng", "best_val", "config")
        hint = ("; it holds weights only (like best.pt or a calibrated model), not a training run's state, "
                "so it cannot be resumed" if training else "")
        raise CheckpointError(f"{self.path}: checkpoint has no {key!r} entry{hint}")


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _check_weights(path, state: dict[str, Any], digest: str | None) -> None:
    """Refuse weights that do not match their checksum or, without one, that are not finite."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: state_dict is not a mapping of tensors")
    if digest is not None:
        if state_digest(state) != digest:
            raise CheckpointError(f"{path}: the weights do not match the checkpoint's SHA-256 (the file is damaged)")
        return
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} weight tensor(s) hold NaN or infinite values ({bad[0]}, ...): "
                              "the file is damaged")


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
    digest = state_digest(state)
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        header = {"format": FORMAT, "version": str(VERSION), "arch": model.arch,
                  "arch_kwargs": json.dumps(kwargs), "meta": json.dumps(meta), "sha256": digest}
        io.atomic_write(path, lambda tmp: save_file(state, tmp, metadata=header))
    else:
        blob = {"format": FORMAT, "version": VERSION, "arch": model.arch, "arch_kwargs": kwargs,
                "meta": meta, "state_dict": state, "sha256": digest, **extra}
        io.atomic_write(path, lambda tmp: torch.save(blob, tmp))


def read(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint into a :class:`Checkpoint` with keys format, arch, arch_kwargs, meta,
    state_dict (and, for training runs, their state), its weights verified.

    Raises:
        CheckpointError: the file is missing, unreadable, truncated, damaged (the weights do
            not match their SHA-256, or are not finite) or not from tinct.
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
    if not isinstance(blob.get("arch"), str) or not isinstance(blob.get("arch_kwargs", {}), dict) \
            or not isinstance(blob.get("meta", {}), dict):
        raise CheckpointError(f"{path}: damaged tinct checkpoint (arch, arch_kwargs or meta missing or of the wrong type)")
    _check_weights(path, blob["state_dict"], blob.get("sha256") or _sidecar_digest(path))
    return Checkpoint(path, blob)


def _sidecar_digest(path: Path) -> str | None:
    """The digest in ``<path>.sha256`` (a legacy file's), or None."""
    side = Path(f"{path}.sha256")
    try:
        return side.read_text().split()[0]
    except (OSError, IndexError):
        return None


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
    if header.get("format") != FORMAT or "arch" not in header:
        raise CheckpointError(f"{path}: not a tinct checkpoint (safetensors header has no tinct model description)")
    try:
        kwargs, meta = json.loads(header.get("arch_kwargs", "{}")), json.loads(header.get("meta", "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: damaged tinct header (arch_kwargs or meta is not JSON: {e})") from None
    return {"format": FORMAT, "arch": header["arch"], "arch_kwargs": kwargs, "meta": meta, "state_dict": state,
            "sha256": header.get("sha256")}


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
    except (TypeError, ValueError) as e:  # arch_kwargs the model's factory does not take
        raise CheckpointError(f"{path}: arch_kwargs do not fit model {blob['arch']!r}: {first_line(e)}") from None
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit model {blob['arch']!r}: {first_line(e)}") from None
    model.eval()
    return model, dict(blob.get("meta") or {})

