// The dashboard page's script: a file of its own, as the Content-Security-Policy
// allows no inline script. Reads /api/status and /api/metrics every 5 s.
"use strict";
const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
const text = (v) => (v === null || v === undefined ? "–" : String(v));
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
function age(created, now) {
  const t = Date.parse(created);
  if (!created || isNaN(t)) return "–";
  let s = Math.max(0, Math.floor(now - t / 1000));
  if (s < 120) return s + "s";
  if (s < 7200) return Math.floor(s / 60) + "m";
  if (s < 172800) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}
function ago(at, now) { return Math.max(0, now - at) + "s ago"; }
function duration(s) {
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

function renderStatus(s) {
  $("updated").textContent = "updated " + new Date(s.at * 1000).toLocaleTimeString();
  $("online-users").textContent = text(s.online_users);
  $("registered-users").textContent = text(s.registered_users);
  $("total-messages").textContent = text(s.total_messages);
  $("uptime").textContent = duration(s.uptime_seconds);
  $("messages-per-second").textContent = s.messages_per_second === null ? "–" : s.messages_per_second.toFixed(1);
  const d = s.deployment;
  $("replicas").textContent = d ? d.ready + " / " + d.desired : s.pods.length + " (presence)";
  $("deployment").innerHTML = d
    ? `<b>${esc(d.name)}</b>: desired ${d.desired}, ready ${d.ready}, available ${d.available}, updated ${d.updated}`
    : "Kubernetes: " + esc(s.health.kubernetes.detail);
  const notice = $("kube-notice");
  notice.hidden = !!d;
  notice.textContent = d ? "" : "Kubernetes: " + s.health.kubernetes.detail + ". Users, messages and pods come from Redis and PostgreSQL.";
  $("health").innerHTML = Object.entries(s.health).map(([name, c]) =>
    `<div id="health-${name}"><span class="badge ${c.healthy ? "ok" : "bad"}">${c.healthy ? "healthy" : "unhealthy"}</span> <b>${esc(name)}</b><small>${esc(c.detail)}</small></div>`).join("");
  $("pods").innerHTML = s.pods.map((p) =>
    `<tr><td>${esc(p.name)}</td><td>${esc(p.phase)}</td><td>${p.ready ? "yes" : "no"}</td><td>${p.restarts}</td><td>${age(p.created, s.at)}</td><td>${esc(p.node) || "–"}</td><td>${esc(p.ip) || "–"}</td><td>${text(p.sessions)}</td></tr>`).join("")
    || `<tr><td colspan="8" class="muted">no chat pods</td></tr>`;
  const names = s.online_user_names;
  $("online-names-note").textContent = !s.user_names_shown
    ? "Names hidden: DASHBOARD_USER_NAMES is off (by default without a login beyond loopback)."
    : names === null ? "Names unknown: Redis did not answer." : names.length === 0 ? "Nobody online." : names.length + " online:";
  $("online-names").innerHTML = (names || []).map((n) => `<li>${esc(n)}</li>`).join("");
  const a = s.autoscaler;
  $("autoscaler-last").innerHTML = a.last
    ? `Last decision ${ago(a.last.at, s.at)}: <code>${esc(a.last.line)}</code>`
    : "No decision in the last three ticks: " + esc(s.health.autoscaler.detail);
  $("scale-events").innerHTML = a.events.map((e) =>
    `<tr><td>${new Date(e.at * 1000).toLocaleTimeString()}</td><td>${esc(e.action)}</td><td>${text(e.users)}</td><td>${text(e.current)} → ${text(e.target)}</td><td><code>${esc(e.line)}</code></td></tr>`).join("")
    || `<tr><td colspan="5" class="muted">no scale events yet</td></tr>`;
}

const charts = {};
function chart(id, series, data, scales) {
  const el = $(id);
  const width = Math.max(300, el.clientWidth || 500);
  if (!charts[id]) {
    const opts = { width, height: 200, series: [{}].concat(series), axes: [{}, { size: 50 }] };
    if (scales) opts.scales = scales;
    charts[id] = new uPlot(opts, data, el);
  } else {
    charts[id].setData(data);
  }
  // For tests and people: how many samples the chart holds, its series and
  // their latest values.
  el.dataset.points = String(data[0].length);
  el.dataset.series = series.map((x) => x.label).join(",");
  el.dataset.latest = data.slice(1).map((d) => text(d[d.length - 1])).join(",");
}
function renderMetrics(m) {
  const p = m.points;
  const t = p.map((x) => x.at);
  chart("chart-users", [{ label: "online users", stroke: "#2563eb", width: 2 }], [t, p.map((x) => x.online_users)]);
  // Without the Kubernetes API: the pods with a heartbeat as the ready ones.
  chart("chart-scaling", [
    { label: "desired replicas", stroke: "#d97706", width: 2, dash: [6, 4] },
    { label: "ready replicas", stroke: "#16a34a", width: 2 },
  ], [t, p.map((x) => x.desired_replicas), p.map((x) => x.ready_replicas ?? x.pods)],
  // Whole replicas from 0, one above the highest.
  { y: { range: (u, min, max) => [0, Math.max(1, Math.ceil(max ?? 0) + 1)] } });
  chart("chart-messages", [{ label: "messages/s", stroke: "#9333ea", width: 2 }], [t, p.map((x) => x.messages_per_second)]);
}

async function refresh() {
  try {
    const [status, metrics] = await Promise.all([fetch("/api/status"), fetch("/api/metrics")]);
    if (status.ok) renderStatus(await status.json());
    if (metrics.ok) renderMetrics(await metrics.json());
  } catch (e) {
    $("updated").textContent = "dashboard not reachable: " + e;
  }
}
refresh();
setInterval(refresh, REFRESH_MS);
