"""Our modes as runners: read the way a training script reads them.

* ``pipe``: :class:`~channels.modes.pipe.PipeReader` with
  ``framing="recordio"``: every record of every object, counted.
* ``file``: :func:`~channels.modes.file.download` of the whole prefix to a
  fresh folder (tmpfs where there is one, so the disk is not measured),
  listing included, as the download tools it is compared with list the
  prefix themselves. Its time to first byte is the whole download: a
  File-mode job's script starts only when the download is complete.
* ``fastfile``: :class:`~channels.modes.fastfile.FastFileView`, each file
  opened in key order and read to its end in 1 MiB ``readinto`` calls.

:func:`stream` (``Transport.stream`` alone, the Pipe and File hot path) is
not in the catalog: ``benchmarks/test_bench_transport.py`` measures it.

A mode whose module is not importable yet is listed as unavailable with the
reason, and the harness skips it with a note.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from channels.bench.base import DOWNLOAD, MODE, READ_SIZE, Body, Meter, Runner, Target, missing, scratch_root


@contextlib.contextmanager
def pipe(target: Target) -> Iterator[Body]:
    from channels.modes.pipe.reader import PipeReader

    framing = "recordio" if target.records_per_object else "raw"
    reader = PipeReader(target.uri, framing=framing, store=target.store())
    reader.listing  # listed now, untimed, and reused by every epoch (as for every runner)

    def body(meter: Meter) -> None:
        records = 0
        before, stats_before = dict(reader.counts), reader.stats()
        it = reader.epoch(0)
        try:
            for _record in it:
                if records == 0:
                    meter.first_byte()
                records += 1
                if records & 1023 == 0 and meter.expired():
                    break
        finally:
            it.close()
        counts = _delta(reader.counts, before)  # bytes delivered to the framer, objects begun
        meter.add(counts["bytes_out"], counts["objects"], records)
        meter.counters = _delta(reader.stats(), stats_before)

    try:
        yield body
    finally:
        reader.close()


@contextlib.contextmanager
def file(target: Target, relist: bool = True) -> Iterator[Body]:
    """:func:`~channels.modes.file.download` of the whole prefix to a fresh folder under ``target.workdir``.

    Args:
        relist: list the prefix inside the body, as ``channels download URI`` and the download
            tools do (False: the target's listing, made before the clock starts).
    """
    from channels.modes.file.download import download

    root = tempfile.mkdtemp(prefix="channels-bench-", dir=target.workdir or scratch_root())
    dest = os.path.join(root, "data")
    rpo = target.records_per_object or 0
    source = target.uri if relist else target.listing

    def body(meter: Meter) -> None:
        result = download(source, dest, store=target.store(), progress=False)
        meter.first_byte()  # the script starts when the download is complete
        meter.add(result.bytes, result.objects, result.objects * rpo)
        meter.counters = {"requests": result.requests, "retries": result.retries}

    body.dest = dest
    body.reset = lambda: shutil.rmtree(dest, ignore_errors=True)  # the next run downloads anew
    try:
        yield body
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def fastfile(target: Target) -> Iterator[Body]:
    from channels.modes.fastfile.view import FastFileView

    view = FastFileView(target.uri, target.store())
    view.load()
    paths = _walk_files(view)
    buf = bytearray(READ_SIZE)
    rpo = target.records_per_object or 0

    def body(meter: Meter) -> None:
        before = view.stats.snapshot()
        for path in paths:
            if meter.expired():
                break
            with view.open(path) as f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    meter.add(n)
            meter.add(0, 1, rpo)
        meter.counters = _delta(view.stats.snapshot(), before)

    try:
        yield body
    finally:
        view.close()


@contextlib.contextmanager
def stream(target: Target, config=None) -> Iterator[Body]:
    """Every chunk of ``Transport.stream`` over the listing (one transport, reused by every call).

    Args:
        config: the :class:`~channels.transport.TransportConfig` (None: its defaults).
    """
    from channels.transport import Transport

    transport = Transport(target.store(), config)
    refs = target.listing.refs
    rpo = target.records_per_object or 0

    def body(meter: Meter) -> None:
        with transport.stream(refs) as chunks:
            for chunk in chunks:
                meter.add(len(chunk.data))
        meter.add(0, len(refs), rpo * len(refs))

    try:
        yield body
    finally:
        transport.close()


def _delta(after: dict, before: dict) -> dict:
    """Counters gained since ``before`` (peaks and other non-additive values as they are)."""
    return {k: v - before.get(k, 0) if "peak" not in k else v for k, v in after.items()}


def _walk_files(view) -> list[str]:
    out = []
    for dirpath, _, files in view.walk():
        out.extend(f"{dirpath}/{f}" if dirpath else f for f in files)
    return out


RUNNERS = (
    Runner("pipe", MODE, "PipeReader, framing=recordio: every record counted", pipe,
           missing("channels.modes.pipe.reader")),
    Runner("file", MODE, "download() of the prefix (listing included) to tmpfs; TTFB = whole download", file,
           missing("channels.modes.file.download"), job=DOWNLOAD),
    Runner("fastfile", MODE, "FastFileView: each file read to its end, 1 MiB readinto", fastfile,
           missing("channels.modes.fastfile.view")),
)
