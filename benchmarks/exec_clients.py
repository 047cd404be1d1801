"""Download commands timed as processes: from exec to exit, and from exec to their first file.

A user who types ``channels download URI DEST`` waits for the interpreter,
the imports, the listing, the plan and the checks before the first byte, then
for the bytes. ``download_bench.py --exec`` times that whole wait, beside
``s5cmd cp`` (a Go binary: no interpreter to start), with:

* ``wall``: ``perf_counter`` before ``Popen`` to ``wait4`` returning;
* ``first_file``: the same start to the first file created in DEST (an
  inotify watch, so nothing polls: the moment the first byte is about to be
  written, for both clients; our journal, written later, is ignored);
* ``cpu``: the child's user + system seconds (``wait4``'s rusage);
* ``setup``: for ``channels``, the seconds its own summary line says it
  spent on listing and checks before the first byte.

Clients take the environment as given (credentials, region) and print to a
pipe, as under a job's launcher: no progress bar.
"""

from __future__ import annotations

import ctypes
import os
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

IN_CREATE = 0x100
IN_MOVED_TO = 0x80
_EVENT_HEAD = 16  # struct inotify_event: wd, mask, cookie, len
JOURNAL = ".channels-download"
_SETUP = re.compile(r"; ([0-9.]+) s of it listing and checks before the first byte")


@dataclass(frozen=True)
class ExecRun:
    """One process, timed.

    Attributes:
        wall: seconds from exec to exit.
        first_file: seconds from exec to the first file in DEST (None: none seen).
        cpu: the child's user + system CPU seconds.
        setup: the child's own "listing and checks" seconds, where it prints them.
        output: its stdout and stderr (the last 2,000 characters).
    """

    wall: float
    first_file: float | None
    cpu: float
    setup: float | None
    output: str


class FirstFile:
    """The time the first file appears in ``folder`` (not recursive), by inotify.

    Linux only; elsewhere ``seen`` stays None. A thread blocks on the watch,
    so the measured process shares the CPU with nothing that polls.
    """

    def __init__(self, folder: str) -> None:
        self.seen: float | None = None
        self._fd = -1
        self._stop_r, self._stop_w = os.pipe()
        libc = _libc()
        if libc is not None:
            fd = libc.inotify_init1(os.O_CLOEXEC)
            if fd >= 0 and libc.inotify_add_watch(fd, os.fsencode(folder), IN_CREATE | IN_MOVED_TO) >= 0:
                self._fd = fd
            elif fd >= 0:
                os.close(fd)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        if self._fd < 0:
            return
        while True:
            ready, _, _ = select.select([self._fd, self._stop_r], [], [])
            now = time.perf_counter()
            if self._stop_r in ready:
                return
            data = os.read(self._fd, 65536)
            pos = 0
            while pos + _EVENT_HEAD <= len(data):
                length = int.from_bytes(data[pos + 12:pos + 16], "little")
                name = data[pos + _EVENT_HEAD:pos + _EVENT_HEAD + length].rstrip(b"\0").decode(errors="replace")
                pos += _EVENT_HEAD + length
                if not name.startswith(JOURNAL):
                    self.seen = now
                    return

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join()
        for fd in (self._fd, self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def run_timed(argv: list[str], dest: str, env: dict[str, str] | None = None) -> ExecRun:
    """Run ``argv`` (which downloads into the existing, empty ``dest``) and time it.

    Raises:
        RuntimeError: the command failed; the message holds its output's tail.
    """
    watch = FirstFile(dest)
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        out = proc.stdout.read()  # the pipe closes at exit
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
    finally:
        watch.close()
    text = out.decode(errors="replace")
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {proc.returncode}): {text[-2000:]}")
    m = _SETUP.search(text)
    return ExecRun(wall, None if watch.seen is None else watch.seen - t0, usage.ru_utime + usage.ru_stime,
                   float(m.group(1)) if m else None, text[-2000:])


def channels_argv(uri: str, dest: str, endpoint_url: str) -> list[str]:
    """``channels download URI DEST`` as a user types it (the console script beside this Python)."""
    exe = os.path.join(os.path.dirname(sys.executable), "channels")
    head = [exe] if os.access(exe, os.X_OK) else [sys.executable, "-m", "channels"]
    return [*head, "download", uri, dest, "--endpoint-url", endpoint_url]


def s5cmd_argv(exe: str, uri: str, dest: str, endpoint_url: str) -> list[str]:
    """``s5cmd cp 'URI*' DEST/`` with s5cmd's own defaults (256 workers)."""
    return [exe, "--endpoint-url", endpoint_url, "cp", f"{uri}*", dest.rstrip("/") + "/"]
