/* CPN console: reads the controller's REST API with the caller's token, redraws on
 * the change feed (/api/v1/changes/stream, SSE over fetch so the token travels in the
 * Authorization header; long-poll /api/v1/changes when streaming fails). */
"use strict";

const cpn = { token: sessionStorage.getItem("cpn.token"), who: null, cy: null,
              overview: null, history: {}, chart: null, readyAt: null, renders: 0,
              stream: null, nodesKey: "" };
window.cpn = cpn;
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, opts = {}) {
  const headers = { Authorization: `Bearer ${cpn.token}`, ...(opts.headers || {}) };
  if (opts.body && typeof opts.body !== "string") {
    headers["Content-Type"] = "application/json";
    opts = { ...opts, body: JSON.stringify(opts.body) };
  }
  const resp = await fetch(path, { ...opts, headers });
  if (resp.status === 401) { logout("token refused: log in again"); throw new ApiError(401, "unauthorized"); }
  const body = resp.status === 204 ? null : await resp.json().catch(() => null);
  if (!resp.ok) {
    const msg = body && body.error ? body.error.message : `${resp.status} ${resp.statusText}`;
    throw new ApiError(resp.status, msg);
  }
  return body;
}

/* ------------------------------------------------------------------ login */
async function login(token) {
  cpn.token = token;
  try {
    cpn.who = await api("/api/v1/whoami");
  } catch (e) {
    cpn.token = null;
    $("#login-error").textContent = e.status === 401 ? "token refused (unknown or revoked)" : e.message;
    return;
  }
  sessionStorage.setItem("cpn.token", token);
  $("#login-token").value = "";
  $("#login-error").textContent = "";
  $("#login").hidden = true; $("#main").hidden = false; $("#logout").hidden = false;
  $("#whoami").textContent = `${cpn.who.name} · ${cpn.who.role}` +
    (cpn.who.tenant ? ` · tenant ${cpn.who.tenant}` : "");
  if (cpn.who.role === "tenant") $("#bill-tenant").value = cpn.who.tenant;
  $("#bill-month").value = new Date().toISOString().slice(0, 7);
  try { await refreshAll(); } catch (e) { $("#error").textContent = e.message; }
  cpn.readyAt = performance.now();
  document.body.dataset.ready = "1";
  live();
}

function logout(why) {
  sessionStorage.removeItem("cpn.token");
  cpn.token = null;
  if (cpn.stream) cpn.stream.abort();
  $("#main").hidden = true; $("#login").hidden = false; $("#logout").hidden = true;
  $("#login-error").textContent = why || "";
  document.body.dataset.ready = "";
}

/* ------------------------------------------------------------------ network */
function siteState(name) {
  const recs = (cpn.overview.compute || []).filter((m) => m.site === name);
  if (!recs.length) return "unknown";
  if (recs.some((m) => m.overloaded)) return "overloaded";
  if (recs.every((m) => m.stale || !m.available)) return "stale";
  return "ok";
}

function layoutFor(ov, known) {
  /* flows start at their headends: lay the network out as a tree from them (a
   * network with no steered flow: from its hubs, else cytoscape's choice) */
  let roots = [...new Set(ov.flows.map((f) => f.headend))].filter((n) => known.has(n));
  if (!roots.length) roots = ov.sites.filter((s) => s.kind === "hub").map((s) => s.name);
  return { name: "breadthfirst", animate: false, spacingFactor: 1.1, padding: 20,
           roots: roots.length ? roots : undefined };
}

