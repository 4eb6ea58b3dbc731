"""Where a Ray run's photos live: local paths and filesystem URIs, one :class:`Ref` each.

A :class:`Ref` is a ``root`` and a ``path`` on that root's filesystem. ``root`` is ``""``
for a local path (an absolute one, so a worker in another process or on another machine with
the same mount finds it), else the URI the user gave (``file:///data/scans``,
``s3://bucket/scans``), from which every worker opens the same filesystem: pyarrow.fs
(local, S3, GCS, HDFS, Azure), else fsspec's for other schemes. Only these strings travel
between the driver and the workers.

Local folders are planned by :func:`tinct.batch.plan_colorize` itself; URIs by
:func:`plan_uris`, which keeps its rules (the same layout, sorted before sharding, existing
outputs skipped unless overwriting, no output replacing an input or another output).

Writes are atomic: local files through :func:`tinct.io.atomic_write`; on object stores (S3,
GCS) an object appears only once its upload completes, so it is written in place; on other
filesystems through a temporary name (:func:`tinct.io.temporary_prefix`) then a move.
A worker killed mid-write can leave such a temporary; :func:`remove_stale_temporaries`
clears those of a run's outputs when the run ends.
"""

from __future__ import annotations

import functools
import os
import posixpath
import uuid
from pathlib import Path, PurePosixPath
from typing import Iterable, NamedTuple

from ..batch import Plan, PlanError, names_a_file, shard
from ..errors import TinctError
from ..io import INPUT_EXTS, OUTPUT_FORMATS, temporary_prefix

OBJECT_STORES = {"s3", "gcs"}  # pyarrow type names whose writes appear whole or not at all


class StorageError(TinctError):
    """A URI no filesystem library here understands (exit code 2)."""

    exit_code = 2


class Ref(NamedTuple):
    """A file: ``path`` on the filesystem of ``root`` (``""``: the local one)."""

    root: str
    path: str

    def __str__(self) -> str:
        if not self.root:
            return self.path
        return f"{self.root.split('://', 1)[0]}://{self.path.lstrip('/') if _scheme(self.root) != 'file' else self.path}"

    def child(self, rel: str) -> "Ref":
        return Ref(self.root, posixpath.join(self.path, rel) if self.root else os.path.join(self.path, rel))


def is_uri(spec: str | os.PathLike) -> bool:
    """``spec`` names a filesystem by scheme (``file://``, ``s3://``, ...) rather than a local path."""
    return "://" in str(spec)


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower()


@functools.lru_cache(maxsize=32)
def filesystem(root: str):
    """The pyarrow filesystem of ``root`` (a URI; ``""``: the local one), opened once per process.

    Raises:
        StorageError: no library here handles the URI's scheme.
    """
    import pyarrow.fs as pafs

    if not root:
        return pafs.LocalFileSystem()
    try:
        return pafs.FileSystem.from_uri(root)[0]
    except Exception as native_error:  # pyarrow.lib.ArrowInvalid: a scheme pyarrow has no filesystem for
        try:
            import fsspec
            from fsspec.registry import known_implementations
        except ImportError:
            raise StorageError(f"{root}: {native_error} (pip install fsspec for more schemes)") from None
        if _scheme(root) not in known_implementations:
            raise StorageError(f"{root}: no filesystem for scheme {_scheme(root)!r} (pyarrow and fsspec know none)") from None
        try:
            fs = fsspec.filesystem(_scheme(root))
        except ImportError as e:
            raise StorageError(f"{root}: the {_scheme(root)!r} filesystem needs {e.name or 'a package'}; pip install it") from None
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def ref_of(spec: str | os.PathLike) -> Ref:
    """The :class:`Ref` of a local path or a URI (for a URI, its path on its filesystem).

    Raises:
        StorageError: an unknown scheme or a malformed URI.
    """
    spec = str(spec)
    if not is_uri(spec):
        return Ref("", str(Path(spec).absolute()))
    import pyarrow.fs as pafs

    try:
        return Ref(spec, pafs.FileSystem.from_uri(spec)[1])
    except Exception:
        filesystem(spec)  # says which scheme is unknown, or opens the fsspec one
        path = spec.split("://", 1)[1]
        return Ref(spec, path)


