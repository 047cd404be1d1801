"""Figures out of raw runs: the machine, versions, medians, ratios and tables.

Everything here works on plain dicts (the JSON the harness writes), so a
notebook can load the JSON and call the same functions.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Iterable

#: Packages whose versions every result carries.
PACKAGES = ("channels", "numpy", "pyarrow", "fsspec", "s3fs", "aiobotocore", "boto3", "botocore", "urllib3",
            "moto", "crc32c", "s3torchconnector", "s3torchconnectorclient", "torch", "obstore")

SCHEMA = "channels-bench/1"


def versions() -> dict[str, str | None]:
    """Installed versions of :data:`PACKAGES` (None where not installed), and Python's."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    out["s5cmd"] = _s5cmd_version()
    return out


def _s5cmd_version() -> str | None:
    """The s5cmd binary's own version (a peer), or None without one."""
    import subprocess

    from channels.bench.peers import s5cmd_path

    exe = s5cmd_path()
    if not exe:
        return None
    try:
        done = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def machine() -> dict:
    """CPU count and model, memory, kernel, and the load average now."""
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return {"cpu_count": os.cpu_count(), "cpu_model": model or platform.processor() or None,
            "memory_bytes": memory, "kernel": platform.release(), "system": platform.system(),
            "machine": platform.machine(), "python": platform.python_version(), "load_average": loadavg()}


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return None


# ---------------------------------------------------------------- summary

