"""Benchmark results: one record per strategy, written as JSON, a Markdown table and a chart."""

from __future__ import annotations

import json
import resource
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import timeline
from .timeline import pyplot


def peak_rss_mb() -> float:
    """This process's own peak RSS. ``ru_maxrss`` will not do for a process started by
    fork + exec (multiprocessing's spawn, subprocess): Linux carries the high-water mark
    across exec, so it reports at least the parent's RSS at the fork (a strategy's child
    showed the bench's 1.7 GB). ``VmHWM`` belongs to the process's own address space."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no procfs: an upper bound


CAPACITY_FORMULA = "workers * txn_rows / ((txn_base_ms + row_ms * txn_rows) / 1000) * 3600"


def _txn_s(p: Mapping[str, float]) -> float:
    """Emulated seconds of one full DML transaction."""
    return (p["txn_base_ms"] + p["row_ms"] * p["txn_rows"]) / 1000


def capacity_rows_per_hour(profile_values: Mapping[str, float]) -> float:
    """The org's capacity in rows per emulated hour: every worker committing full
    ``txn_rows`` transactions back to back (``CAPACITY_FORMULA``; chunk start-up, job latency
    and lock waits left out: an upper bound)."""
    p, txn_s = profile_values, _txn_s(profile_values)
    return p["workers"] * p["txn_rows"] / txn_s * 3600 if txn_s else 0.0


def _capacity_note(meta: Mapping) -> str | None:
    """The footer line saying the capacity and how it follows from the profile."""
    p, capacity = meta.get("profile_values"), meta.get("capacity_rows_per_hour")
    if not p or not capacity:
        return None
    return (f"Org capacity (`vs capacity`): {capacity:,.0f} rows per emulated hour = "
            f"`{CAPACITY_FORMULA}` = {p['workers']} * {p['txn_rows']} / {_txn_s(p):g} s "
            "* 3600 (every worker committing full transactions back to back).")


def ratio(value: float, reference: float | None) -> float | None:
    """``value / reference`` to 3 decimals, None without a reference."""
    return round(value / reference, 3) if reference else None


@dataclass
class StrategyResult:
    name: str
    description: str
    rows: int                  # Data Cloud rows the strategy had to move
    loaded: int                # records of the target object in Core afterwards
    quarantined: int           # rows set aside with a reason (dc_to_core only)
    emulated_s: float          # strategy start until the org finished its last job (org time)
    wall_s: float
    api_requests: int
    bulk_batches: int
    bulk_jobs: int
    lock_timeouts: int         # UNABLE_TO_LOCK_ROW events in the org
    client_cpu_s: float
    peak_rss_mb: float
    extra: dict = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return self.loaded / self.rows if self.rows else 1.0

    @property
    def lost(self) -> int:
        """Rows neither loaded nor quarantined with a reason."""
        return self.rows - self.loaded - self.quarantined

    @property
    def rows_per_emulated_hour(self) -> float:
        return self.loaded / self.emulated_s * 3600 if self.emulated_s else 0.0

    def as_dict(self, ceiling: StrategyResult | None, capacity: float | None = None,
                workers: int | None = None) -> dict:
        """The record written to bench.json: the fields, ``extra`` and the derived figures,
        throughput against the ceiling's and against the org's ``capacity``, and with
        ``workers`` the summary of ``extra["timeline"]`` (``timeline.summary``)."""
        out = asdict(self)
        out.update(success_rate=round(self.success_rate, 5), lost=self.lost,
                   rows_per_emulated_hour=round(self.rows_per_emulated_hour),
                   client_cpu_s_per_million=round(self.client_cpu_s / self.rows * 1e6, 2),
                   throughput_vs_ceiling=ratio(self.rows_per_emulated_hour,
                                                ceiling.rows_per_emulated_hour
                                                if ceiling else None),
                   throughput_vs_capacity=ratio(self.rows_per_emulated_hour, capacity))
        if workers and "timeline" in self.extra:
            out["timeline_summary"] = timeline.summary(self.extra["timeline"], workers,
                                                       self.emulated_s)
        return out


def ratio_text(ratio: float | None) -> str:
    """A ratio as the tables show it ("0.92x"), "—" when there is none."""
    return f"{ratio:.2f}x" if ratio else "—"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _seconds(value: float | None) -> str:
    return "—" if value is None else _hours(value) if value >= 60 else f"{value:.0f} s"


def timeline_table(results: list[dict], meta: dict) -> list[str]:
    """The org timeline's summary per strategy that has one (no lines when none has)."""
    timed = [r for r in results if r.get("timeline_summary")]
    if not timed:
        return []
    half = f"{meta['workers'] / 2:g}"
    lines = ["", f"| strategy | startup gap (until > {half} workers busy) | tail (after the "
             f"last ≥ {half} busy) | mean busy workers (of {meta['workers']}) |",
             "|" + "---|" * 4]
    for r in timed:
        t = r["timeline_summary"]
        lines.append(f"| {r['name']} | {_seconds(t['startup_gap_s'])} | "
                     f"{_seconds(t['tail_s'])} | {t['mean_busy_workers']:.1f} |")
    return lines


