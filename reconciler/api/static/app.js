// volctl dashboard: polls the read-only REST view (/api/v1/snapshot) every 2 s.
// Vanilla JS, no dependencies; all data is inserted as text, never as HTML.
"use strict";

const POLL_MS = 2000;
let token = null;

function readToken() {
  const m = /(?:^|[#&])token=([^&]+)/.exec(window.location.hash);
  if (m) {
    token = decodeURIComponent(m[1]);
    try { sessionStorage.setItem("volctl-token", token); } catch (e) { /* private mode */ }
    history.replaceState(null, "", window.location.pathname);
  } else {
    try { token = sessionStorage.getItem("volctl-token"); } catch (e) { token = null; }
  }
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "style") node.setAttribute("style", v);
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function badge(phase) {
  return el("span", { class: "badge phase-" + phase }, phase);
}

function ago(t, now) {
  if (!t) return "-";
  const s = Math.max(0, Math.round(now - t));
  if (s < 120) return s + "s ago";
  if (s < 7200) return Math.round(s / 60) + "m ago";
  return Math.round(s / 3600) + "h ago";
}

function message(item) {
  if (item.lastError) return item.lastError;
  const ready = (item.conditions || []).find((c) => c.type === "Ready");
  return ready && ready.status !== "True" ? (ready.message || ready.reason) : "";
}

function fill(tableId, rows) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren(...rows);
  if (!rows.length) {
    const cols = document.querySelectorAll("#" + tableId + " th").length;
    body.append(el("tr", {}, el("td", { colspan: cols, class: "muted" }, "none")));
  }
}

function pct(part, total) {
  return total > 0 ? Math.min(100, (100 * part) / total) : 0;
}

function bar(label, ours, foreign, total, unit) {
  return [
    el("div", { class: "bar-label" }, el("span", {}, label),
      el("span", {}, `${ours} ours + ${foreign} foreign / ${total} ${unit}`)),
    el("div", { class: "bar", role: "img",
                "aria-label": `${label}: ${ours} ours, ${foreign} foreign of ${total}` },
      el("span", { class: "ours", style: `width:${pct(ours, total)}%` }),
      el("span", { class: "foreign", style: `width:${pct(foreign, total)}%` })),
  ];
}

function renderHosts(hosts) {
  const box = document.getElementById("hosts");
  const cards = hosts.map((h) => el("div", { class: "host", id: "host-" + h.name, "data-host": h.name },
    el("h3", {}, el("span", {}, `${h.name} (pmid ${h.pmid})`), badge(h.reachable ? "Ready" : "Unknown")),
    ...(h.reachable
      ? [...bar("CPU", h.cpuUsedOurs, h.cpuUsedForeign, h.cpus, "vCPU"),
         ...bar("RAM", h.ramUsedOursMiB, h.ramUsedForeignMiB, h.memoryMiB, "MiB"),
         el("div", { class: "legend" }, `${h.domainsOurs} ours, ${h.domainsForeign} foreign domains`,
           el("i", { style: "background:var(--ours)" }), "ours",
           el("i", { style: "background:var(--foreign)" }), "foreign")]
      : [el("div", { class: "error" }, h.reason || "unreachable")])));
  box.replaceChildren(...cards);
  if (!cards.length) box.append(el("div", { class: "muted" }, "no hosts in the desired state"));
}

function render(s) {
  const now = s.time || Date.now() / 1000;
  const conv = document.getElementById("convergence");
  const failing = s.lastError || (s.source && s.source.error);
  conv.textContent = s.converged ? "Converged" : failing ? "Not converged: error" : "Progressing";
  conv.className = "badge " + (s.converged ? "converged" : failing ? "failing" : "progressing");
  conv.dataset.converged = String(Boolean(s.converged));
  document.getElementById("generation").textContent =
    `pass ${s.generation}` + (s.lastPassSeconds != null ? ` (${s.lastPassSeconds.toFixed(2)} s)` : "") +
    `, ${s.pendingActions} actions pending`;
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();

  const src = s.source;
  const srcBox = document.getElementById("source");
  if (!src || !src.kind) {
    srcBox.replaceChildren(el("span", { class: "muted" }, "no source reported yet"));
  } else {
    const rev = src.lastAppliedRevision || "-";
    srcBox.replaceChildren(...[
      el("div", {}, el("b", {}, src.kind === "git" ? "git " : "apply store "), src.url,
        src.branch ? ` (branch ${src.branch}, path ${src.path || "."})` : ""),
      el("div", {}, "last applied revision: ", el("code", { id: "revision" }, rev),
        src.lastAttemptedRevision && src.lastAttemptedRevision !== rev
          ? el("span", { class: "muted" }, "  last attempted: " + src.lastAttemptedRevision) : null),
      src.error ? el("pre", { class: "error", id: "source-error" }, src.error) : null,
    ].filter((n) => n !== null));
  }
  const errBox = document.getElementById("error");
  errBox.hidden = !s.lastError;
  errBox.textContent = s.lastError || "";

  renderHosts(s.hosts || []);

  const volsOf = {};
  for (const a of s.attachments || []) {
    const vm = a.details.vm;
    (volsOf[vm] = volsOf[vm] || []).push(`${a.details.volume} (${a.phase})`);
  }
  fill("vms", (s.vms || []).map((v) => el("tr", { id: "vm-" + v.name, "data-vm": v.name, "data-phase": v.phase },
    el("td", {}, v.name), el("td", {}, badge(v.phase)), el("td", {}, v.host || "-"),
    el("td", {}, v.ids.vmid ?? "-"), el("td", {}, v.instanceType || "-"),
    el("td", {}, (volsOf[v.name] || []).join(", ") || "-"), el("td", { class: "msg" }, message(v)))));

  fill("volumes", (s.volumes || []).map((v) => el("tr", { id: "volume-" + v.name, "data-volume": v.name, "data-phase": v.phase },
    el("td", {}, v.name), el("td", {}, badge(v.phase)), el("td", {}, v.details.size || "-"),
    el("td", {}, v.ids.volumeid ?? "-"), el("td", {}, v.attachedTo || "-"),
    el("td", {}, v.details.reclaimPolicy || "-"), el("td", { class: "msg" }, message(v)))));

  fill("events", (s.events || []).slice(-30).reverse().map((e) => el("tr", { class: "ev-" + e.type },
    el("td", { title: new Date(e.time * 1000).toISOString() }, ago(e.time, now)),
    el("td", {}, e.type), el("td", {}, e.resource), el("td", {}, e.reason), el("td", { class: "msg" }, e.message))));
  document.body.dataset.generation = String(s.generation);
}

async function poll() {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  try {
    const resp = await fetch("/api/v1/snapshot", { headers, cache: "no-store" });
    document.getElementById("token-panel").hidden = resp.status !== 401;
    if (resp.status === 401) throw new Error("the REST view needs a bearer token");
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    render(await resp.json());
    if (!document.getElementById("error").textContent) document.getElementById("error").hidden = true;
  } catch (err) {
    const box = document.getElementById("error");
    box.hidden = false;
    box.textContent = "cannot load /api/v1/snapshot: " + err.message;
    const conv = document.getElementById("convergence");
    conv.textContent = "controller unreachable";
    conv.className = "badge failing";
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

document.getElementById("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = document.getElementById("token-input").value.trim() || null;
  try { sessionStorage.setItem("volctl-token", token || ""); } catch (e) { /* ignore */ }
});

readToken();
poll();
