"""The helper processes that serve one host's channels, one per input mode.

Each input mode is served by its own ``channels`` command, started as a
child process of ``channels run`` in a session of its own (so a Ctrl-C at the
terminal reaches the runner, which then stops things in order):

* Pipe: ``channels pipe JOB --root ROOT --hosts N --host-index I`` serves the
  FIFOs ``ROOT/input/data/<channel>_<epoch>`` until stopped; ready once every
  Pipe channel's ``<channel>_0`` exists.
* File: ``channels download JOB --root ROOT --hosts N --host-index I``
  downloads this host's share; ready when it has exited 0 (the script starts
  after the download, as on SageMaker).
* FastFile: ``channels mount JOB --root ROOT --foreground`` mounts each FastFile channel at
  ``ROOT/input/data/<channel>/``; ready once every mount point is mounted.

Stopping sends SIGTERM to a service's process group, then SIGKILL after
:data:`STOP_TIMEOUT` seconds; leftovers (a FIFO, a mount) are then removed
here, so a crashed server leaves nothing behind. Each service writes its
output to a log file; an error quotes the log's tail.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from channels.cache import CacheConfig
from channels.container import Layout
from channels.errors import ChannelsError
from channels.modes.file.keys import STATE_PREFIX as JOURNAL_PREFIX
from channels.spec import Job

#: Seconds a service gets to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT = 10.0
#: How often readiness is polled.
POLL = 0.02
#: Bytes of a service's log quoted in an error.
LOG_TAIL = 2000


class ServeError(ChannelsError, RuntimeError):
    """A channel could not be served (the service failed or exited early)."""


@dataclass(frozen=True)
class HostSpec:
    """What every service of one host needs to know.

    Attributes:
        job: the job.
        job_path: the job's JSON, as the ``channels`` commands read it.
        layout: this host's container directories.
        host_index: this host (0-based).
        hosts: how many hosts.
        env: the environment for the services (with this host's ``SM_*``).
        log_dir: where each service writes its log.
        endpoint_url: ``--endpoint-url`` for the services, if given.
        pipe_epochs: epochs the Pipe server serves (None: until stopped).
        plan: the job plan every service reads instead of listing (``--plan``).
        cache: the local cache of the Pipe and FastFile services; this host's is
            ``<directory>/<host>`` (each instance has its own disk).
    """

    job: Job
    job_path: Path
    layout: Layout
    host_index: int
    hosts: int
    env: Mapping[str, str]
    log_dir: Path
    endpoint_url: str | None = None
    pipe_epochs: int | None = None
    plan: str | None = None
    cache: CacheConfig | None = None

    @property
    def host(self) -> str:
        return f"algo-{self.host_index + 1}"

    def cache_arguments(self) -> list[str]:
        """``--cache-dir``/``--cache-size``/``--cache-fill`` for this host's Pipe and FastFile services (none without
        a cache)."""
        if self.cache is None:
            return []
        return ["--cache-dir", os.path.join(self.cache.directory, self.host), "--cache-size",
                str(self.cache.size_bytes), "--cache-fill", self.cache.fill]

    def channels_in(self, mode: str) -> list[str]:
        return [c.name for c in self.job.channels if self.job.mode_of(c) == mode]


class Service(ABC):
    """One ``channels`` command serving this host's channels of one input mode.

    Subclasses give the command (:meth:`arguments`) and the readiness test
    (:meth:`is_ready`); :meth:`start`, :meth:`wait_ready` and :meth:`stop`
    are the same for every mode.
    """

    mode: ClassVar[str]
    command: ClassVar[str]
    #: The script starts only after the process has exited 0 (File mode).
    runs_to_completion: ClassVar[bool] = False

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self.channels = spec.channels_in(self.mode)
        self.proc: subprocess.Popen | None = None
        self.log_path = spec.log_dir / f"{spec.host}-{self.command}.log"

    @abstractmethod
    def arguments(self) -> list[str]:
        """The command's arguments after ``channels <command>``."""

    @abstractmethod
    def is_ready(self) -> bool:
        """True once the script may start."""

    def cleanup(self) -> None:
        """Remove what a killed service may have left behind (after it exited)."""

    def before_start(self) -> None:
        """Prepare the host's directories for the command (default: nothing)."""

    def on_ready(self) -> None:
        """Called once the service is ready, before the script starts (default: nothing)."""

    def argv(self) -> list[str]:
        s = self.spec
        out = [sys.executable, "-m", "channels", self.command, str(s.job_path), "--root", str(s.layout.root),
               *self.arguments()]
        if s.endpoint_url:
            out += ["--endpoint-url", s.endpoint_url]
        if s.plan:
            out += ["--plan", s.plan]
        return out

    def start(self) -> None:
        self.before_start()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), env=dict(self.spec.env), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def exit_code(self) -> int | None:
        """The process's exit status, or None while it runs (or before it starts)."""
        return None if self.proc is None else self.proc.poll()

    def wait_ready(self, deadline: float | None, should_stop: Callable[[], bool]) -> bool:
        """Block until ready; False when ``should_stop()`` turned true first.

        Raises:
            ServeError: the process exited (with an error, or early), or the
                deadline passed; the message quotes its log.
        """
        while True:
            code = self.exit_code()
            if self.runs_to_completion and code is not None:
                if code == 0:
                    self.on_ready()
                    return True
                raise self.failure(f"exited with status {code}")
            if not self.runs_to_completion:
                if self.is_ready():
                    self.on_ready()
                    return True
                if code is not None:
                    raise self.failure(f"exited with status {code} before its channels were ready")
            if should_stop():
                return False
            if deadline is not None and time.monotonic() > deadline:
                raise self.failure("was not ready in time")
            time.sleep(POLL)

    def failure(self, what: str) -> ServeError:
        names = ", ".join(self.channels)
        return ServeError(f"{self.spec.host}: channels {self.command} ({self.mode} channels {names}) {what}; "
                          f"its log {self.log_path} ends:\n{self.log_tail()}", host=self.spec.host,
                          mode=self.mode, log=str(self.log_path))

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - LOG_TAIL))
                return f.read().decode(errors="replace").strip() or "(empty)"
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` s, then :meth:`cleanup`; returns the exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        _signal_group(proc, signal.SIGKILL)  # nothing of the service outlives it
        self.cleanup()
        return proc.returncode


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # start_new_session: its group id is its pid
    except (ProcessLookupError, PermissionError):
        pass


class PipeService(Service):
    """``channels pipe``: the FIFOs ``<channel>_<epoch>`` of every Pipe channel."""

    mode = "Pipe"
    command = "pipe"

    def arguments(self) -> list[str]:
        s = self.spec
        out = ["--hosts", str(s.hosts), "--host-index", str(s.host_index)]
        if s.pipe_epochs is not None:
            out += ["--epochs", str(s.pipe_epochs)]
        return out + s.cache_arguments()

    def is_ready(self) -> bool:
        return all(_is_fifo(self.spec.layout.fifo_path(c, 0)) for c in self.channels)

    def cleanup(self) -> None:
        remove_stale_fifos(self.spec.layout, self.channels)


class FileService(Service):
    """``channels download``: this host's share of every File channel, before the script starts."""

    mode = "File"
    command = "download"
    runs_to_completion = True

    def arguments(self) -> list[str]:
        s = self.spec
        return ["--hosts", str(s.hosts), "--host-index", str(s.host_index), "--quiet"]

    def is_ready(self) -> bool:
        return self.exit_code() == 0

    # The download keeps its journal (what is complete, for a resumed rerun)
    # in the channel directory. A script must see only the objects there, as
    # on SageMaker: the journal waits in the runner's directory while the
    # script runs, and goes back before the next download.

    def _parked(self, channel: str) -> Path:
        return self.spec.log_dir / "journals" / self.spec.host / channel

    def before_start(self) -> None:
        for c in self.channels:
            _move_all(self._parked(c).glob("*"), self.spec.layout.channel_dir(c))

    def on_ready(self) -> None:
        for c in self.channels:
            _move_all(self.spec.layout.channel_dir(c).glob(f"{JOURNAL_PREFIX}*"), self._parked(c))


class FastFileService(Service):
    """``channels mount``: each FastFile channel mounted read-only at its channel directory."""

    mode = "FastFile"
    command = "mount"

    def arguments(self) -> list[str]:
        return ["--foreground", *self.spec.cache_arguments()]  # serves until SIGTERM, then unmounts

    def is_ready(self) -> bool:
        return all(os.path.ismount(self.spec.layout.channel_dir(c)) for c in self.channels)

    def cleanup(self) -> None:
        for c in self.channels:
            unmount(self.spec.layout.channel_dir(c))


#: The service of each input mode, in the order they start.
SERVICES: dict[str, type[Service]] = {"FastFile": FastFileService, "Pipe": PipeService, "File": FileService}


def services_for(spec: HostSpec) -> list[Service]:
    """A service for each input mode the job uses, in :data:`SERVICES` order."""
    modes = {spec.job.mode_of(c) for c in spec.job.channels}
    unknown = modes - set(SERVICES)
    if unknown:
        raise ValueError(f"no service for input mode(s) {', '.join(sorted(unknown))}: "
                         f"valid modes: {', '.join(SERVICES)}")
    return [cls(spec) for mode, cls in SERVICES.items() if mode in modes]


def _move_all(paths: Iterable[Path], dest: Path) -> None:
    for path in list(paths):
        if path.is_file():
            dest.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest / path.name)


def _is_fifo(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(path.lstat().st_mode)
    except OSError:
        return False


def remove_stale_fifos(layout: Layout, channels: list[str]) -> list[Path]:
    """Remove FIFOs ``<channel>_<digits>`` left in the data dir; returns those removed."""
    removed = []
    if not layout.data_dir.is_dir():
        return removed
    for entry in layout.data_dir.iterdir():
        base, _, epoch = entry.name.rpartition("_")
        if base in channels and epoch.isdigit() and _is_fifo(entry):
            try:
                entry.unlink()
                removed.append(entry)
            except FileNotFoundError:
                pass
    return removed


def unmount(path: Path) -> bool:
    """Lazily unmount ``path`` if something is (or was, and crashed) mounted there; True if it was."""
    try:
        mounted = os.path.ismount(path)
    except OSError:
        mounted = True
    if not mounted and not _is_stale_mount(path):
        return False
    tool = shutil.which("fusermount3") or shutil.which("fusermount")
    if tool is not None:
        subprocess.run([tool, "-u", "-z", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False, timeout=30)
    return True


def _is_stale_mount(path: Path) -> bool:
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == 107  # ENOTCONN: a FUSE server that died without unmounting
    return False