function drawMap(ov) {
  const nodes = [
    ...ov.sites.map((s) => ({ group: "nodes", data: { id: s.name, label: s.name, type: "site",
                                                      kind: s.kind } })),
    ...ov.routers.filter((r) => !ov.sites.some((s) => s.name === r.name))
      .map((r) => ({ group: "nodes", data: { id: r.name, label: r.name, type: "router" } })),
  ];
  const known = new Set(nodes.map((n) => n.data.id));
  const edges = ov.links.filter((l) => known.has(l.a) && known.has(l.b)).map((l) => ({
    group: "edges",
    data: { id: `link:${l.id}`, source: l.a, target: l.b, kind: l.kind, state: l.state,
            load: l.load_pct === null ? 0 : l.load_pct,
            label: l.load_pct === null ? "" : `${l.load_pct}%` } }));
  const linked = new Set(ov.links.flatMap((l) => [`${l.a}|${l.b}`, `${l.b}|${l.a}`]));
  for (const r of ov.routers) {  // a site's gateway router, when no link joins them
    if (r.site && known.has(r.site) && known.has(r.name) && r.site !== r.name &&
        !linked.has(`${r.name}|${r.site}`)) {
      edges.push({ group: "edges", classes: "attach",
                   data: { id: `attach:${r.name}`, source: r.name, target: r.site, label: "" } });
    }
  }
  const flowEdges = [];
  for (const f of ov.flows) {
    for (let i = 0; i + 1 < f.path.length; i++) {
      if (known.has(f.path[i]) && known.has(f.path[i + 1])) {
        flowEdges.push({ group: "edges", classes: "flow",
          data: { id: `flow:${f.id}:${f.path[i]}>${f.path[i + 1]}`, source: f.path[i],
                  target: f.path[i + 1], flow: f.id, label: i === 0 ? f.service : "" } });
      }
    }
  }
  const key = nodes.map((n) => n.data.id).sort().join(",");
  if (!cpn.cy || cpn.nodesKey !== key) {
    if (cpn.cy) cpn.cy.destroy();
    cpn.nodesKey = key;
    cpn.cy = cytoscape({
      container: $("#map"), elements: [...nodes, ...edges, ...flowEdges],
      layout: layoutFor(ov, known),
      style: [
        { selector: "node", style: { label: "data(label)", "font-size": 11,
          "text-valign": "bottom", "background-color": "#5b7fa3", width: 18, height: 18 } },
        { selector: "node[type='site']", style: { shape: "round-rectangle", width: 30,
          height: 22, "background-color": "#3c9a5f" } },
        { selector: "node.overloaded", style: { "background-color": "#d0342c" } },
        { selector: "node.stale", style: { "background-color": "#9a9a9a" } },
        { selector: "edge", style: { width: 2, "line-color": "#9fb3c8", label: "data(label)",
          "font-size": 9, "curve-style": "bezier" } },
        { selector: "edge[kind='otn']", style: { "line-color": "#7a5cc9" } },
        { selector: "edge[kind='internet']", style: { "line-style": "dotted" } },
        { selector: "edge[load > 70]", style: { "line-color": "#e2561d", width: 4 } },
        { selector: "edge[state='down']", style: { "line-color": "#d0342c",
          "line-style": "dashed" } },
        { selector: "edge.attach", style: { "line-style": "dashed", width: 1,
          "line-color": "#b8c2cc" } },
        { selector: "edge.flow", style: { "line-color": "#0b6b3a", width: 5, opacity: 0.8,
          "target-arrow-shape": "triangle", "target-arrow-color": "#0b6b3a",
          "curve-style": "unbundled-bezier", "control-point-distances": 12 } },
      ],
    });
  } else {
    cpn.cy.batch(() => {
      cpn.cy.edges().remove();
      cpn.cy.add([...edges, ...flowEdges]);
    });
  }
  cpn.cy.nodes().forEach((n) => {
    n.removeClass("overloaded stale");
    if (n.data("type") === "site") {
      const st = siteState(n.id());
      if (st === "overloaded" || st === "stale") n.addClass(st);
    }
  });
}

function fmtL0(l0) {
  return Object.entries(l0 || {}).map(([k, v]) => `${k}=${+v.toFixed(2)}`).join(" ");
}

function drawCompute(ov) {
  const tb = $("#compute tbody");
  tb.replaceChildren(...ov.compute.slice().sort((a, b) =>
    (a.site + a.service).localeCompare(b.site + b.service)).map((m) => {
    const state = m.overloaded ? "overloaded" : m.stale ? "stale" : !m.available ?
      "unavailable" : "ok";
    return el("tr", { class: state, "data-site": m.site, "data-service": m.service,
                      "data-state": state },
      el("td", {}, m.site), el("td", {}, m.service), el("td", {}, m.l2.toFixed(2)),
      el("td", {}, fmtL0(m.l1)), el("td", {}, fmtL0(m.l0)), el("td", {}, state),
      el("td", {}, m.source), el("td", {}, m.updated_at.slice(11, 19)));
  }));
  const now = new Date().toLocaleTimeString();
  for (const m of ov.compute) {
    const k = `${m.site}/${m.service}`;
    const h = cpn.history[k] || (cpn.history[k] = []);
    h.push({ t: now, v: m.l2 });
    if (h.length > 60) h.shift();
  }
  drawChart();
}

