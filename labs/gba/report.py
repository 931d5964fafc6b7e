"""Turn the lab's raw results into ``report.json`` and ``report.md`` (WP-3.3.4).

Rules:
- Pure: dicts in, text out (``write`` is the only I/O).
- Each job's decision is the scheduler's stored ``SchedulingDecision`` (read over REST,
  ``/api/v1/scheduler/decisions/job:<id>``): scores (chosen + runners-up), policy,
  requests and the verdict on every other site are its fields; the journal entry that
  wrote it (actor, time, sequence) is shown beside it, so the report shows what the
  store holds, nothing parsed back from text.
- A placement's programmed path (``programmed``, from ``labs.gba.run.programmed_path``)
  is the stored decision's ``intent`` and ``network`` fields and the SR policy intent's
  status entity (state, hops, segments), with the route read back from the headend's
  kernel beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def decision_entry(journal: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The journal entry that wrote the job's last decision (its reason names ``key``)."""
    for e in reversed(journal):
        if f"decision {key}" in (e.get("reason") or ""):
            found: dict[str, Any] = e
            return found
    return None


def job_row(case: dict[str, Any], job: dict[str, Any], journal: list[dict[str, Any]],
            decision: dict[str, Any] | None, expected: str | None,
            path: dict[str, Any]) -> dict[str, Any]:
    key = f"job:{job['id']}"
    entry = decision_entry(journal, key) if decision else None
    scores = [(str(n), float(s)) for n, s in (decision or {}).get("scores", [])]
    return {
        "job": job["id"], "name": case["name"], "policy": case["policy"],
        "why": case["why"], "state": job["state"], "site": job.get("site"),
        "expected_site": expected,
        "as_expected": expected is None or job.get("site") == expected,
        "scores": [{"node": n, "score": s} for n, s in scores],
        "runners_up": [{"node": n, "score": s} for n, s in scores
                       if n.split("/", 1)[0] != job.get("site")],
        "decision": ({"key": key, "code": decision["code"], "site": decision["site"],
                      "nodes": decision["nodes"], "policy": decision["policy"],
                      "requests": decision["requests"], "inputs": decision["inputs"],
                      "not_chosen": [c for c in decision["candidates"]
                                     if c["constraint"] != "chosen"],
                      "decided_at": decision["decided_at"],
                      "actor": entry["actor"] if entry else None,
                      "ts": entry["ts"] if entry else None,
                      "seq": entry["seq"] if entry else None}
                     if decision else None),
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
    lines += ["", "## Why each job went where it did (stored decisions and the journal)", ""]
    for j in rep["jobs"]:
        lines.append(f"### {j['name']} — {j['policy']} → {j['site']}")
        lines.append(f"Expectation: {j['why']}.")
        if j["scores"]:
            lines.append("Scores: " + ", ".join(f"{s['node']}={s['score']:.1f}"
                                                for s in j["scores"]))
        d = j["decision"]
        if d is not None:
            lines.append(f"Decision `{d['key']}` ({d['code']}, policy {d['policy']}, "
                         f"journal #{d['seq']}); not chosen:")
            for c in d["not_chosen"]:
                lines.append(f"- {c['site']}: {c['constraint']}"
                             + (f" — {c['reason']}" if c.get("reason") else "")
                             + (f" (score {c['score']:.1f})" if c.get("score") is not None
                                else ""))
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
    lines += _programmed(rep)
    lines += _optical(rep.get("optical") or {})
    s = rep["summary"]
    lines += ["## Summary", "", f"- jobs placed as expected: {s['as_expected']}/{s['jobs']}",
              f"- decisions stored and journaled: {s['journaled']}/{s['jobs']}",
              f"- distinct sites chosen: {s['distinct_sites']}", ""]
    return "\n".join(lines)


def _programmed(rep: dict[str, Any]) -> list[str]:
    out = ["## Programmed paths of the placements (SR policy intents)", ""]
    dp = rep.get("dataplane") or {}
    if not dp.get("used"):
        return [*out, f"No dataplane: {dp.get('why', 'not run')}.", ""]
    out += [f"Sites as kernel SRv6 routers in namespaces ({dp['programmer']}); a placement "
            "with a delay or bandwidth requirement is an SR policy intent "
            "`place:job:<id>`.", "",
            "| job | site | intent | state | hops (links) | segments | kernel route at "
            "headend |", "|---|---|---|---|---|---|---|"]
    for j in rep["jobs"]:
        p = j.get("programmed")
        if not p or not p.get("needed"):
            continue
        if not p.get("intent"):
            net = p.get("network") or {}
            out.append(f"| {j['name']} | {j['site']} | - | {net.get('state', '-')} "
                       f"({net.get('constraint')}: {net.get('reason')}) | | | |")
            continue
        k = p.get("kernel_route")
        kern = ("same segments" if p.get("kernel_equals_status") else
                f"DIFFERS: {k['segments']}") if k else "none"
        out.append(f"| {j['name']} | {j['site']} | `{p['intent']}` | {p['state']} | "
                   f"{' > '.join(p['hops'])} ({', '.join(p.get('links', []))}) | "
                   f"{', '.join(p['segments'])} | {kern} |")
    others = [j["name"] for j in rep["jobs"]
              if not (j.get("programmed") or {}).get("needed")]
    if others:
        out += ["", f"No network requirement (no path programmed): {', '.join(others)}."]
    return [*out, ""]


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
