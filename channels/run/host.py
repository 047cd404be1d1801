"""One host of ``channels run``: serve its channels, run its script, stop it on time.

The script runs in a process group of its own, like the processes of a
container. On a stop (MaxRuntimeInSeconds, Ctrl-C, another host's failure)
SIGTERM goes to the command's own process, as ``docker stop`` sends it to a
container's main process; SIGKILL goes to the whole group when the grace
period is over. When the command's process exits, whatever it left running
in its group is killed, as a container's processes are.
"""

from __future__ import annotations

import enum
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from channels.run.serve import POLL, HostSpec, ServeError, Service, services_for


class Outcome(enum.Enum):
    """How a host (or the job) ended; the values are SageMaker's words."""

    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"  # stopped, and the script ended within the grace period
    KILLED = "Killed"  # stopped, and the script got SIGKILL after the grace period


@dataclass(frozen=True)
class HostResult:
    """How one host ended.

    Attributes:
        host: its name (``algo-1``...).
        outcome: see :class:`Outcome`.
        returncode: the script's status as ``subprocess`` gives it (negative:
            the signal that ended it), None if it never ran.
        reason: one line: why it ended.
        script_started: whether the script ran at all.
        setup_failed: a channel could not be served (before or while the script ran).
        seconds: how long the script ran.
        stop_reason: why it was stopped ("max-runtime", "interrupted", "peer-failed",
            "a channel failed"), None if it was not.
    """

    host: str
    outcome: Outcome
    returncode: int | None
    reason: str
    script_started: bool = False
    setup_failed: bool = False
    seconds: float = 0.0
    stop_reason: str | None = None

    @property
    def exit_status(self) -> int:
        """The status a shell would show: the script's code, 128 + signal, or 2 when it never ran."""
        if self.returncode is None:
            return 2
        return self.returncode if self.returncode >= 0 else 128 - self.returncode


def describe_status(returncode: int) -> str:
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"was ended by {name}"


class HostRun:
    """Runs one host; :meth:`run` blocks (call it in a thread), :meth:`request_stop` from anywhere."""

    def __init__(self, spec: HostSpec, command: Sequence[str], *, cwd: Path | None = None,
                 max_runtime: float = 86400.0, grace_seconds: float = 120.0, prefix_output: bool = False) -> None:
        self.spec = spec
        self.command = list(command)
        self.cwd = cwd
        self.max_runtime = max_runtime
        self.grace_seconds = grace_seconds
        self.prefix_output = prefix_output
        self.result: HostResult | None = None
        self._stop_reason: str | None = None
        self._stop = threading.Event()

    def request_stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stop.set()

    def kill_now(self) -> None:
        """Stop with no grace period left: SIGKILL at the next check."""
        self.grace_seconds = 0.0
        self.request_stop("interrupted")

    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> HostResult:
        try:
            self.result = self._run()
        except ServeError as exc:
            self.result = HostResult(self.spec.host, Outcome.FAILED, None, f"ClientError: {exc}",
                                     setup_failed=True)
        except Exception as exc:  # noqa: BLE001 - a host thread must always report
            self.result = HostResult(self.spec.host, Outcome.FAILED, None, f"{type(exc).__name__}: {exc}",
                                     setup_failed=True)
        return self.result

    # ------------------------------------------------------------ internals

    def _run(self) -> HostResult:
        host = self.spec.host
        services = services_for(self.spec)
        try:
            for s in services:
                s.start()
            for s in services:
                if not s.wait_ready(None, self.stopping):
                    return HostResult(host, Outcome.STOPPED, None,
                                      f"stopped before the script started ({self._stop_reason})",
                                      stop_reason=self._stop_reason)
            return self._supervise(services)
        finally:
            for s in reversed(services):
                s.stop()

    def _supervise(self, services: list[Service]) -> HostResult:
        host = self.spec.host
        started = time.monotonic()
        proc = subprocess.Popen(
            self.command, env=dict(self.spec.env), cwd=self.cwd, start_new_session=True,
            stdin=subprocess.DEVNULL if self.prefix_output else None,
            stdout=subprocess.PIPE if self.prefix_output else None,
            stderr=subprocess.STDOUT if self.prefix_output else None)
        pump = None
        if self.prefix_output:
            pump = threading.Thread(target=_prefix_lines, args=(proc.stdout, f"[{host}] "), daemon=True)
            pump.start()
        term_at: float | None = None
        killed = False
        service_error: ServeError | None = None
        while True:
            try:
                rc = proc.wait(POLL * 2.5)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if now >= started + self.max_runtime:
                self.request_stop("max-runtime")
            if term_at is None and self._stop.is_set():
                _send(proc.pid, signal.SIGTERM, group=False)
                term_at = now
            elif term_at is not None and not killed and now >= term_at + self.grace_seconds:
                _send(proc.pid, signal.SIGKILL, group=True)
                killed = True
            if service_error is None:
                service_error = _broken_service(services)
                if service_error is not None:
                    self.request_stop("a channel failed")
        _send(proc.pid, signal.SIGKILL, group=True)  # the container's other processes end with it
        if pump is not None:
            pump.join(5)
        seconds = time.monotonic() - started
        status = describe_status(rc)
        why = self._stop_reason if term_at is not None else None
        if service_error is not None:
            return HostResult(host, Outcome.FAILED, rc, f"ClientError: {service_error}; the script then {status}",
                              True, True, seconds, why)
        if killed:
            return HostResult(host, Outcome.KILLED, rc,
                              f"the script ignored SIGTERM for the {self.grace_seconds:g} s grace period "
                              f"({why}) and was killed with SIGKILL", True, False, seconds, why)
        if term_at is not None:
            return HostResult(host, Outcome.STOPPED, rc,
                              f"the script {status} {time.monotonic() - term_at:.1f} s after SIGTERM "
                              f"({why})", True, False, seconds, why)
        if rc == 0:
            return HostResult(host, Outcome.COMPLETED, rc, "the script exited with status 0", True, False, seconds)
        return HostResult(host, Outcome.FAILED, rc,
                          f"AlgorithmError: {' '.join(self.command)[:200]} {status}", True, False, seconds)


def _broken_service(services: list[Service]) -> ServeError | None:
    """A long-running service that died with an error while the script ran, if any."""
    for s in services:
        if s.runs_to_completion:
            continue
        code = s.exit_code()
        if code not in (None, 0):
            return s.failure(f"exited with status {code} while the script ran")
    return None


def _send(pid: int, sig: int, *, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, sig)  # start_new_session: the group id is the pid
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _prefix_lines(stream: BinaryIO, prefix: str) -> None:
    """Copy a host's output to ours, each line prefixed with the host's name."""
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    tag = prefix.encode()
    with stream:
        for line in iter(stream.readline, b""):
            if out is not None:
                out.write(tag + line)
                out.flush()
            else:  # a text-only stdout (e.g. captured)
                sys.stdout.write(prefix + line.decode(errors="replace"))