def markdown(results: list[dict], meta: dict) -> str:
    """The table of every strategy, and the run's parameters under it."""
    head = ("| strategy | success | lost | emulated | wall | throughput (rows/emulated h) "
            "| vs ceiling | vs capacity | org busy | batches | jobs | API calls "
            "| client CPU s/M rows | peak RSS |")
    lines = [head, "|" + "---|" * 14]
    for r in results:
        vs = " | ".join(ratio_text(r.get(f"throughput_vs_{of}")) for of in ("ceiling", "capacity"))
        busy = r["extra"].get("org_utilization")
        busy = f"{busy * 100:.0f} %" if busy is not None else "—"
        lines.append(
            f"| {r['name']} | {r['success_rate'] * 100:.2f} % | {r['lost']:,} | "
            f"{_hours(r['emulated_s'])} | {r['wall_s']:.0f} s | "
            f"{r['rows_per_emulated_hour']:,} | {vs} | {busy} | {r['bulk_batches']:,} | "
            f"{r['bulk_jobs']:,} | {r['api_requests']:,} | {r['client_cpu_s_per_million']} | "
            f"{r['peak_rss_mb']:.0f} MB |")
    lines += timeline_table(results, meta)
    lines.append("")
    lines.append(f"{meta['rows']:,} opportunities over {meta['accounts']:,} accounts "
                 f"(ExternalIds uncorrelated with parents), org profile `{meta['profile']}` "
                 f"(time scale {meta['time_scale']:g}, {meta['workers']} workers, lock "
                 f"timeout {meta['lock_timeout_s']:g} s, {meta['row_ms']:g} ms per row).")
    if note := _capacity_note(meta):
        lines.append(note)
    slower = [f"{r['name']} {r['extra']['time_scale']:g}" for r in results
              if r["extra"].get("time_scale", meta["time_scale"]) != meta["time_scale"]]
    if slower:
        lines.append(f"On a slower clock than the profile's ({', '.join(slower)}): a seed "
                     "replay so this machine keeps to its org-time schedule; a strategy whose "
                     "client never waits in real time, so its client's work is not magnified "
                     "into org time.")
    return "\n".join(lines) + "\n"


def chart(results: list[dict], path: Path) -> Path | None:
    """Throughput vs the ceiling and success rate per strategy (needs matplotlib)."""
    if (plt := pyplot()) is None:
        return None
    names = [r["name"] for r in results]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    a.barh(names, [r["throughput_vs_ceiling"] or 0 for r in results], color="#3a7bd5")
    a.set_xlabel("throughput / ceiling (rows per emulated hour)")
    a.invert_yaxis()
    b.barh(names, [r["success_rate"] * 100 for r in results], color="#2e9e6a")
    b.set_xlabel("success (% of rows loaded)")
    b.set_xlim(0, 100)
    b.invert_yaxis()
    b.set_yticklabels([])
    fig.suptitle("dc_to_core benchmark: same emulated org, same run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(results: list[StrategyResult], meta: dict, out: Path,
          table: Callable[[list[dict], dict], str] = markdown,
          draw: Callable[[list[dict], Path], Path | None] | None = chart) -> dict[str, Path]:
    """bench.json, bench.md (``table``) and, with ``draw``, bench.png in ``out``; timeline.png
    when a result has an org timeline. ``meta`` gains ``capacity_rows_per_hour`` when it
    holds ``profile_values``."""
    out.mkdir(parents=True, exist_ok=True)
    if "profile_values" in meta and "capacity_rows_per_hour" not in meta:
        meta = {**meta, "capacity_rows_per_hour": round(
            capacity_rows_per_hour(meta["profile_values"]))}
    ceiling = next((r for r in results if r.name == "ceiling"), None)
    rows = [r.as_dict(ceiling, meta.get("capacity_rows_per_hour"), meta.get("workers"))
            for r in results]
    paths = {"json": out / "bench.json", "markdown": out / "bench.md"}
    paths["json"].write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    paths["markdown"].write_text(table(rows, meta))
    png = draw(rows, out / "bench.png") if draw else None
    if png:
        paths["chart"] = png
    if meta.get("workers") and (png := timeline.timeline_chart(rows, meta["workers"],
                                                                out / "timeline.png")):
        paths["timeline"] = png
    return paths