function drawChart() {
  if (typeof Chart === "undefined") return;
  const keys = Object.keys(cpn.history).slice(0, 12);
  const longest = keys.reduce((a, k) => cpn.history[k].length > a.length ? cpn.history[k] : a, []);
  const datasets = keys.map((k) => ({ label: k, data: cpn.history[k].map((p) => p.v),
                                      tension: 0.2, pointRadius: 1 }));
  if (!cpn.chart) {
    cpn.chart = new Chart($("#l2chart"), { type: "line",
      data: { labels: longest.map((p) => p.t), datasets },
      options: { animation: false, maintainAspectRatio: false,
                 scales: { y: { min: 0, max: 10, title: { display: true, text: "L2 score" } } },
                 plugins: { legend: { position: "right" } } } });
  } else {
    cpn.chart.data.labels = longest.map((p) => p.t);
    cpn.chart.data.datasets = datasets;
    cpn.chart.update();
  }
}

function drawFlows(ov) {
  const box = $("#flows");
  if (!ov.flows.length) { box.replaceChildren(el("p", { class: "muted" }, "no steered flows")); return; }
  box.replaceChildren(...ov.flows.map((f) => {
    const ranking = ((f.inputs || {}).ranking || []).map((c) =>
      `${c.site} ${c.score}${c.eligible ? "" : ` (${c.why_not})`}`).join("; ");
    return el("div", { class: "flow", "data-flow": f.id, "data-site": f.site || "" },
      el("div", {}, el("b", {}, f.service), ` from ${f.headend} → `, el("b", {}, f.site || "nowhere"),
         f.previous_site ? ` (was ${f.previous_site})` : ""),
      el("div", { class: "path" }, "path: ", f.path.join(" → ")),
      el("div", { class: "why" }, "why: ", f.reason),
      ranking ? el("div", { class: "muted" }, "ranking: ", ranking) : null,
      el("div", { class: "muted" }, `segments ${f.segments.join(", ") || "-"} · decided `,
         f.decided_at.slice(11, 19), f.program_ms !== null ? ` · programmed in ${f.program_ms} ms` : "",
         f.committed ? "" : " · NOT committed"));
  }));
}

function drawLinks(ov) {
  $("#links tbody").replaceChildren(...ov.links.map((l) => el("tr", { "data-link": l.id },
    el("td", {}, `${l.a} – ${l.b}`), el("td", {}, l.kind), el("td", {}, l.state),
    el("td", {}, l.load_pct === null ? "-" : l.load_pct), el("td", {}, l.delay_ms),
    el("td", {}, l.loss_pct), el("td", {}, l.available_mbps))));
  $("#sessions tbody").replaceChildren(...ov.sessions.map((s) => el("tr",
    { class: s.state === "up" ? "" : "overloaded" }, el("td", {}, s.kind), el("td", {}, s.peer),
    el("td", {}, s.site || "-"), el("td", {}, s.state + (s.reason ? ` (${s.reason})` : "")),
    el("td", {}, `${s.ups}/${s.downs}`))));
}

async function loadOverview() {
  const ov = await api("/api/v1/console/overview");
  cpn.overview = ov;
  drawCompute(ov);
  if (typeof cytoscape !== "undefined") drawMap(ov);
  drawFlows(ov);
  drawLinks(ov);
  cpn.renders += 1;
  document.body.dataset.seq = ov.seq;
}

/* ------------------------------------------------------------------ tables */
function table(items, cols) {
  if (!items || !items.length) return el("p", { class: "muted" }, "none");
  const val = (o, path) => path.split(".").reduce((a, k) => (a == null ? a : a[k]), o);
  const show = (v) => v === null || v === undefined ? "-" : typeof v === "object" ?
    JSON.stringify(v) : String(v);
  return el("table", {}, el("thead", {}, el("tr", {}, cols.map((c) => el("th", {}, c)))),
    el("tbody", {}, items.map((it) => el("tr", {}, cols.map((c) => el("td", {}, show(val(it, c))))))));
}

