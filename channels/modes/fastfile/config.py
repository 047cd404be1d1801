"""FastFile's knobs: one frozen, validated configuration shared by every file of a view."""

from __future__ import annotations

from dataclasses import dataclass

from channels.units import KIB, MIB


@dataclass(frozen=True)
class ReadaheadConfig:
    """Readahead knobs, shared by every file of a view.

    Attributes:
        initial_window: bytes the first read after ``open`` fetches.
        max_window: the cap of a doubling window.
        seek_window: the least a read after a seek fetches.
        part_size: a window is fetched as concurrent parts of about this
            (at most 1.5 times it: no runt parts).
        budget_bytes: the most window-buffer bytes all files hold at once.
            512 MiB, Pipe's: on a far store the files fetched ahead must
            cover the bandwidth-delay product (at S3's 20 ms and 90 MB/s per
            connection, a reader at 2 GB/s needs about 25 first windows of
            16 MiB in flight, see ``pacing``); a near store uses no more
            than before (``prefetch_files``).
        max_workers: fetch threads per view (parts in flight at once): 32,
            for the files ahead on a far store; a near store keeps about
            ``prefetch_files`` + 2 busy. Threads start as needed.
        whole_object_bytes: an object of at most this many bytes whose first
            read starts at 0 and asks for ``whole_object_hint`` bytes or more
            is fetched whole, in one request (as Pipe fetches it): per-request
            cost outweighs the bytes there. 0 turns this off.
        whole_object_hint: the first read's size that says "reading on"
            (``cat`` asks 128 KiB, the kernel's first FUSE read 256 KiB); a
            smaller one (a header probe) gets ``initial_window``.
        prefetch_depth: windows kept fetching ahead of the one being read,
            budget permitting (2: request latency overlaps, not only transfer).
        prefetch_files: in a FastFile view, once a file is read on from its
            start (a first read from 0 of ``whole_object_hint`` bytes or
            more, or a second sequential read), the first window of this
            many files that follow it (in ``walk`` order, at the stride the
            reader goes from file to file) is fetched before they are
            opened; at most half the budget is held so. 0 turns it off.
            Measured here (64 x 16 MiB, moto on loopback, pairs of runs):
            one view reader got 0.905x Pipe's MB/s with 8 against 0.892x
            with 4. On a far store the view fetches more, by the link it
            measures (:mod:`~channels.modes.fastfile.pacing`).
        forward_tolerance: a read this far past the last one's end still
            counts as sequential, as does one within four read sizes or the
            last window's length (whichever is largest), so that reads the
            kernel delivers slightly out of order (FUSE) do not reset the
            window, while random small reads seldom pass for sequential.
    """

    initial_window: int = 1 * MIB
    max_window: int = 64 * MIB
    seek_window: int = 4 * KIB
    part_size: int = 8 * MIB
    budget_bytes: int = 512 * MIB
    max_workers: int = 32
    forward_tolerance: int = 0
    prefetch_depth: int = 2
    prefetch_files: int = 8
    whole_object_bytes: int = 16 * MIB
    whole_object_hint: int = 64 * KIB

    def __post_init__(self) -> None:
        problems = []
        for name in ("initial_window", "max_window", "seek_window", "part_size", "budget_bytes",
                     "max_workers", "prefetch_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive int, got {value!r}")
        for name in ("forward_tolerance", "prefetch_files", "whole_object_bytes", "whole_object_hint"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"{name} must be an int >= 0, got {value!r}")
        if not problems and not self.seek_window <= self.initial_window <= self.max_window:
            problems.append(f"need seek_window ({self.seek_window}) <= initial_window "
                            f"({self.initial_window}) <= max_window ({self.max_window})")
        if problems:
            raise ValueError("invalid ReadaheadConfig: " + "; ".join(problems))
