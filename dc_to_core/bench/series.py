"""The scale series: the bench run at several sizes, dc_to_core and the ceiling against N.

Each size wrote its own bench.json (``{"meta": ..., "results": [StrategyResult.as_dict]}``);
``write_series`` gathers one point per size into series.json, series.md and series.png.
"""

from __future__ import annotations

import json
from pathlib import Path

from .report import CAPACITY_FORMULA, capacity_rows_per_hour, ratio, ratio_text
from .timeline import pyplot


def _capacity(meta: dict) -> float | None:
    """The org's capacity of a bench.json's meta (computed for files that predate it)."""
    if meta.get("capacity_rows_per_hour"):
        return meta["capacity_rows_per_hour"]
    return capacity_rows_per_hour(meta["profile_values"]) if "profile_values" in meta else None


def _vs(result: dict | None, reference: float | None) -> float | None:
    return ratio(result["rows_per_emulated_hour"], reference) if result else None


def point(n: int, bench: dict) -> dict:
    """One size's figures: dc_to_core's, with the ceiling's throughput against capacity."""
    by_name = {r["name"]: r for r in bench["results"]}
    ours, ceiling = by_name["dc_to_core"], by_name.get("ceiling")
    capacity, x = _capacity(bench["meta"]), ours["extra"]
    return {"rows": n, "rows_per_partition": x.get("rows_per_partition"),
            "capacity_rows_per_hour": capacity,
            "dc_to_core_vs_ceiling": ours["throughput_vs_ceiling"],
            "dc_to_core_vs_capacity": _vs(ours, capacity),
            "ceiling_vs_capacity": _vs(ceiling, capacity),
            "client_cpu_s_per_million": ours["client_cpu_s_per_million"],
            "run_peak_rss_mb": x.get("run_peak_rss_mb", ours["peak_rss_mb"]),
            "batches_per_10k_rows": round(ours["bulk_batches"] / ours["rows"] * 1e4, 2)
            if ours["rows"] else None,
            "lost": ours["lost"], "failed_checks": x.get("failed_error_checks", 0)}


def _number(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown(points: list[dict]) -> str:
    """The series table, one row per size, and what its columns are."""
    lines = ["| N | rows per partition | dc_to_core vs ceiling | vs capacity | ceiling vs "
             "capacity | client CPU s/M rows | peak run-worker RSS | batches per 10k rows "
             "| lost | failed checks |", "|" + "---|" * 10]
    for p in points:
        lines.append(
            f"| {p['rows']:,} | {_number(p['rows_per_partition'], ',')} | "
            f"{ratio_text(p['dc_to_core_vs_ceiling'])} | "
            f"{ratio_text(p['dc_to_core_vs_capacity'])} | "
            f"{ratio_text(p['ceiling_vs_capacity'])} | "
            f"{_number(p['client_cpu_s_per_million'], '.2f')} | "
            f"{_number(p['run_peak_rss_mb'], '.0f')} MB | "
            f"{_number(p['batches_per_10k_rows'], '.2f')} | {p['lost']:,} | "
            f"{p['failed_checks']} |")
    lines += ["", "One `dc-to-core bench` per N, each on its own seeded org. Capacity: "
              f"`{CAPACITY_FORMULA}` rows per emulated hour of the org profile. Peak RSS: "
              "dc_to_core's largest run worker. Batches: Bulk batches (the org's 10,000-row "
              "chunks) per 10,000 rows moved."]
    return "\n".join(lines) + "\n"


def _rows_label(n: int) -> str:
    """500k, 2M, 2.5M."""
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


def chart(points: list[dict], path: Path) -> Path | None:
    """Four panels against N (log x): throughput against the ceiling and the capacity,
    client CPU per million rows, peak run-worker RSS, batches per 10k rows. None without
    matplotlib."""
    if (plt := pyplot()) is None:
        return None
    n = [p["rows"] for p in points]
    panels = [("throughput ratio", {"dc_to_core / ceiling": "dc_to_core_vs_ceiling",
                                    "dc_to_core / capacity": "dc_to_core_vs_capacity",
                                    "ceiling / capacity": "ceiling_vs_capacity"}),
              ("client CPU s per M rows", {"dc_to_core": "client_cpu_s_per_million"}),
              ("peak run-worker RSS (MB)", {"dc_to_core": "run_peak_rss_mb"}),
              ("Bulk batches per 10k rows", {"dc_to_core": "batches_per_10k_rows"})]
    fig, axes = plt.subplots(2, 2, sharex=True, figsize=(11, 7))
    for ax, (label, lines) in zip(axes.flat, panels, strict=True):
        values = [0.0]
        for name, key in lines.items():
            ys = [p[key] for p in points]
            ax.plot(n, ys, marker="o", label=name)
            values += [y for y in ys if y is not None]
        ax.set_xscale("log")
        ax.set_xticks(n, [_rows_label(x) for x in n])
        ax.minorticks_off()
        ax.set_ylabel(label)
        ax.set_ylim(0, max(values) * 1.15 or 1)
        ax.grid(True, alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("N (rows of the big sync)")
    fig.suptitle("dc_to_core benchmark against N: same org profile, one run per size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_series(runs: list[tuple[int, Path]], out: Path) -> dict[str, Path]:
    """series.json, series.md and (with matplotlib) series.png in ``out`` from each size's
    bench.json (``runs``: N and its bench.json, or the folder holding it), smallest N first."""
    points = []
    for n, path in sorted(runs, key=lambda run: run[0]):
        bench = path / "bench.json" if path.is_dir() else path
        points.append(point(n, json.loads(bench.read_text())))
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "series.json", "markdown": out / "series.md"}
    paths["json"].write_text(json.dumps({"points": points}, indent=2))
    paths["markdown"].write_text(markdown(points))
    if png := chart(points, out / "series.png"):
        paths["chart"] = png
    return paths