async function optional(path) {
  /* a component that is not configured (409/503) or a route that is absent (404) or not
   * for this role (403): shown as "not available" with the controller's reason */
  try { return await api(path); } catch (e) {
    if ([403, 404, 409, 503].includes(e.status)) return { items: null, why: e.message };
    throw e;
  }
}

function section(res, cols) {
  if (res && res.items === null) return el("p", { class: "muted" }, `not available: ${res.why}`);
  return table(res && res.items, cols);
}

async function loadServices() {
  const [intents, slices, sdwan, optical] = await Promise.all([
    optional("/api/v1/srv6/intents"), optional("/api/v1/srv6/slices"),
    optional("/api/v1/srv6/sdwan-policies"), optional("/api/v1/optical/paths")]);
  $("#intents").replaceChildren(section(intents,
    ["name", "headend", "endpoint", "color", "status.state", "status.reason", "status.fix"]));
  $("#slices").replaceChildren(section(slices,
    ["name", "color", "guaranteed_mbps", "max_delay_ms", "dscp", "status.state",
     "status.reason"]));
  $("#sdwan").replaceChildren(section(sdwan,
    ["name", "sla", "transports", "headends", "endpoint", "color", "status.state",
     "status.reason"]));
  $("#optical").replaceChildren(section(optical,
    ["id", "state", "active", "rate", "channel", "route", "error"]));
}

async function loadJobs() {
  const jobs = await api("/api/v1/jobs?limit=1000");
  $("#jobs").replaceChildren(table(jobs.items, ["id", "tenant", "spec.name", "spec.queue",
    "state", "site", "reason", "submitted_at", "started_at", "ended_at"]));
  const q = {};
  for (const j of jobs.items) {
    const r = q[j.spec.queue] || (q[j.spec.queue] = { queue: j.spec.queue, submitted: 0,
                                                      queued: 0, running: 0, ended: 0 });
    if (j.state in r) r[j.state] += 1; else r.ended += 1;
  }
  $("#queues").replaceChildren(table(Object.values(q), ["queue", "submitted", "queued", "running", "ended"]));
}

async function loadAlarms() {
  const all = $("#alarms-all").checked;
  const res = await api(`/api/v1/alarms?state=${all ? "all" : "active"}&include_shelved=${all}`);
  const s = res.summary;
  const badge = $("#alarm-badge");
  const sevs = Object.entries(s.active).filter(([, n]) => n > 0);
  badge.replaceChildren("alarms:", ...(sevs.length ? sevs.map(([sev, n]) =>
    el("span", { class: `sev sev-${sev}` }, `${n} ${sev}`)) : [" none"]));
  $("#alarm-summary").textContent = `${s.unacknowledged} unacknowledged · ${s.shelved} shelved · ` +
    `${s.cleared} cleared`;
  const canAck = cpn.who.role !== "viewer";
  $("#alarms tbody").replaceChildren(...res.items.map((a) => el("tr",
    { "data-alarm": a.id, "data-type": a.type, "data-resource": a.resource,
      "data-acked": a.acknowledged ? "1" : "0" },
    el("td", { class: `sev-${a.severity}` }, a.severity), el("td", {}, a.type),
    el("td", {}, a.resource), el("td", {}, a.text), el("td", {}, a.count),
    el("td", {}, a.first_seen.slice(0, 19)), el("td", {}, a.last_seen.slice(0, 19)),
    el("td", {}, a.acknowledged ? `✓ ${a.acked_by}` : "-"),
    el("td", {}, canAck && !a.acknowledged && a.active ?
      el("button", { class: "ack", onclick: () => ack(a.id) }, "Acknowledge") : null))));
}

async function ack(id) {
  try {
    await api(`/api/v1/alarms/${id}/ack`, { method: "POST", body: { note: "from the console" } });
  } catch (e) { $("#error").textContent = `acknowledge ${id}: ${e.message}`; }
  await loadAlarms();
}

