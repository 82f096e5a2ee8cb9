"""The org's timeline during each strategy: how many Bulk workers it kept busy, minute by minute.

A strategy's ``extra["timeline"]`` holds columnar samples: ``t_s`` (emulated seconds since the
strategy started), ``busy_workers`` (average busy org workers over the interval ending at
``t_s``), ``records`` (target records in Core at ``t_s``) and ``lock_wait_s`` (cumulative
emulated worker-seconds spent waiting for locks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def pyplot() -> ModuleType | None:
    """matplotlib.pyplot on the file-only Agg backend; None when matplotlib is absent (the
    charts are optional: ``pip install dc_to_core[bench]``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _intervals(t_s: Sequence[float]) -> list[float]:
    """The length of each sample's interval; the first starts with the strategy (t = 0)."""
    return [t - prev for prev, t in zip([0.0, *t_s[:-1]], t_s, strict=True)]


def summary(timeline: Mapping, workers: int, end_s: float | None = None) -> dict | None:
    """``startup_gap_s``: emulated s until the busy workers first exceed half of ``workers``
    (the sample's ``t_s``, so at the sampler's resolution; None if they never do);
    ``tail_s``: from the last sample with at least half busy to the end (``end_s`` or the
    last sample, whichever is later); ``mean_busy_workers``: time-weighted over the samples.
    None without samples."""
    t_s, busy = list(timeline.get("t_s") or ()), list(timeline.get("busy_workers") or ())
    if not t_s or len(t_s) != len(busy):
        return None
    half = workers / 2
    end = max(t_s[-1], end_s or 0.0)
    high = [t for t, b in zip(t_s, busy, strict=True) if b >= half]
    dt = _intervals(t_s)
    return {"startup_gap_s": next((round(t, 1) for t, b in zip(t_s, busy, strict=True)
                                   if b > half), None),
            "tail_s": round(end - high[-1], 1) if high else None,
            "mean_busy_workers": round(sum(b * d for b, d in zip(busy, dt, strict=True))
                                       / t_s[-1], 2) if t_s[-1] > 0 else 0.0}


def lock_wait_rate(timeline: Mapping) -> list[float]:
    """Workers waiting for locks, on average over each sample's interval (the cumulative
    ``lock_wait_s`` differentiated); zeros without lock-wait samples."""
    t_s, wait = list(timeline["t_s"]), list(timeline.get("lock_wait_s") or ())
    if len(wait) != len(t_s):
        return [0.0] * len(t_s)
    return [(w - prev) / d if d > 0 else 0.0
            for prev, w, d in zip([0.0, *wait[:-1]], wait, _intervals(t_s), strict=True)]


def timeline_chart(results: list[dict], workers: int, path: Path) -> Path | None:
    """One panel per strategy with a timeline (shared x axis, emulated minutes): busy workers
    as a filled step with the org's ``workers`` as a line, workers waiting for locks when any
    did, records loaded on a secondary axis. None without matplotlib or without timelines."""
    timed = [r for r in results if (r.get("extra") or {}).get("timeline", {}).get("t_s")]
    if not timed:
        return None
    if (plt := pyplot()) is None:
        return None
    fig, axes = plt.subplots(len(timed), 1, sharex=True, squeeze=False,
                             figsize=(11, 1.2 + 2.4 * len(timed)))
    for ax, r in zip(axes[:, 0], timed, strict=True):
        _panel(ax, r["name"], r["extra"]["timeline"], workers)
    legend: dict = {}  # label: handle, over every panel and its secondary axis
    for a in fig.axes:
        legend |= dict(zip(*reversed(a.get_legend_handles_labels()), strict=True))
    axes[-1, 0].set_xlabel("emulated minutes since the strategy started")
    fig.suptitle(f"Org timeline: busy Bulk workers (of the org's {workers}) and "
                 "records loaded, per strategy")
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=len(legend),
               fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _panel(ax: Axes, name: str, timeline: Mapping, workers: int) -> None:
    """One strategy's panel: busy workers (step, left axis), records (right axis)."""
    minutes = [0.0, *(t / 60 for t in timeline["t_s"])]
    busy = list(timeline["busy_workers"])
    ax.fill_between(minutes, [busy[0], *busy], step="pre", color="#3a7bd5", alpha=0.45,
                    label="busy workers")
    ax.axhline(workers, color="#333333", linestyle="--", linewidth=1,
               label=f"the org's {workers} workers")
    waiting = lock_wait_rate(timeline)
    if any(waiting):
        ax.step(minutes, [waiting[0], *waiting], where="pre", color="#d0392b", linewidth=1,
                label="workers waiting for locks")
    ax.set_ylim(0, workers * 1.15)
    ax.set_ylabel("workers")
    ax.set_title(name, loc="left", fontsize=10)
    records = timeline.get("records")
    if records and len(records) == len(timeline["t_s"]):
        right = ax.twinx()
        right.plot(minutes[1:], records, color="#2e9e6a", linewidth=1.5, label="records loaded")
        right.set_ylabel("records in Core")
        right.set_ylim(bottom=0)