def _median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarize(runs: list[dict]) -> list[dict]:
    """One row per (profile, dataset, runner): medians, min, max, ratios.

    A row is compared only with the peers doing its job (``job``: ``read``
    into memory, or ``download`` to files; runs without one, from older
    JSON, all share one): ``ratio_to_best_peer`` divides the row's median
    MB/s by the best such peer's in the same profile and dataset
    (``best_peer`` names it), and ``ratios`` holds its ratio to each of them.
    Failed runs are counted in ``errors`` and left out of the figures.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["profile"], r["dataset"], r["runner"]), []).append(r)
    rows = []
    for (profile, dataset, runner), rs in groups.items():
        ok = [r for r in rs if not r.get("error")]
        mbs = [r["mb_per_s"] for r in ok]
        gb = [r["bytes"] / 1e9 for r in ok]
        row = {
            "profile": profile, "dataset": dataset, "runner": runner, "kind": rs[0]["kind"], "job": rs[0].get("job"),
            "runs": len(rs), "errors": len(rs) - len(ok), "complete": all(r.get("complete") for r in ok),
            "mb_per_s": {"median": _median(mbs), "min": min(mbs) if mbs else None, "max": max(mbs) if mbs else None},
            "objects_per_s": _median(r["objects_per_s"] for r in ok),
            "records_per_s": _median(r["records_per_s"] for r in ok),
            "ttfb_s": _median(r["ttfb_s"] for r in ok),
            "seconds": _median(r["seconds"] for r in ok),
            "client_cpu_s_per_gb": _median(_per_gb(r["client_cpu_s"], g) for r, g in zip(ok, gb)),
            "server_cpu_s_per_gb": _median(_per_gb(r["server_cpu_s"], g) for r, g in zip(ok, gb)),
            "proxy_cpu_s_per_gb": _median(_per_gb(r["proxy_cpu_s"], g) for r, g in zip(ok, gb)),
        }
        rows.append(row)
    for row in rows:
        peers = [p for p in rows if p["kind"] == "peer" and p["profile"] == row["profile"]
                 and p["dataset"] == row["dataset"] and p["job"] == row["job"] and p["mb_per_s"]["median"]]
        best = max(peers, key=lambda p: p["mb_per_s"]["median"], default=None)
        row["best_peer"] = best["runner"] if best else None
        med = row["mb_per_s"]["median"]
        row["ratio_to_best_peer"] = (med / best["mb_per_s"]["median"]) if best and med is not None else None
        row["ratios"] = {p["runner"]: med / p["mb_per_s"]["median"] for p in peers
                         if med is not None and p["runner"] != row["runner"]}
    return rows


def _per_gb(cpu: float | None, gb: float) -> float | None:
    return cpu / gb if cpu is not None and gb > 0 else None


def find(rows: list[dict], profile: str, dataset: str, runner: str) -> dict | None:
    return next((r for r in rows if (r["profile"], r["dataset"], r["runner"]) == (profile, dataset, runner)), None)


def checks(rows: list[dict], *, dataset: str = "large", mode: str = "pipe", peer: str = "s3fs",
           near: str = "local", far: str = "s3-like") -> dict:
    """The issue's latency acceptance figures, where the run has them.

    ``keep``: the mode's median MB/s under ``far`` over ``near`` (want >= 0.7);
    ``ratio_near``/``ratio_far``: the mode's MB/s over ``peer``'s in each
    profile (want ``ratio_far > ratio_near``).
    """
    def mb(profile: str, runner: str) -> float | None:
        row = find(rows, profile, dataset, runner)
        return row["mb_per_s"]["median"] if row else None

    m_near, m_far, p_near, p_far = mb(near, mode), mb(far, mode), mb(near, peer), mb(far, peer)
    out = {"dataset": dataset, "mode": mode, "peer": peer, "near": near, "far": far,
           "keep": m_far / m_near if m_near and m_far else None,
           "ratio_near": m_near / p_near if m_near and p_near else None,
           "ratio_far": m_far / p_far if m_far and p_far else None}
    out["keep_ok"] = out["keep"] is not None and out["keep"] >= 0.7
    out["ratio_grows"] = (out["ratio_near"] is not None and out["ratio_far"] is not None
                          and out["ratio_far"] > out["ratio_near"])
    return out


# ---------------------------------------------------------------- tables

def _num(v: float | None, fmt: str, width: int) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:>{width}{fmt}}"


def format_table(rows: list[dict], datasets: dict[str, dict] | None = None) -> str:
    """The summary as a text table, grouped by profile and dataset; under each group, every mode's
    ratio to each of its like peers (same job)."""
    head = (f"{'runner':<17}{'kind':<5}{'job':<9}{'MB/s':>7}{'[min':>7}{'max]':>7}{'obj/s':>8}{'rec/s':>10}"
            f"{'TTFB ms':>9}{'cli s/GB':>9}{'srv s/GB':>9}{'prx s/GB':>9}  vs best like peer")
    lines = []
    order = sorted({(r["profile"], r["dataset"]) for r in rows}, key=lambda k: (_profile_rank(k[0]), k[1]))
    for profile, dataset in order:
        label = (datasets or {}).get(dataset, {}).get("label", "")
        lines.append(f"\n== profile {profile}, dataset {dataset}" + (f" ({label})" if label else ""))
        lines.append(head)
        lines.append("-" * len(head))
        group = [r for r in rows if r["profile"] == profile and r["dataset"] == dataset]
        group.sort(key=lambda r: (r["kind"] != "mode", -(r["mb_per_s"]["median"] or 0)))
        for r in group:
            m = r["mb_per_s"]
            ratio = r["ratio_to_best_peer"]
            vs = f"{ratio:.2f}x {r['best_peer']}" if ratio is not None else "-"
            flags = "" if r["complete"] else " (capped)"
            if r["errors"]:
                flags += f" ({r['errors']} failed)"
            lines.append(
                f"{r['runner']:<17}{r['kind']:<5}{r.get('job') or '-':<9}{_num(m['median'], ',.0f', 7)}"
                f"{_num(m['min'], ',.0f', 7)}{_num(m['max'], ',.0f', 7)}{_num(r['objects_per_s'], ',.0f', 8)}"
                f"{_num(r['records_per_s'], ',.0f', 10)}"
                f"{_num(None if r['ttfb_s'] is None else r['ttfb_s'] * 1000, ',.1f', 9)}"
                f"{_num(r['client_cpu_s_per_gb'], '.2f', 9)}{_num(r['server_cpu_s_per_gb'], '.2f', 9)}"
                f"{_num(r['proxy_cpu_s_per_gb'], '.2f', 9)}  {vs}{flags}")
        for r in group:
            if r["kind"] == "mode" and r.get("ratios"):
                like = sorted(r["ratios"].items(), key=lambda kv: kv[1])
                lines.append(f"  {r['runner']} vs its like peers: " + ", ".join(f"{v:.2f}x {k}" for k, v in like))
    return "\n".join(lines).lstrip("\n")


def format_peers(runners: dict[str, dict]) -> str:
    """Each mode, its job and its like peers, one line per peer saying what it does.

    Args:
        runners: ``{name: {"kind", "job", "description"}}`` (the throughput JSON's ``runners``).
    """
    from channels.bench.base import JOBS

    lines = ["each mode against the peers doing the same job (vs best like peer, and the ratios under each table):"]
    jobs = dict.fromkeys(r.get("job") for r in runners.values() if r["kind"] == "mode")
    for job in jobs:
        modes = [n for n, r in runners.items() if r["kind"] == "mode" and r.get("job") == job]
        peers = [n for n, r in runners.items() if r["kind"] == "peer" and r.get("job") == job]
        lines.append(f"  {', '.join(modes)}: {JOBS.get(job, job or 'any job')}")
        for name in modes + peers:
            lines.append(f"    {runners[name]['kind']:<5}{name:<17}{runners[name]['description']}")
        if not peers:
            lines.append("    (no peer doing this job in this run)")
    return "\n".join(lines)


def _profile_rank(name: str) -> int:
    return {"direct": 0, "local": 1, "s3-like": 2, "s3-40ms": 3, "s3-far": 4}.get(name, 9)


def format_versions(v: dict) -> str:
    return "versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val)


def format_machine(m: dict) -> str:
    mem = f"{m['memory_bytes'] / 2**30:.0f} GiB" if m.get("memory_bytes") else "?"
    return (f"machine: {m.get('cpu_count')} CPUs ({m.get('cpu_model')}), {mem}, {m.get('system')} "
            f"{m.get('kernel')}, load average {m.get('load_average')}")


def format_checks(c: dict) -> str:
    def f(v):
        return "-" if v is None else f"{v:.2f}"

    text = (f"latency check ({c['mode']} on {c['dataset']}): {c['far']} keeps {f(c['keep'])}x of its "
            f"{c['near']} MB/s (want >= 0.70: {'yes' if c['keep_ok'] else 'no'}); vs {c['peer']}: "
            f"{f(c['ratio_near'])}x under {c['near']}, {f(c['ratio_far'])}x under {c['far']} "
            f"(want larger under {c['far']}: {'yes' if c['ratio_grows'] else 'no'})")
    if c["keep"] is not None and not c["keep_ok"] and c["far"] == "s3-like":
        text += ("\n  (under s3-like each connection carries at most 90 MB/s, so a reader's MB/s there is at most "
                 "its GETs in flight x 90 MB/s, less each GET's first-byte wait: more bytes in flight "
                 "(transport budget_bytes / part_size) raise it)")
    return text
