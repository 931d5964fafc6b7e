"""Turn the lab's raw results into ``report.json`` and ``report.md`` (WP-3.3.4).

Rules:
- Pure: dicts in, text out (``write`` is the only I/O).
- Each job's decision is explained from its journal entries: the scheduler's entry
  reason is ``scheduler: <id> <code> on <node>: <reasons> | scores a=x, b=y | inputs
  {json}`` — scores (chosen + runners-up) and inputs are parsed from it, so the report
  shows what the journal holds, nothing else.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_SCORES = re.compile(r"\| scores (.*?)(?: \| inputs |$)")
_INPUTS = re.compile(r"\| inputs (\{.*)$")


def parse_scores(reason: str) -> list[tuple[str, float]]:
    m = _SCORES.search(reason)
    if m is None:
        return []
    out = []
    for part in m.group(1).split(", "):
        name, _, val = part.rpartition("=")
        try:
            out.append((name, float(val)))
        except ValueError:
            continue
    return out


def parse_inputs(reason: str) -> dict[str, Any] | None:
    m = _INPUTS.search(reason)
    if m is None:
        return None
    try:
        val = json.loads(m.group(1))
    except json.JSONDecodeError:  # reason truncated by the journal's length cap
        return None
    return val if isinstance(val, dict) else None


def decision_entry(journal: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The journal entry that placed (or failed) the job: the last one whose value has
    a site or a terminal/queued state written by someone other than the submitter."""
    for e in reversed(journal):
        v = e.get("value") or {}
        if v.get("state") in ("running", "failed") and e.get("actor") != "api:gba-lab":
            found: dict[str, Any] = e
            return found
    return None


def job_row(case: dict[str, Any], job: dict[str, Any], journal: list[dict[str, Any]],
            expected: str | None, path: dict[str, Any]) -> dict[str, Any]:
    dec = decision_entry(journal)
    scores = parse_scores(dec["reason"]) if dec else []
    return {
        "job": job["id"], "name": case["name"], "policy": case["policy"],
        "why": case["why"], "state": job["state"], "site": job.get("site"),
        "expected_site": expected,
        "as_expected": expected is None or job.get("site") == expected,
        "scores": [{"node": n, "score": s} for n, s in scores],
        "runners_up": [{"node": n, "score": s} for n, s in scores
                       if n.split("/", 1)[0] != job.get("site")],
        "decision": ({"actor": dec["actor"], "ts": dec["ts"], "seq": dec["seq"],
                      "reason": dec["reason"].split(" | inputs ", 1)[0],
                      "inputs": parse_inputs(dec["reason"])} if dec else None),
        "journal": [{"seq": e["seq"], "ts": e["ts"], "actor": e["actor"],
                     "action": e["action"], "state": (e.get("value") or {}).get("state"),
                     "reason": e["reason"][:300]} for e in journal],
        "path": path,
    }


def markdown(rep: dict[str, Any]) -> str:
    lines = ["# GBA multi-centre lab report", "",
             f"Controller: `{rep['controller']['argv']}`  ",
             f"Placement by: {rep['placement_by']}  ",
             f"Flows: {rep['flows_by']}", "",
             "## Seeded site metrics (CATS L0/L2 through REST)", "",
             "| site | kind | energy_w | price/h | L2 |", "|---|---|---|---|---|"]
    for m in rep["metrics"]:
        lines.append(f"| {m['site']} | {m['kind']} | {m['l0']['energy_w']:g} | "
                     f"{m['l0']['price_per_hour']:g} | {m['l2']:g} |")
    lines += ["", "## Jobs", "",
              "| job | policy | site | expected | ok | runner-up | SR path (segments) |",
              "|---|---|---|---|---|---|---|"]
    for j in rep["jobs"]:
        ru = j["runners_up"][0] if j["runners_up"] else None
        ru_s = f"{ru['node']} ({ru['score']:.1f})" if ru else "-"
        p = j["path"]
        seg = "local" if p.get("local") else (
            f"{' > '.join(p['hops'])} via {'/'.join(p['interconnects'])} "
            f"[{', '.join(p['segment_list'])}]")
        lines.append(f"| {j['name']} `{j['job']}` | {j['policy']} | {j['site']} | "
                     f"{j['expected_site']} | {'yes' if j['as_expected'] else 'NO'} | "
                     f"{ru_s} | {seg} |")
    lines += ["", "## Why each job went where it did (from the journal)", ""]
    for j in rep["jobs"]:
        lines.append(f"### {j['name']} — {j['policy']} → {j['site']}")
        lines.append(f"Expectation: {j['why']}.")
        if j["scores"]:
            lines.append("Scores: " + ", ".join(f"{s['node']}={s['score']:.1f}"
                                                for s in j["scores"]))
        for e in j["journal"]:
            lines.append(f"- #{e['seq']} {e['ts']} **{e['actor']}** {e['action']} "
                         f"→ {e['state']}: {e['reason']}")
        p = j["path"]
        if not p.get("local"):
            lines.append(f"- path (GBA-5.2 tier {p.get('tier')}, allowed "
                         f"{'/'.join(p.get('allowed_kinds', []))}): "
                         f"{' > '.join(p['hops'])}, {p['delay_ms']} ms, "
                         f"SIDs {', '.join(p['segment_list'])}")
        lines.append("")
    lines += _optical(rep.get("optical") or {})
    s = rep["summary"]
    lines += ["## Summary", "", f"- jobs placed as expected: {s['as_expected']}/{s['jobs']}",
              f"- decisions with a journal entry: {s['journaled']}/{s['jobs']}",
              f"- distinct sites chosen: {s['distinct_sites']}", ""]
    return "\n".join(lines)


def _optical(o: dict[str, Any]) -> list[str]:
    out = ["## Hub OTN mesh on NETCONF NEs (GBA-5.2, GBA-6.4.2e)", ""]
    if not o.get("used"):
        return [*out, f"Not run: {o.get('why', 'disabled')}.", ""]
    out += [f"Hubs at NEs: {o['hub_ne']}", "",
            "| path | NEs | state | channel | route | protect route | IP link | link SRLGs "
            "before → after |", "|---|---|---|---|---|---|---|---|"]
    for p in o["paths"]:
        for key in p.get("ip-links") or ["-"]:
            out.append(f"| {p['id']} | {p['src']}–{p['dst']} | {p['state']} | {p['channel']} "
                       f"| {' > '.join(p['route'])} | "
                       f"{' > '.join(p['protect-route']) if p['protect-route'] else '-'} | "
                       f"{key} | {o['link_srlgs_before'].get(key)} → "
                       f"{o['link_srlgs_after'].get(key)} |")
    return [*out, ""]


def write(rep: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(rep, indent=2, sort_keys=True, default=str))
    (out / "report.md").write_text(markdown(rep))
