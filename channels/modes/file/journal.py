"""What a download has completed, recorded beside the data so a rerun can skip it.

Each host appends to its own journal, ``DEST/.channels-download.<host>.jsonl``:
one JSON line per completed object, ``{"k": key, "s": size, "e": etag,
"m": mtime_ns}``, written only after the object's file was renamed into place.
Lines are appended in batches; a line cut short by a crash is ignored. At the
end of a run (or on interrupt) the journal is compacted: rewritten to a
temporary file and renamed over the old one.

An object is up to date when a journal (any host's: hosts may share DEST)
records it with the listed size and ETag, and the file at its key is a regular
file whose size and modification time are the recorded ones. A completed file
whose record was not written yet is therefore fetched again, never trusted;
so is a file edited since.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from pathlib import Path

from channels.listing import ObjectRef
from channels.modes.file.keys import STATE_PREFIX

#: Records appended per write, at most (also written every FLUSH_SECONDS).
BATCH = 512
FLUSH_SECONDS = 1.0
#: The journal's mode (less the umask): never writable by others, who could
#: otherwise mark objects as done.
FILE_MODE = 0o644
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class DownloadState:
    """The journal of one host's completed objects in ``dest``.

    Args:
        dest: the destination directory (need not exist yet).
        host: this host's name; names the journal file.
    """

    def __init__(self, dest: Path, host: str) -> None:
        self.dest = dest
        self.path = dest / f"{STATE_PREFIX}.{host}.jsonl"
        # Invariant: records holds every line of every journal read at load
        # time plus every object added since; _pending the added lines not yet
        # appended to self.path.
        self.records: dict[str, tuple[int, str | None, int]] = {}
        self._own: dict[str, tuple[int, str | None, int]] = {}
        self._pending: list[str] = []
        self._flushed_at = time.monotonic()
        self._fh = None

    def load(self) -> DownloadState:
        """Read every host's journal in ``dest`` (this host's last, so it wins)."""
        if not self.dest.is_dir():
            return self
        others = sorted(p for p in self.dest.glob(f"{STATE_PREFIX}.*.jsonl") if p != self.path)
        for path in [*others, self.path]:
            got = _read(path)
            self.records.update(got)
            if path == self.path:
                self._own.update(got)
        return self

    def up_to_date(self, ref: ObjectRef) -> bool:
        """True when the file at ``ref.key`` is the recorded, listed version."""
        rec = self.records.get(ref.key)
        if rec is None or rec[0] != ref.size or rec[1] != ref.etag:
            return False
        try:
            st = os.stat(os.path.join(self.dest, ref.key), follow_symlinks=False)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == rec[0] and st.st_mtime_ns == rec[2]

    def add(self, ref: ObjectRef, st: os.stat_result) -> None:
        """Record a completed object (its file already under its final name)."""
        rec = (st.st_size, ref.etag, st.st_mtime_ns)
        self.records[ref.key] = rec
        self._own[ref.key] = rec
        self._pending.append(_line(ref.key, rec))
        if len(self._pending) >= BATCH or time.monotonic() - self._flushed_at >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Append the pending records to the journal."""
        if not self._pending:
            return
        if self._fh is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _CLOEXEC, FILE_MODE)
            self._fh = os.fdopen(fd, "a", encoding="utf-8")  # kept open for the run
        self._fh.write("".join(self._pending))
        self._fh.flush()
        self._pending.clear()
        self._flushed_at = time.monotonic()

    def close(self) -> None:
        """Flush, then compact this host's journal (temporary file + rename)."""
        try:
            self.flush()
        finally:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
        if not self._own or not self.dest.is_dir():
            return
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("".join(_line(k, r) for k, r in self._own.items()))
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _line(key: str, rec: tuple[int, str | None, int]) -> str:
    return json.dumps({"k": key, "s": rec[0], "e": rec[1], "m": rec[2]}, separators=(",", ":")) + "\n"


def _read(path: Path) -> dict[str, tuple[int, str | None, int]]:
    out: dict[str, tuple[int, str | None, int]] = {}
    try:
        fh = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError:
        return out
    with fh:
        for line in fh:
            try:
                d = json.loads(line)
                out[d["k"]] = (int(d["s"]), d["e"], int(d["m"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash, or not ours
    return out