def info(ref: Ref):
    """pyarrow's FileInfo of ``ref`` (``.type``, ``.mtime_ns``, ``.size``)."""
    return filesystem(ref.root).get_file_info(ref.path)


def exists_since(ref: Ref, since_ns: int | None) -> bool:
    """``ref`` is a file, modified at or after ``since_ns`` (any time when None)."""
    import pyarrow.fs as pafs

    found = info(ref)
    if found.type != pafs.FileType.File:
        return False
    return since_ns is None or (found.mtime_ns or 0) >= since_ns


def read_bytes(ref: Ref) -> bytes:
    with filesystem(ref.root).open_input_stream(ref.path) as f:
        return f.read()


def upload(local: str | os.PathLike, ref: Ref) -> None:
    """Copy a local file to ``ref``, atomically (see the module's docstring)."""
    fs = filesystem(ref.root)
    parent, name = posixpath.split(ref.path)
    fs.create_dir(parent, recursive=True)
    direct = fs.type_name in OBJECT_STORES
    target = ref.path if direct else posixpath.join(parent, f"{temporary_prefix(name)}{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(local, "rb") as src, fs.open_output_stream(target) as out:
            for block in iter(lambda: src.read(1 << 20), b""):
                out.write(block)
        if not direct:
            fs.move(target, ref.path)
    except BaseException:
        if not direct:
            try:
                fs.delete_file(target)
            except Exception:  # already gone (or never made): nothing to clean
                pass
        raise


def write_bytes(ref: Ref, data: bytes, local_temp_dir: str | None = None) -> None:
    """Write ``data`` to ``ref`` atomically (a local file, or :func:`upload` of one)."""
    import tempfile

    from ..io import atomic_write

    if not ref.root:
        atomic_write(ref.path, lambda tmp: Path(tmp).write_bytes(data))
        return
    with tempfile.NamedTemporaryFile(dir=local_temp_dir) as tmp:
        tmp.write(data)
        tmp.flush()
        upload(tmp.name, ref)


def remove_stale_temporaries(outputs: Iterable[Ref]) -> int:
    """Delete the temporaries a killed writer left beside ``outputs`` (names of the form
    ``.<output name>.XXXXXXXX.tmp``); only those of these outputs, never another file.
    Returns how many were deleted."""
    import pyarrow.fs as pafs

    folders: dict[tuple[str, str], set[str]] = {}
    for ref in outputs:
        parent, name = (posixpath.split if ref.root else os.path.split)(ref.path)
        folders.setdefault((ref.root, parent), set()).add(temporary_prefix(name))
    removed = 0
    for (root, parent), prefixes in folders.items():
        fs = filesystem(root)
        try:
            entries = fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True))
        except OSError:
            continue
        for entry in entries:
            name = entry.base_name
            if entry.type == pafs.FileType.File and name.endswith(".tmp") and len(name) > 12 \
                    and name[:-12] in prefixes:
                try:
                    fs.delete_file(entry.path)
                    removed += 1
                except OSError:
                    pass  # gone already: another run's cleaning
    return removed


# ----------------------------------------------------------------- planning URIs
def _images_under(ref: Ref, recursive: bool) -> list[tuple[Ref, str]]:
    """(file, relative POSIX path) of the images in the folder ``ref``, sorted by relative path;
    hidden files and folders skipped, as :func:`tinct.io.find_images` does."""
    import pyarrow.fs as pafs

    base = ref.path.rstrip("/")
    found = []
    for entry in filesystem(ref.root).get_file_info(pafs.FileSelector(base, recursive=recursive)):
        rel = entry.path[len(base):].lstrip("/")
        parts = PurePosixPath(rel).parts
        if entry.type == pafs.FileType.File and PurePosixPath(rel).suffix.lower() in INPUT_EXTS \
                and not any(part.startswith(".") for part in parts):
            found.append((Ref(ref.root, entry.path), rel))
    return sorted(found, key=lambda item: item[1])


