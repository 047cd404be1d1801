"""``download_bench.py --exec``: ``channels download`` and ``s5cmd cp`` as processes, exec to exit.

Each round runs every client once per set, the order rotated by the round,
into a fresh empty folder (removed and synced, untimed, afterwards). The
table gives medians of the rounds: wall seconds and MB/s from exec to exit,
seconds to the first file, CPU seconds, and for ``channels`` its own
listing-and-checks seconds. Before the rounds, the start-up it pays before
any work: a bare interpreter (``python -c pass``), and the same with the
imports of the download path (``python -X importtime``, the heaviest
modules listed). ``--variant ARGS`` adds ``channels download ... ARGS`` as
one more client (a setting to try against the default, in the same rounds).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from exec_clients import channels_argv, run_timed, s5cmd_argv
from medians import client_medians
from sets import chosen, upload

from channels.bench import peers
from channels.bench.report import format_versions, loadavg, versions
from channels.testing import DUMMY_CREDENTIALS
from channels.testing.profiles import get_profile
from channels.testing.services import start_endpoint, start_proxies

CLIENTS = ("channels", "s5cmd")
#: What ``channels download URI DEST`` imports before it lists (the CLI's start-up).
STARTUP_IMPORTS = "from channels.cli.main import build_parser; build_parser(\"download\"); import channels.modes.file.download"


def startup(rounds: int = 5) -> dict:
    """Medians of a bare interpreter's start and of the download path's imports; the top modules."""
    def timed(argv: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t

    bare = statistics.median(timed([sys.executable, "-c", "pass"]) for _ in range(rounds))
    cli = statistics.median(timed([sys.executable, "-c", STARTUP_IMPORTS]) for _ in range(rounds))
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", STARTUP_IMPORTS], capture_output=True,
                         text=True, check=True).stderr
    top = {}
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].strip()
            if "." not in name or name.startswith("channels."):
                top[name] = int(parts[1]) / 1e6  # cumulative seconds of each top-level package
    heavy = dict(sorted(top.items(), key=lambda kv: -kv[1])[:12])
    return {"python_seconds": bare, "imports_seconds": cli, "heaviest_imports": heavy,
            "modules": [ln.split("|")[2].strip() for ln in err.splitlines() if ln.count("|") == 2][1:]}


def compile_bytecode() -> str:
    """Compile the channels package's bytecode, as pip does when it installs a package; a note.

    Python compiles a module whose bytecode is missing at every import, and never writes it when
    PYTHONDONTWRITEBYTECODE is set (this machine sets it): an editable checkout would otherwise pay
    for compiling every module of the download path at every start, which no installed copy does.
    """
    import compileall

    import channels

    root = os.path.dirname(channels.__file__)
    ok = compileall.compile_dir(root, quiet=1)
    return f"bytecode of {root} compiled first ({'ok' if ok else 'FAILED'}), as an installed package has it"


def main(ap, args) -> int:
    wanted, sets = chosen(ap, args)
    wanted = [c for c in wanted if c in CLIENTS] + [f"channels {v}" for v in args.variant]
    s5cmd = peers.s5cmd_path()
    skipped = {}
    if "s5cmd" in wanted and s5cmd is None:
        skipped["s5cmd"] = peers.S5CMD_MISSING
        wanted.remove("s5cmd")
    os.environ.update(DUMMY_CREDENTIALS)
    env = dict(os.environ)
    parent = args.dest_dir or tempfile.gettempdir()
    note = compile_bytecode()
    print(note, file=sys.stderr)
    start = startup()
    print(f"start-up: python -c pass {start['python_seconds']:.3f} s; with the download path's imports "
          f"{start['imports_seconds']:.3f} s; heaviest (cumulative s): "
          + ", ".join(f"{k} {v:.3f}" for k, v in start["heaviest_imports"].items()), file=sys.stderr)
    runs: list[dict] = []
    load = [loadavg()]
    with start_endpoint() as server:
        url = server.info["url"]
        proxy = start_proxies(url, [get_profile("local")]) if args.profile == "local" else None
        try:
            client_url = proxy.info["urls"]["local"][0] if proxy else url
            uris = {}
            for name, (count, size) in sets.items():
                print(f"uploading {name}: {count} x {size} bytes", file=sys.stderr)
                target, _ = upload(url, f"exec-{name}", count, size, threads=16, workdir=parent)
                uris[name] = target.uri
            for rnd in range(args.rounds):
                for name, (count, size) in sets.items():
                    for who in wanted[rnd % len(wanted):] + wanted[:rnd % len(wanted)]:
                        dest = tempfile.mkdtemp(prefix=f"channels-exec-{who}-", dir=parent)
                        argv = (s5cmd_argv(s5cmd, uris[name], dest, client_url) if who == "s5cmd"
                                else channels_argv(uris[name], dest, client_url) + shlex.split(who)[1:])
                        try:
                            r = run_timed(argv, dest, env)
                            _verify(dest, count, size)
                        finally:
                            shutil.rmtree(dest, ignore_errors=True)
                            os.sync()
                            time.sleep(0.5)
                        total = count * size
                        runs.append({"set": name, "client": who, "round": rnd, "wall": r.wall,
                                     "first_file": r.first_file, "cpu": r.cpu, "setup": r.setup, "bytes": total,
                                     "objects": count, "mb_per_s": total / 1e6 / r.wall})
                        print(f"  round {rnd} {name:5} {who:<8} {r.wall:7.3f} s, first file "
                              f"{_s(r.first_file)} s, {total / 1e6 / r.wall:6.0f} MB/s", file=sys.stderr)
        finally:
            if proxy is not None:
                proxy.stop()
    load.append(loadavg())
    table = summarize(runs, sets, wanted)
    found = versions()
    print(format_versions(found))
    print(format_table(table, start, skipped, args.rounds, args.profile, load))
    print(note)
    out = {"mode": "exec", "profile": args.profile, "bytecode": note, "versions": found, "rounds": args.rounds,
           "skipped": skipped,
           "load_average": load, "startup": start, "sets": {k: {"count": c, "size": s} for k, (c, s) in sets.items()},
           "medians": table, "runs": runs}
    path = Path(args.json).with_name(Path(args.json).stem + "-exec.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {path}")
    return 0


def _verify(dest: str, count: int, size: int) -> None:
    files = [p for p in Path(dest).rglob("*") if p.is_file() and not p.name.startswith(".")]
    if len(files) != count or any(p.stat().st_size != size for p in files):
        raise RuntimeError(f"{dest}: expected {count} files of {size} bytes, found {len(files)}")


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _median(values) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarize(runs: list[dict], sets: dict, clients: list[str]) -> dict:
    table: dict = {}
    for name in sets:
        row = client_medians([{**r, "after_first_file": None if r["first_file"] is None else r["wall"] - r["first_file"]}
                              for r in runs], name, clients,
                             ("wall", "first_file", "after_first_file", "cpu", "setup", "mb_per_s"))
        if "channels" in row and "s5cmd" in row:
            mine, theirs = row["channels"], row["s5cmd"]
            row["ratio"] = {"exec_to_exit": theirs["wall"] / mine["wall"]}
            if mine["after_first_file"] and theirs["after_first_file"]:
                row["ratio"]["first_file_to_exit"] = theirs["after_first_file"] / mine["after_first_file"]
            # Each round's pair ran back to back: the median of their ratios is less at the mercy of
            # the machine's load drifting between rounds than the ratio of the medians.
            pairs = [(a["wall"], b["wall"]) for a in runs for b in runs if a["set"] == b["set"] == name
                     and a["round"] == b["round"] and a["client"] == "s5cmd" and b["client"] == "channels"]
            row["ratio"]["exec_to_exit_paired"] = _median(s / c for s, c in pairs)
        table[name] = row
    return table


def format_table(table: dict, start: dict, skipped: dict, rounds: int, profile: str, load: list) -> str:
    lines = [f"exec to exit, profile {profile}, medians of {rounds} interleaved rounds; load average "
             f"{load[0]} at start, {load[-1]} at end",
             f"start-up: python -c pass {start['python_seconds']:.3f} s, + the download path's imports "
             f"{start['imports_seconds']:.3f} s",
             f"{'set':6} {'client':9} {'wall s':>7} {'MB/s':>6} {'1st file s':>10} {'after s':>8} "
             f"{'setup s':>8} {'CPU s':>6}"]
    for name, row in table.items():
        for who, m in row.items():
            if who == "ratio":
                continue
            lines.append(f"{name:6} {who:<9} {m['wall']:7.3f} {m['mb_per_s']:6.0f} {_s(m['first_file']):>10} "
                         f"{_s(m['after_first_file']):>8} {_s(m['setup']):>8} {m['cpu']:6.2f}")
        for what, ratio in row.get("ratio", {}).items():
            what = what.replace("_paired", ", median of each round's ratio").replace("_", " ")
            lines.append(f"{name:6} channels/s5cmd speed, {what}: {ratio:.2f}x")
    for who, why in skipped.items():
        lines.append(f"{who}: skipped: {why}")
    return "\n".join(lines)
