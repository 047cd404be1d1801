"""A real torchrun (``python -m torch.distributed.run``, gloo on loopback) reading a channel.

Two launches: one node of 4 processes, and 2 "nodes" of 2 processes that
meet through a c10d rendezvous on this machine. In each, every rank reads
with ChannelDataset for the pad and drop policies over two epochs and
all-gathers the ids it got; then a tiny DDP model trains one epoch on
deliberately uneven data. A third launch documents the old behaviour: the
count split without a policy leaves DDP ranks waiting on each other.

Each launch has a hard timeout (the process group is killed past it) and
short collective timeouts, so a regression fails in seconds with the
launcher's output, never hangs the suite.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the torch extra is not installed (pip install 'channels[torch]')")

ROOT = Path(__file__).resolve().parent.parent
JOB = Path(__file__).resolve().parent / "torchrun_job.py"
#: Seconds a launch may take in all before it is killed (it takes about 15 on 2 cores).
HARD_TIMEOUT = 150
#: Lines per object and bytes per line: records and bytes deliberately out of step.
OBJECTS = [(1, 400), (2, 20), (3, 300), (40, 10), (5, 90), (8, 30), (13, 60), (21, 5), (2, 700), (1, 50),
           (30, 15), (6, 120)]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("uneven")
    ids = []
    for o, (n, width) in enumerate(OBJECTS):
        lines = [f"o{o:02d}:{k:02d}".ljust(width, ".") for k in range(n)]
        (root / f"o{o:02d}.txt").write_text("".join(x + "\n" for x in lines))
        ids += [x.split(".")[0] for x in lines]
    return root, ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher(nnodes: int, nproc: int, port: int, *args: str, host: bool = True) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}", f"--nproc-per-node={nproc}",
            "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=channels-test",
            f"--rdzv-conf=is_host={'1' if host else '0'},join_timeout=60", "--local-addr=127.0.0.1",
            "--max-restarts=0", "--monitor-interval=0.5", str(JOB), *args]


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "RANK", "WORLD_SIZE", "LOCAL_"))}
    e.update(GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
             PYTHONPATH=os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return e


def run(commands: list[list[str]], timeout: float) -> list[tuple[int | None, str]]:
    """Start every command at once; ``(exit status or None if killed at the timeout, output)`` each."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env(), cwd=ROOT,
                              start_new_session=True) for c in commands]
    deadline = time.monotonic() + timeout
    out = []
    for p in procs:
        try:
            text, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            out.append((p.returncode, text.decode(errors="replace")))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            text, _ = p.communicate()
            out.append((None, text.decode(errors="replace")))
    return out


def launch(tmp_path: Path, data: Path, nodes: int, nproc: int, *args: str) -> dict:
    port = free_port()
    commands = [launcher(nodes, nproc, port, str(data), str(tmp_path), *args, host=(n == 0)) for n in range(nodes)]
    for rc, text in run(commands, HARD_TIMEOUT):
        assert rc == 0, f"torchrun {'timed out' if rc is None else f'exited {rc}'}; its output:\n{text[-4000:]}"
    return json.loads((tmp_path / "result.json").read_text())


def check_reads(result: dict, ids: list[str], world: int) -> dict[str, int]:
    """Every policy and epoch: equal counts per rank, each record once; the pads of each read."""
    assert result["world"] == world
    pads = {}
    for key, per_rank in result["reads"].items():
        policy = key.split("/")[0]
        assert len(per_rank) == world
        sizes = [len(got) for got in per_rank]
        assert len(set(sizes)) == 1, f"{key}: ranks got {sizes} records"
        real = Counter(rec.split(".")[0] for got in per_rank for rec, pad in got if not pad)
        padded = [rec.split(".")[0] for got in per_rank for rec, pad in got if pad]
        assert max(real.values()) == 1, f"{key}: a record came out twice"
        if policy == "pad":
            assert sorted(real) == sorted(ids), f"{key}: missing {sorted(set(ids) - set(real))}"
            assert set(padded) <= set(ids)
        else:
            assert not padded and set(real) <= set(ids)
        pads[key] = len(padded) if policy == "pad" else len(ids) - len(real)
    return pads


@pytest.mark.parametrize(("nodes", "nproc", "workers"), [(1, 4, 2), (2, 2, 0)], ids=["1x4", "2x2"])
def test_torchrun_equal_steps_every_record_once_and_ddp_finishes(tmp_path, data, nodes, nproc, workers):
    root, ids = data
    result = launch(tmp_path, root, nodes, nproc, "--policies=pad,drop", "--epochs=2", f"--workers={workers}")
    pads = check_reads(result, ids, nodes * nproc)
    print(f"{nodes}x{nproc}: {len(ids)} records; pads (pad) / dropped (drop) per epoch: {pads}")
    assert any(pads.values()), "the data should need pads or drops, or the test proves nothing"
    assert len(set(result["steps"])) == 1 and result["steps"][0] > 0, f"DDP steps per rank: {result['steps']}"


@pytest.mark.documents
def test_documents_that_the_count_split_without_a_policy_stalls_ddp(tmp_path, data):
    """The old behaviour, shown once: shares cut by count hold very different record counts,
    so one rank runs out first and the other waits in the gradient all-reduce until gloo's
    timeout (5 s here) ends the job with an error, or it hangs until killed."""
    root, _ = data
    port = free_port()
    command = launcher(1, 2, port, str(root), str(tmp_path), "--policies=", "--split=count", "--train=none",
                       "--seed=-1", "--workers=0", "--timeout=5")
    start = time.monotonic()
    [(rc, text)] = run([command], 90)
    assert rc != 0, f"DDP finished on a count split without a policy; its output:\n{text[-3000:]}"
    # Killed while hanging, or gloo's timeout: not some other failure (an import error would prove nothing).
    assert rc is None or "Timed out" in text, f"failed, but not in a collective; its output:\n{text[-3000:]}"
    assert not (tmp_path / "result.json").exists()
    print(f"count split, policy none: {'killed at 90 s' if rc is None else f'exit {rc}'} after "
          f"{time.monotonic() - start:.0f} s")
