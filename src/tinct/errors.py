"""The one place every failure becomes a clear one-line message and an exit code.

tinct's own errors (:class:`TinctError` and its subclasses: ``tinct.io.ImageError``,
``tinct.checkpoint.CheckpointError``, ``tinct.backends.BackendError``,
``tinct.video.VideoError``) already name the file and the reason; each class says which
exit code it means. The rest of what can go wrong while colorizing is mapped here too:
running out of memory (Python's ``MemoryError``, and the ``RuntimeError`` PyTorch and ONNX
Runtime raise for a failed allocation) and the operating system's ``OSError`` (disk full,
permission denied). Anything else is a bug in tinct and keeps its traceback.

Exit codes (``tinct --help``, README): 0 all went well, 1 some inputs failed, 2 usage error
(bad options, nothing to do, a model that cannot be loaded).
"""

from __future__ import annotations

import errno
import os

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Substrings of the messages PyTorch, ONNX Runtime and the C allocators give for a failed
# allocation (CPU: "DefaultCPUAllocator: can't allocate memory", "not enough memory";
# CUDA: "CUDA out of memory"; ONNX Runtime: "Failed to allocate memory", "bad_alloc").
_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory",
             "failed to allocate memory", "bad_alloc", "std::bad_alloc")


class TinctError(Exception):
    """A failure tinct explains in one line; ``exit_code`` is what ``tinct`` returns for it."""

    exit_code = EXIT_FAILED


def is_out_of_memory(e: BaseException) -> bool:
    """A failed allocation, whichever library raised it."""
    if isinstance(e, MemoryError):
        return True
    if isinstance(e, OSError) and e.errno == errno.ENOMEM:
        return True
    from_runtime = isinstance(e, RuntimeError) or type(e).__module__.startswith("onnxruntime")
    return from_runtime and any(t in str(e).lower() for t in _OOM_TEXT)


def one_line(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\t``, ``\\x1b``), so a file name
    holding a newline cannot split a message's line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type's name."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def describe(e: BaseException, name: str | os.PathLike | None = None, doing: str = "colorizing") -> tuple[str, int] | None:
    """A one-line message and an exit code for ``e``, or None for an error that is a bug.

    Args:
        e: the exception.
        name: the file being processed, prefixed to messages that do not already name it.
        doing: what was under way, for the out-of-memory message.
    """
    prefix = f"{name}: " if name is not None else ""
    if isinstance(e, TinctError):
        return one_line(str(e).strip() or type(e).__name__), e.exit_code  # names may hold newlines: escaped
    if is_out_of_memory(e):
        return one_line(f"{prefix}out of memory while {doing} (try a smaller --size or --max-megapixels)"), EXIT_FAILED
    if isinstance(e, OSError):
        reason = e.strerror or first_line(e)
        where = e.filename if e.filename is not None else name
        return one_line(f"{where}: {reason}" if where is not None else reason), EXIT_FAILED
    return None