def _existing(folder: Ref) -> set[str]:
    """The paths of every file under ``folder`` (one listing, for skipping done outputs)."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(folder.path.rstrip("/"), recursive=True, allow_not_found=True)
    return {e.path for e in filesystem(folder.root).get_file_info(selector) if e.type == pafs.FileType.File}


def plan_uris(specs: list[str], output: str, fmt: str = "png", *, recursive: bool = False,
              shard_spec: str | None = None, overwrite: bool = False) -> Plan:
    """:func:`tinct.batch.plan_colorize` for inputs and outputs that may be URIs: the same
    rules, the jobs as (:class:`Ref`, :class:`Ref`) pairs and ``out_dir`` a :class:`Ref`.
    Glob patterns are for local paths only.

    Raises:
        PlanError: as plan_colorize; StorageError: an unknown scheme.
    """
    import pyarrow.fs as pafs

    inputs, missing = [], []
    for spec in specs:
        ref = ref_of(spec)
        kind = info(ref).type
        if kind == pafs.FileType.Directory:
            files = _images_under(ref, recursive)
            if not files:
                missing.append(f"{spec}: folder has no images" + ("" if recursive else " (use --recursive for sub-folders)"))
            inputs += files
        elif kind == pafs.FileType.File:
            inputs.append((ref, posixpath.basename(ref.path)))
        else:
            missing.append(f"{spec}: no such file or folder")
    single = names_a_file(output) and len(inputs) == 1
    if names_a_file(output) and len(inputs) > 1:
        raise PlanError(f"-o {output} names a file, but there are {len(inputs)} inputs; give a folder")
    if names_a_file(output) and PurePosixPath(output).suffix.lower() not in OUTPUT_FORMATS:
        raise PlanError(f"-o {output}: tinct writes .png or .jpg images, not {PurePosixPath(output).suffix}")
    try:
        inputs = shard(sorted(inputs, key=lambda job: job[1]), shard_spec)
    except ValueError as e:
        raise PlanError(str(e)) from None
    if not inputs:
        raise PlanError("nothing to colorize" + (f" in shard {shard_spec}" if shard_spec and not missing else ""), missing)
    out = ref_of(output)
    out_dir = Ref(out.root, posixpath.dirname(out.path) if out.root else os.path.dirname(out.path)) if single else out
    existing = _existing(out_dir) if not overwrite else set()
    plan = Plan([], missing, [], [], out_dir)
    input_keys = {(filesystem(src.root).type_name, src.path) for src, _ in inputs}
    seen = set()
    for src, rel in inputs:
        dst = out if single else out.child(str(PurePosixPath(rel).with_suffix("." + fmt)))
        key = (filesystem(dst.root).type_name, dst.path)
        if key in input_keys:
            plan.refused.append(f"{src}: output {dst} would replace an input; choose another -o")
        elif key in seen:
            plan.refused.append(f"{src}: output {dst} is already written by another input with the same name")
        elif dst.path in existing:
            plan.skipped.append(f"{src}: {dst} exists (use --overwrite to replace it)")
        else:
            seen.add(key)
            plan.jobs.append((src, dst))
    return plan


def plan_run(specs: list[str], output: str, fmt: str = "png", *, recursive: bool = False,
             shard_spec: str | None = None, overwrite: bool = False) -> tuple[Plan, list[tuple[Ref, Ref]]]:
    """The plan of a Ray run and its jobs as :class:`Ref` pairs: local paths through
    :func:`tinct.batch.plan_colorize` (globs included), anything with a URI through
    :func:`plan_uris`."""
    from ..batch import plan_colorize

    if any(is_uri(s) for s in [*specs, output]):
        plan = plan_uris(specs, output, fmt, recursive=recursive, shard_spec=shard_spec, overwrite=overwrite)
        return plan, list(plan.jobs)
    plan = plan_colorize(specs, output, fmt, recursive=recursive, shard_spec=shard_spec, overwrite=overwrite)
    return plan, [(ref_of(src), ref_of(dst)) for src, dst in plan.jobs]
