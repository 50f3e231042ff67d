"""What every subcommand shares about its outputs and its exit: paths checked before any work, files
written whole or not at all, optional dependencies checked up front, and Ctrl-C.

A command writes into a temporary sibling of its output (``staged_dir`` / ``staged_file``) and renames
it into place at the end, so an interrupted or failed run leaves nothing that looks complete. The
temporaries in flight are listed in ``PARTIAL``; ``interrupted`` removes them before exiting.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

PARTIAL: set[str] = set()  # temporary outputs in flight, removed on Ctrl-C
_exiting = threading.Lock()

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class MissingDependency(Exception):
    """An optional dependency is not installed: printed with the ``pip install`` line, exit code 3."""


def require(module: str, extra: str, purpose: str) -> None:
    """Import ``module`` now (before any work), or raise ``MissingDependency`` naming the extra to install."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingDependency(
            f"{purpose} needs {module}, which is not installed: pip install 'gradkit[{extra}]'"
        ) from None


def check_writable(flag: str, path: str | os.PathLike, directory: bool) -> None:
    """Fail now with a ValueError naming ``flag`` if ``path`` could not be written at the end of the run.

    Missing parent folders are fine (they are created); the nearest existing one must be a writable
    folder, and ``path`` itself, if it exists, a folder (``directory=True``) or a file.
    """
    path = Path(path)
    if path.exists() and path.is_dir() != directory:
        kind = "is a file, not a folder" if directory else "is a folder, not a file"
        raise ValueError(f"{flag} {str(path)!r} {kind}")
    existing = path.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag} {str(path)!r}: {str(existing)!r} is a file, so nothing can be written under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {str(path)!r}: no permission to write in {str(existing)!r}")


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to ``out``; on success move its files into ``out``, else delete it."""
    out = Path(out)
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".gradkit-", dir=out.absolute().parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the output is an ordinary folder
    PARTIAL.add(tmp)
    try:
        yield Path(tmp)
        if out.is_dir():
            for name in os.listdir(tmp):
                os.replace(os.path.join(tmp, name), out / name)
            os.rmdir(tmp)
        else:
            os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        PARTIAL.discard(tmp)


@contextlib.contextmanager
def staged_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file name next to ``path`` (same suffix); on success rename it to ``path``."""
    path = Path(path)
    path.absolute().parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.absolute().parent)
    os.close(fd)
    PARTIAL.add(tmp)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        PARTIAL.discard(tmp)


def interrupted() -> None:
    """Ctrl-C: remove the partial outputs, say so in one line, exit 130 at once (from any thread)."""
    if not _exiting.acquire(blocking=False):
        time.sleep(10)  # the other path (signal handler or watcher thread) is exiting; never return to work
        os._exit(EXIT_INTERRUPTED)
    for tmp in list(PARTIAL):
        shutil.rmtree(tmp, ignore_errors=True) if os.path.isdir(tmp) else Path(tmp).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        if sys.stdout.isatty():
            os.write(1, b"\x1b[?25h\n")  # a progress bar may have hidden the cursor
        os.write(2, b"gradkit: interrupted\n")
    os._exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def exit_on_interrupt() -> Iterator[None]:
    """Make Ctrl-C stop the command promptly, even inside a long compiled computation.

    Python runs signal handlers only between bytecodes of the main thread, which sits in XLA for a
    whole epoch or race. The wakeup fd gets a byte the moment the signal arrives; a watcher thread
    reading it calls ``interrupted`` while the main thread is still busy.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous_handler = signal.signal(signal.SIGINT, lambda signum, frame: interrupted())
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def watch() -> None:
        while data := os.read(read_fd, 64):
            if signal.SIGINT in data:
                interrupted()

    watcher = threading.Thread(target=watch, name="gradkit-interrupt", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous_handler)
        os.close(write_fd)  # the watcher reads end-of-file and returns
        watcher.join(timeout=1)
        os.close(read_fd)
