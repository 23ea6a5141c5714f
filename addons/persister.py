"""The cassette on disk: reading a file within its bounds, and the fsync writer.

As VCR.py's persisters: where a cassette lives and how it gets there and back. Reading
opens only a regular file (never waits on a FIFO), and hands the bytes to the serializer's
fast decoder, else its YAML decoder; writing appends one document per interaction in a
single write and fsyncs it before the response goes on (group commit for concurrent ones),
and cuts a failed write back so the file never holds a half-written document.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import queue
import stat
import tempfile
import threading
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from exportjobs.addons.serializer import (
    END_MARKER,
    DecodeError,
    dump_document,
    load_yaml,
    read_own_format,
)


class CassetteError(Exception):
    """A cassette that cannot be used; the message names the file and what to do."""

    def __init__(self, path: str | os.PathLike[str], problem: str, hint: str, line: int = 0) -> None:
        where = f", line {line}" if line else ""
        super().__init__(f"cassette {os.fspath(path)}{where}: {problem}; {hint}")
        self.path = os.fspath(path)
        self.line = line


# --- reading -------------------------------------------------------------------------------------


def _open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading, if it is a regular file. Opened without blocking, so a
    FIFO (which would wait forever for a writer) is refused rather than waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CassetteError(path, "no such file", "record one first with --mode record") from None
    except IsADirectoryError:
        raise CassetteError(path, "is a folder, not a file", "pass the cassette file inside it") from None
    except OSError as exc:
        raise CassetteError(path, f"cannot be read ({exc.strerror})", "check the path and its permissions") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe, socket or device)"
        raise CassetteError(path, f"is {what}", "pass the cassette file written by --mode record")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_documents(path: Path) -> tuple[list[tuple[int, Any]], int]:
    """The complete documents of the file at ``path`` (with the line each starts at) and the
    number of bytes of a torn tail after them. Raises ``CassetteError`` naming the file."""
    collecting = gc.isenabled()
    gc.disable()  # millions of new containers, none garbage: collections would only cost time
    try:
        with _open_regular(path) as file:
            try:
                read = read_own_format(file)
                if read is None or not read[0]:  # the YAML reader names what it holds instead
                    file.seek(0)
                    read = load_yaml(file.read())
            except OSError as exc:
                raise CassetteError(path, f"cannot be read ({exc.strerror})",
                                    "check the path and its permissions") from None
            except DecodeError as exc:
                raise CassetteError(path, exc.problem, exc.hint, exc.line) from None
    finally:
        if collecting:
            gc.enable()
    return read


def complete_size(path: str | os.PathLike[str]) -> int:
    """How many bytes of the cassette at ``path`` are complete documents (its size less a
    torn tail); raises ``CassetteError``."""
    path = Path(path)
    _, tail = read_documents(path)
    return path.stat().st_size - tail



# The header is a few hundred bytes; one larger than this is not the writer's.
MAX_HEADER_BYTES = 1 << 20


def _header_span(path: Path, file: BinaryIO) -> tuple[bytes, int]:
    """The first bytes of ``file`` (at most MAX_HEADER_BYTES) and the end of its first
    document, after its end marker; ``CassetteError`` when there is none within them."""
    head = file.read(MAX_HEADER_BYTES)
    marker = END_MARKER.search(head)
    if marker is None:
        raise CassetteError(path, f"has no complete first document (header) in its first "
                            f"{MAX_HEADER_BYTES >> 20} MiB", "pass a cassette written by --mode record")
    return head, marker.end()


def read_header_document(path: str | os.PathLike[str]) -> Any:
    """The first document of the cassette at ``path`` (its header), read without reading
    the interactions after it; raises ``CassetteError`` naming the file."""
    path = Path(path)
    with _open_regular(path) as file:
        try:
            head, end = _header_span(path, file)
        except OSError as exc:
            raise CassetteError(path, f"cannot be read ({exc.strerror})",
                                "check the path and its permissions") from None
    try:
        documents, _ = load_yaml(head[:end])
    except DecodeError as exc:
        raise CassetteError(path, exc.problem, exc.hint, exc.line) from None
    if not documents:
        raise CassetteError(path, "is empty or holds no complete document", "record one with --mode record")
    return documents[0][1]


def replace_header(path: str | os.PathLike[str], header: dict[str, Any]) -> None:
    """Give the cassette at ``path`` a new first document (``header``), every later byte
    kept as it is, through ``write_beside`` (the cassette is at every moment either the old
    file or the new one, whole) and with the cassette's permissions. Only for a cassette no
    writer has open (after the proxy has closed)."""
    path = Path(path)
    with _open_regular(path) as source:
        head, end = _header_span(path, source)

        def rest() -> Iterator[bytes]:
            yield dump_document(header)
            yield head[end:]
            while block := source.read(_COPY_BLOCK):
                yield block

        write_beside(path, rest(), ".header", stat.S_IMODE(os.fstat(source.fileno()).st_mode))


def write_beside(path: str | os.PathLike[str], chunks: Iterable[bytes], suffix: str,
                 mode: int = 0o644) -> None:
    """``chunks`` at ``path`` whole or not at all: written to a temporary file beside it,
    fsynced, given ``mode`` (not mkstemp's 0600), renamed over ``path`` and the rename made
    durable. On any failure the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.chmod(temp, mode)
        except OSError:
            pass
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


_COPY_BLOCK = 1 << 20


# --- writing -------------------------------------------------------------------------------------


def _write_some(fd: int, data: memoryview) -> int:
    """One ``write(2)``; how many bytes it took (the disk may take fewer than given)."""
    return os.write(fd, data)


def fsync_dir(path: Path) -> None:
    """Make a new or renamed directory entry under ``path`` durable (where the OS allows)."""
    try:
        dir_fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class CassetteWriter:
    """Appends interactions to a cassette; ``append`` returns once the data is on disk.

    Appends that arrive while a write is in progress are written and fsynced together
    (group commit), so concurrent responses share one fsync and none waits for a later one.
    The writes and fsyncs happen on one thread of the writer's own, started on the first
    append and stopped on close, so the event loop serves on while the disk works; handing
    a batch to it and back costs less than a pool's ``run_in_executor`` per batch.

    Where an existing cassette is recorded afresh (``replace``), the new one is written to a
    temporary file beside it and renamed over it only once it holds its first interaction:
    until then the previous file is untouched, and a run that records nothing keeps it.
    """

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any]) -> None:
        self.path = Path(path)
        self._size = 0  # bytes of complete documents in the file
        self._target: Path | None = None  # the cassette a temporary file replaces on first append
        self._idle_state()
        if self.path.exists():
            fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".recording",
                                        dir=self.path.parent)
            self._file: BinaryIO = os.fdopen(fd, "wb", buffering=0)
            try:  # the replacement keeps the cassette's permissions, not mkstemp's 0600
                os.chmod(fd, stat.S_IMODE(os.stat(self.path).st_mode))
            except OSError:
                pass
            self._target, self.path = self.path, Path(temp)
        else:
            # Unbuffered: a failed append is cut off exactly (see _write), no buffer keeps it.
            self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self._write(dump_document(header))
        fsync_dir(self.path.parent)

    def _idle_state(self) -> None:
        self.written = 0
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._busy = False  # a batch is on its way to the thread or with it
        self._jobs: queue.SimpleQueue[_Job | None] | None = None  # the thread's, once started
        self._idle: list[asyncio.Future[None]] = []  # close() waiting for the last batch
        self._close_when_idle = False
        self._closed = False

    @classmethod
    def appending(cls, path: str | os.PathLike[str], complete: int) -> CassetteWriter:
        """A writer that appends to the existing cassette at ``path``, whose first
        ``complete`` bytes are its complete documents (header first): a torn tail after them
        (a crash's half-written document, which no reader uses) is cut off first, so every
        new document follows a complete one."""
        self = cls.__new__(cls)
        self.path = Path(path)
        self._target = None
        self._idle_state()
        self._file = open(self.path, "r+b", buffering=0)  # noqa: SIM115 - closed in close()
        fd = self._file.fileno()
        if os.fstat(fd).st_size != complete:
            os.ftruncate(fd, complete)
            os.fsync(fd)
        os.lseek(fd, complete, os.SEEK_SET)
        self._size = complete
        return self

    @property
    def replacing(self) -> Path | None:
        """The cassette this writer will replace on its first append, while it has not yet."""
        return self._target

    def _write(self, blob: bytes) -> None:
        """Write ``blob`` and fsync it, or leave the file as it was: on any failure (disk
        full, quota, I/O error) the file is cut back to its last complete document, so no
        client that is told its response was not recorded finds it in the cassette later."""
        fd = self._file.fileno()
        try:
            view = memoryview(blob)
            while view:
                view = view[_write_some(fd, view):]
            os.fsync(fd)
            if self._target is not None and self._size:  # the first interaction is on disk
                os.replace(self.path, self._target)
                fsync_dir(self._target.parent)
                self.path, self._target = self._target, None
        except OSError:
            try:
                os.ftruncate(fd, self._size)  # shrinking needs no space
                os.lseek(fd, self._size, os.SEEK_SET)
                os.fsync(fd)
            except OSError:  # pragma: no cover - the reader drops a torn tail anyway
                pass
            raise
        self._size += len(blob)

    async def append(self, doc: dict[str, Any]) -> None:
        """Write ``doc`` and fsync it; raises OSError when the disk refuses."""
        data = dump_document(doc)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if self._closed:
            raise OSError(errno.EBADF, "the cassette writer is closed")
        self._pending.append((data, done))
        if not self._busy:
            # sent once this turn of the loop is over: appends made in the same turn (other
            # responses that arrived together) go in the same batch, with one fsync
            self._busy = True
            loop.call_soon(self._send, loop)
        await done

    def _send(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand everything pending to the writing thread, as one batch (on the loop)."""
        batch, self._pending = self._pending, []
        self._busy = True
        if self._jobs is None:
            jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
            self._jobs = jobs
            # The thread holds the writer weakly: a writer dropped unclosed stops its thread.
            threading.Thread(target=_run, args=(weakref.ref(self), jobs), daemon=True,
                             name=f"cassette writer {self.path.name}").start()
            weakref.finalize(self, jobs.put, None)
        self._jobs.put((loop, batch))

    def _written(self, loop: asyncio.AbstractEventLoop,
                 batch: list[tuple[bytes, asyncio.Future[None]]], error: BaseException | None) -> None:
        """A batch is on disk (or failed): its waiters go on; the next batch goes (on the loop)."""
        self._busy = False
        if error is None:
            self.written += len(batch)
        for _, fut in batch:
            if not fut.done():
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)
        if self._pending:
            self._busy = True
            loop.call_soon(self._send, loop)
            return
        for waiter in self._idle:
            if not waiter.done():
                waiter.set_result(None)
        self._idle = []
        if self._close_when_idle:
            self._close_file()

    async def close(self) -> None:
        """Close once every append made so far is on disk (or has failed)."""
        while self._busy or self._pending:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            await asyncio.shield(waiter)
        self._close_file()

    def close_now(self) -> None:
        """Close without waiting (on reconfiguration); pending appends still complete first."""
        if self._busy or self._pending:
            self._close_when_idle = True
        else:
            self._close_file()

    def _close_file(self) -> None:
        """Stop the thread and close the file; a temporary one that never got an interaction
        is removed, which leaves the cassette it would have replaced as it was."""
        if self._closed:
            return
        self._closed = True
        if self._jobs is not None:
            self._jobs.put(None)
        self._file.close()
        if self._target is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass


# A batch for the writing thread: the loop to tell, and each document with its waiter.
_Job = tuple[asyncio.AbstractEventLoop, list[tuple[bytes, "asyncio.Future[None]"]]]


def _run(writer: weakref.ref[CassetteWriter], jobs: queue.SimpleQueue[_Job | None]) -> None:
    """A writer's thread: each batch in one write and one fsync, then its waiters are told
    on their loop (every one of them, of a failure too). Ends on None."""
    while (job := jobs.get()) is not None:
        loop, batch = job
        error: BaseException | None = None
        try:
            live = writer()
            if live is None:
                raise OSError(errno.EBADF, "the cassette writer is gone")
            live._write(b"".join(data for data, _ in batch))
        except BaseException as exc:  # noqa: BLE001 - told to every waiter of the batch
            error = exc
        try:
            loop.call_soon_threadsafe(_written, writer, loop, batch, error)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass
        del live


def _written(writer: weakref.ref[CassetteWriter], loop: asyncio.AbstractEventLoop,
             batch: list[tuple[bytes, asyncio.Future[None]]], error: BaseException | None) -> None:
    live = writer()
    if live is not None:
        live._written(loop, batch, error)
        return
    for _, fut in batch:  # pragma: no cover - a writer is not dropped while it writes
        if not fut.done():
            fut.set_exception(error or OSError(errno.EBADF, "the cassette writer is gone"))


__all__ = [
    "CassetteError",
    "CassetteWriter",
    "complete_size",
    "read_documents",
    "read_header_document",
    "replace_header",
    "write_beside",
]
