"""The cassette on disk: reading a file within its bounds, and the fsync writer.

As VCR.py's persisters: where a cassette lives and how it gets there and back. Reading
opens only a regular file (never waits on a FIFO), and hands the bytes to the serializer's
fast decoder, else its YAML decoder; writing appends one document per interaction in a
single write and fsyncs it before the response goes on (group commit for concurrent ones),
and cuts a failed write back so the file never holds a half-written document.
"""

from __future__ import annotations

import asyncio
import gc
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from exportjobs.addons.serializer import DecodeError, dump_document, load_yaml, read_own_format


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


# --- writing -------------------------------------------------------------------------------------


def _write_some(fd: int, data: memoryview) -> int:
    """One ``write(2)``; how many bytes it took (the disk may take fewer than given)."""
    return os.write(fd, data)


class CassetteWriter:
    """Appends interactions to a new cassette; ``append`` returns once the data is on disk.

    Appends that arrive while a write is in progress are written and fsynced together
    (group commit), so concurrent responses share one fsync and none waits for a later one.
    """

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.written = 0
        # Unbuffered: a failed append is cut off exactly (see _write), no buffer keeps it.
        self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self._size = 0  # bytes of complete documents in the file
        self._write(dump_document(header))
        try:  # make the new directory entry durable too
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            pass
        else:
            try:
                os.fsync(dir_fd)
            except OSError:
                pass
            finally:
                os.close(dir_fd)
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

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
        self._pending.append((data, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, b"".join(data for data, _ in batch))
            except OSError as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                self.written += len(batch)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        self._file.close()

    def close_now(self) -> None:
        """Close without waiting (on reconfiguration); pending appends still complete first."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.add_done_callback(lambda _: self._file.close())
        else:
            self._file.close()


__all__ = ["CassetteError", "CassetteWriter", "read_documents"]
