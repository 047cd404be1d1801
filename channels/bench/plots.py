"""Figures of the harness's JSON, for the notebooks (matplotlib, headless).

Each function takes the document ``channels bench --json`` wrote (or a part
of it), draws one figure, and returns it; ``save`` writes it as PNG. Nothing
here measures anything.
"""

from __future__ import annotations

import json
import os

import numpy as np

PROFILE_COLORS = {"direct": "#7f7f7f", "local": "#1f77b4", "s3-like": "#ff7f0e", "s3-40ms": "#9467bd",
                  "s3-far": "#d62728"}
STRATEGY_COLORS = {"sharded-by-s3-key": "#d62728", "size-balanced": "#2ca02c", "fully-replicated": "#7f7f7f"}


def _plt():
    import matplotlib

    if not os.environ.get("MPLBACKEND") and "inline" not in matplotlib.get_backend():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def load(path: str) -> dict:
    """The JSON document at ``path``."""
    with open(path) as f:
        return json.load(f)


def save(fig, path: str) -> str:
    """Write ``fig`` as PNG (150 dpi); returns the path."""
    fig.savefig(path, dpi=150, bbox_inches="tight")
    return path


def throughput_figure(doc: dict, metric: str = "mb_per_s"):
    """Median MB/s (min-max whiskers) per runner, one panel per dataset, one bar per profile."""
    def bar(row: dict | None) -> tuple[float, float, float]:
        m = row[metric] if row else None
        if isinstance(m, dict):
            return m["median"] or 0, (m["median"] or 0) - (m["min"] or 0), (m["max"] or 0) - (m["median"] or 0)
        return m or 0, 0, 0

    tp = doc["throughput"]
    fig, panels = _runner_bars(tp, 4.2, bar, whiskers=True)
    for ax, ds in panels:
        ax.set_xticks(np.arange(len(tp["runners"])), [f"{r}\n({tp['runners'][r]['kind']})" for r in tp["runners"]],
                      fontsize=8)
        ax.set_title(f"{ds}: {tp['datasets'][ds]['label']}")
        ax.set_ylabel("MB/s (median, min-max)" if metric == "mb_per_s" else metric)
        ax.legend(title="profile", fontsize=8)
    fig.suptitle(_subtitle(doc), fontsize=8)
    fig.tight_layout()
    return fig


def ratio_figure(doc: dict):
    """Each runner's median MB/s over the best peer's, per profile: how far from the limit."""
    tp = doc["throughput"]
    fig, panels = _runner_bars(tp, 3.6, lambda row: ((row or {}).get("ratio_to_best_peer") or 0, 0, 0))
    for ax, ds in panels:
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(tp["runners"])), list(tp["runners"]), fontsize=8)
        ax.set_ylabel("MB/s / best peer's")
        ax.set_title(ds)
        ax.legend(title="profile", fontsize=8)
    fig.tight_layout()
    return fig


def _runner_bars(tp: dict, height: float, bar, whiskers: bool = False):
    """One panel per dataset of a throughput part, in each a group of bars per runner, one bar per profile.

    ``bar(row)`` gives a summary row's (height, below, above); the row is
    None where the run has none. Returns the figure and its (axes, dataset)
    pairs, for the caller to label.
    """
    from channels.bench.report import find

    plt = _plt()
    datasets = list(tp["datasets"])
    profiles = list(tp["config"]["profiles"])
    runners = list(tp["runners"])
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), height), squeeze=False)
    width = 0.8 / max(1, len(profiles))
    x = np.arange(len(runners))
    for ax, ds in zip(axes[0], datasets):
        for j, prof in enumerate(profiles):
            med, lo, hi = zip(*(bar(find(tp["summary"], prof, ds, runner)) for runner in runners))
            extra = {"yerr": [list(lo), list(hi)], "capsize": 2} if whiskers else {}
            ax.bar(x + (j - (len(profiles) - 1) / 2) * width, list(med), width, label=prof,
                   color=PROFILE_COLORS.get(prof), **extra)
    return fig, list(zip(axes[0], datasets))


def planned_balance_figure(sizes, hosts: int, title: str = ""):
    """Planner only (no download): bytes per host for each strategy that splits the data, as bars.

    (fully-replicated gives every host everything: nothing to compare.)
    """
    from channels.balance import compare
    from channels.sharding import FULLY_REPLICATED

    plt = _plt()
    reports = [r for r in compare(np.asarray(sizes), hosts) if r.strategy != FULLY_REPLICATED]
    fig, axes = plt.subplots(1, len(reports), figsize=(5.5 * len(reports), 3.4), sharey=True, squeeze=False)
    for ax, rep in zip(axes[0], reports):
        mb = [h.bytes / 1e6 for h in rep.hosts]
        ax.bar(range(hosts), mb, color=STRATEGY_COLORS.get(rep.strategy))
        ax.axhline(rep.total_bytes / hosts / 1e6, color="black", lw=0.8, ls="--", label="mean")
        ax.set_title(f"{rep.strategy}\nimbalance {rep.imbalance:.2f}x")
        ax.set_xticks(range(hosts), [h.host for h in rep.hosts], rotation=90, fontsize=7)
        ax.set_xlabel("host")
    axes[0][0].set_ylabel("MB planned")
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def measured_balance_figure(part: dict):
    """Per-host bytes and seconds (each over its mean) for each strategy of an imbalance run."""
    plt = _plt()
    strategies = list(part["strategies"])
    n = part["hosts"]
    fig, axes = plt.subplots(1, len(strategies), figsize=(5.5 * len(strategies), 3.8), sharey=True,
                             squeeze=False)
    x = np.arange(n)
    for ax, s in zip(axes[0], strategies):
        r = part["strategies"][s]
        hosts = r["hosts"]
        b = np.array([h["bytes"] for h in hosts], dtype=float)
        t = np.array([h["seconds"] for h in hosts], dtype=float)
        ax.bar(x - 0.2, b / b.mean(), 0.4, label="bytes / mean", color=STRATEGY_COLORS.get(s), alpha=0.55)
        ax.bar(x + 0.2, t / t.mean(), 0.4, label="transfer seconds / mean", color=STRATEGY_COLORS.get(s))
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_title(f"{s}\npredicted {r['predicted_imbalance']:.2f}x, straggler {r['straggler_ratio']:.2f}x")
        ax.set_xticks(x, [h["host"] for h in hosts], rotation=90, fontsize=7)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("per host, over the mean")
    fig.suptitle(f"{n} hosts at once, {part['dataset']['label']}, {part['host_bandwidth'] / 1e6:g} MB/s per host",
                 fontsize=9)
    fig.tight_layout()
    return fig


def _subtitle(doc: dict) -> str:
    m = doc.get("machine", {})
    v = doc.get("versions", {})
    return (f"{m.get('cpu_count')} CPUs ({m.get('cpu_model')}), load {m.get('load_average')}; channels "
            f"{v.get('channels')}, boto3 {v.get('boto3')}, s3fs {v.get('s3fs')}, pyarrow {v.get('pyarrow')}; "
            f"{doc.get('created', '')[:19]}")