async function loadBill(ev) {
  if (ev) ev.preventDefault();
  const tenant = $("#bill-tenant").value.trim(), month = $("#bill-month").value;
  $("#bill-error").textContent = "";
  if (!tenant) { $("#bill").replaceChildren(); return; }
  try {
    const b = await api(`/api/v1/bills/${encodeURIComponent(tenant)}?month=${month}`);
    $("#bill").replaceChildren(
      el("p", {}, `Bill ${b.tenant} ${b.month}: total `, el("b", { id: "bill-total" },
         `${b.total} ${b.currency}`), ` (${b.lines.length} lines)`),
      table(b.lines, ["product", "kind", "site", "quantity", "unit", "unit_price", "amount",
                      "description"]));
  } catch (e) {
    $("#bill").replaceChildren();
    $("#bill-error").textContent = e.message;
  }
}

/* ------------------------------------------------------------------ live */
let pending = new Set(), timer = null;
function changed(kinds) {
  for (const k of kinds) pending.add(k);
  if (timer) return;
  timer = setTimeout(async () => {
    const ks = pending; pending = new Set(); timer = null;
    try { await refresh(ks); } catch (e) { $("#error").textContent = e.message; }
  }, 100);
}

const NETWORK = ["metrics", "link", "site", "router", "flow-steering", "service"];
async function refresh(kinds) {
  const any = (list) => list.some((k) => kinds.has(k));
  const jobs = [];
  if (any(NETWORK)) jobs.push(loadOverview());
  if (kinds.has("alarm")) jobs.push(loadAlarms());
  if (kinds.has("job")) jobs.push(loadJobs());
  if (any(["sr-policy-intent", "sr-policy-intent-status", "slice", "sdwan-policy",
           "optical-path"])) jobs.push(loadServices());
  if (any(["usage-record", "order", "price-plan"]) && !$("#tab-bills").hidden) jobs.push(loadBill());
  await Promise.all(jobs);
}

async function refreshAll() {
  $("#error").textContent = "";
  await Promise.all([loadOverview(), loadAlarms(), loadJobs(), loadServices()]);
}

async function live() {
  const ctl = new AbortController();
  cpn.stream = ctl;
  try {
    const resp = await fetch("/api/v1/changes/stream", { signal: ctl.signal,
      headers: { Authorization: `Bearer ${cpn.token}`, Accept: "text/event-stream" } });
    if (!resp.ok || !resp.body) throw new Error(`stream ${resp.status}`);
    $("#live").textContent = "● live"; $("#live").className = "on";
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i); buf = buf.slice(i + 2);
        const ev = /^event: (.*)$/m.exec(block), data = /^data: (.*)$/m.exec(block);
        if (ev && ev[1] === "change" && data) changed(JSON.parse(data[1]).kinds);
      }
    }
  } catch (e) {
    if (ctl.signal.aborted) return;
  }
  $("#live").textContent = "○ reconnecting"; $("#live").className = "";
  if (cpn.token) await longPoll();
}

async function longPoll() {
  let seq = cpn.overview ? cpn.overview.seq : 0;
  for (let i = 0; i < 3 && cpn.token; i++) {  // a few long-polls, then try the stream again
    try {
      const r = await api(`/api/v1/changes?since=${seq}&wait_s=20`);
      if (r.seq > seq) { seq = r.seq; changed(r.kinds); }
    } catch (e) { await new Promise((res) => setTimeout(res, 2000)); }
  }
  if (cpn.token) live();
}

/* ------------------------------------------------------------------ wiring */
document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    login($("#login-token").value.trim());
  });
  $("#logout").addEventListener("click", () => logout(""));
  $("#alarms-all").addEventListener("change", loadAlarms);
  $("#bill-form").addEventListener("submit", loadBill);
  for (const b of document.querySelectorAll("#tabs button")) {
    b.addEventListener("click", () => {
      for (const o of document.querySelectorAll("#tabs button")) o.classList.toggle("on", o === b);
      for (const t of document.querySelectorAll(".tab")) t.hidden = t.id !== `tab-${b.dataset.tab}`;
      if (b.dataset.tab === "network" && cpn.cy) cpn.cy.resize();
    });
  }
  if (cpn.token) login(cpn.token);
});
