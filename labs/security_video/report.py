"""Turn one scenario's raw data into the measured report (pure) and write the files.

Rules:
- Latency = result arrival at the camera − frame send time (same monotonic clock).
- Lost = frames sent without any result after the drain; duplicated = extra results.
- The first ``WARMUP_S`` of frames (neighbour resolution, process warm-up) count for
  lost/stalls but not for the *before* percentiles.
- A stall is a frame later than ``STALL_MS`` or missing.
- Phases by send time: *before* = before the load starts; *during* = from the load
  start until the steering route was committed (without steering: until the crossing
  + 1 s); *after* = the rest.
- ``crossing`` = MEC-1's first upward threshold crossing after the load started (its
  own utilisation sampler); ``steer committed`` = the controller's commit of the
  headend route to another site; ``first frame at MEC-2`` = MEC-2's service event.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

STALL_MS = 100.0
WARMUP_S = 0.5


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return round(s[k], 2)


def _first(events: list[dict[str, Any]], ev: str, after: int = 0,
           **match: Any) -> int | None:
    for e in events:
        if e.get("ev") == ev and e.get("t", 0) >= after and all(
                e.get(k) == v for k, v in match.items()):
            return int(e["t"])
    return None


def analyse(data: dict[str, Any]) -> dict[str, Any]:
    sent = {int(s): int(t) for s, t in data["sent"]}
    first_result: dict[int, list[Any]] = {}
    dup = 0
    for r in data["recv"]:
        if r[0] in first_result:
            dup += 1
        else:
            first_result[r[0]] = r
    ev = data["events"]
    t_start = min(sent.values()) if sent else 0
    t_load = _first(ev.get("loadgen", []), "load_start") or 0
    t_cross = _first(ev.get("MEC-1", []), "crossing", after=t_load, direction="up")
    moves = [d for d in data["decisions"] if d.get("move") and d.get("committed")]
    t_commit = int(moves[0]["t_committed"]) if moves else None
    t_mec2 = _first(ev.get("MEC-2", []), "first_frame")
    t_split = t_commit if t_commit else (t_cross + 1_000_000_000 if t_cross else None)

    lat: dict[int, float] = {s: (r[2] - r[1]) / 1e6 for s, r in first_result.items()}
    phases: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    for s, ts in sent.items():
        if s not in lat:
            continue
        if ts < t_load:
            if ts - t_start >= WARMUP_S * 1e9:
                phases["before"].append(lat[s])
        elif t_split is None or ts < t_split:
            phases["during"].append(lat[s])
        else:
            phases["after"].append(lat[s])
    lost = [s for s in sent if s not in first_result]
    stalls = len(lost) + sum(1 for v in lat.values() if v > STALL_MS)
    sites: dict[str, int] = {}
    for r in first_result.values():
        sites[r[4]] = sites.get(r[4], 0) + 1

    def ms(a: int | None, b: int | None) -> float | None:
        return round((b - a) / 1e6, 2) if a is not None and b is not None else None

    def sec(a: int | None, b: int | None) -> float | None:
        return round((b - a) / 1e9, 4) if a is not None and b is not None else None

    return {
        "steer": data["params"]["steer"],
        "frames": {"sent": len(sent), "received": len(first_result), "lost": len(lost),
                   "duplicated": dup, "by_site": sites},
        "latency_ms": {ph: {"p50": pct(v, 50), "p99": pct(v, 99), "max": pct(v, 100),
                            "n": len(v)} for ph, v in phases.items()},
        "stalls": stalls, "stall_bound_ms": STALL_MS,
        "times_ms": {
            "load_start_s": sec(t_start, t_load),
            "crossing_to_steer_committed": ms(t_cross, t_commit),
            "crossing_to_first_frame_mec2": ms(t_cross, t_mec2),
            "load_start_to_crossing": ms(t_load, t_cross),
            "program_ms": moves[0].get("program_ms") if moves else None,
        },
        "dns": {"first": data["resolved"], "after": data.get("dns_after")},
        "route_after": data.get("route_after"),
        "access_switch": data.get("access_switch"),
        "move_observed_by": _sources(moves[0]) if moves else None,
        "decisions": [{k: d.get(k) for k in ("site", "previous", "move", "committed",
                                             "reason", "program_ms")}
                      for d in data["decisions"]],
        "series": {"t_s": [round((sent[s] - t_start) / 1e9, 4) for s in sorted(lat)],
                   "latency_ms": [round(lat[s], 3) for s in sorted(lat)],
                   "site": [first_result[s][4] for s in sorted(lat)],
                   "lost_t_s": [round((sent[s] - t_start) / 1e9, 4) for s in lost],
                   "crossing_s": sec(t_start, t_cross), "switch_s": sec(t_start, t_commit),
                   "load_s": sec(t_start, t_load)},
    }


def _sources(decision: dict[str, Any]) -> dict[str, list[str]]:
    """Per site, which telemetry sources the move decision's metrics carried
    (``telemetry.precedence`` flags: ``route_up`` ← BGP, ``service_up`` ← site agent)."""
    from telemetry.precedence import FLAG

    return {site: [src for src, flag in FLAG.items() if flag in m.get("l0", {})]
            for site, m in (decision.get("inputs", {}).get("metrics") or {}).items()}


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(10, 3.6 * len(results)), squeeze=False,
                             sharex=True)
    colours = {"MEC-1": "tab:blue", "MEC-2": "tab:green"}
    for ax, res in zip(axes[:, 0], results, strict=True):
        s = res["series"]
        for site, col in colours.items():
            xs = [t for t, st in zip(s["t_s"], s["site"], strict=True) if st == site]
            ys = [v for v, st in zip(s["latency_ms"], s["site"], strict=True) if st == site]
            ax.plot(xs, ys, ".", ms=3, color=col, label=f"served by {site}")
        if s["lost_t_s"]:
            ax.plot(s["lost_t_s"], [STALL_MS] * len(s["lost_t_s"]), "x", color="red",
                    label="lost")
        for key, col, label in (("load_s", "grey", "load on MEC-1"),
                                ("crossing_s", "orange", "threshold crossing"),
                                ("switch_s", "purple", "steer committed")):
            if s.get(key) is not None:
                ax.axvline(s[key], color=col, ls="--", lw=1, label=label)
        ax.axhline(STALL_MS, color="red", lw=0.6, ls=":", label=f"stall bound {STALL_MS:g} ms")
        ax.set_yscale("log")
        ax.set_ylabel("frame latency (ms)")
        ax.set_title("with CPN steering" if res["steer"] else "baseline: no steering")
        ax.legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("time since first frame (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: list[dict[str, Any]]) -> str:
    cols = ["with CPN" if r["steer"] else "no steering" for r in results]
    lines = ["# Security-video handover lab (GBA-App.B)", "",
             "| measure | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]

    def row(name: str, fn: Any) -> None:
        lines.append(f"| {name} | " + " | ".join(str(fn(r)) for r in results) + " |")

    row("frames sent", lambda r: r["frames"]["sent"])
    row("frames received", lambda r: r["frames"]["received"])
    row("frames lost", lambda r: r["frames"]["lost"])
    row("frames duplicated", lambda r: r["frames"]["duplicated"])
    row("frames by site", lambda r: r["frames"]["by_site"])
    for ph in ("before", "during", "after"):
        row(f"latency p50/p99 {ph} (ms)",
            lambda r, ph=ph: f"{r['latency_ms'][ph]['p50']} / {r['latency_ms'][ph]['p99']}")
    row(f"stalls (> {STALL_MS:g} ms or missing)", lambda r: r["stalls"])
    row("load start → crossing (ms)", lambda r: r["times_ms"]["load_start_to_crossing"])
    row("crossing → steer committed (ms)",
        lambda r: r["times_ms"]["crossing_to_steer_committed"])
    row("crossing → first frame at MEC-2 (ms)",
        lambda r: r["times_ms"]["crossing_to_first_frame_mec2"])
    row("move decided on metrics from", lambda r: r.get("move_observed_by") or "-")
    row("access switch: video packets marked (DSCP)",
        lambda r: f"{(r.get('access_switch') or {}).get('classified_packets')} "
                  f"({(r.get('access_switch') or {}).get('dscp')})")
    row("DNS A at start", lambda r: r["dns"]["first"].get("a"))
    row("DNS SVCB/TXT at start", lambda r: _dns_choice(r["dns"]["first"]))
    row("DNS SVCB/TXT after the run", lambda r: _dns_choice(r["dns"]["after"] or {}))
    lines += ["", "![per-frame latency](latency.png)", "", "Decisions (controller journal):"]
    for r, c in zip(results, cols, strict=True):
        for d in r["decisions"]:
            lines.append(f"- {c}: {d['previous']} → {d['site']}: {d['reason']} "
                         f"(programmed in {d['program_ms']} ms)")
    return "\n".join(lines) + "\n"


def _dns_choice(ans: dict[str, Any]) -> str:
    svcb = ans.get("svcb") or []
    if svcb:
        return "; ".join(svcb)[:160]
    return "; ".join(ans.get("txt") or []) or "-"


def write(results: list[dict[str, Any]], outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    doc = {("cpn" if r["steer"] else "baseline"): r for r in results}
    (outdir / "report.json").write_text(json.dumps(doc, indent=1))
    (outdir / "report.md").write_text(markdown(results))
    plot(results, outdir / "latency.png")


def summary(results: list[dict[str, Any]]) -> str:
    out = []
    for r in results:
        f, lat, tm = r["frames"], r["latency_ms"], r["times_ms"]
        out.append(
            f"{'CPN     ' if r['steer'] else 'baseline'}: sent {f['sent']} lost {f['lost']} "
            f"dup {f['duplicated']} stalls {r['stalls']} | p99 before/during/after "
            f"{lat['before']['p99']}/{lat['during']['p99']}/{lat['after']['p99']} ms | "
            f"crossing→steer {tm['crossing_to_steer_committed']} ms, "
            f"crossing→first frame MEC-2 {tm['crossing_to_first_frame_mec2']} ms")
    return "\n".join(out)
