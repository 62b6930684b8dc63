// kinns ui: draws the cluster from server-sent events and keeps it current.
// The server sends a `snapshot` of small view records (see kinns/ui/model.py), then `delta`
// batches of puts and deletes. Pods are updated in place (2,000 of them must stay cheap);
// the side lists (Services, Ingresses, NetworkPolicies) are short and redrawn whole.
"use strict";

const views = new Map();      // id -> view record, e.g. "pod/default/web-1" -> {...}
const podEls = new Map();     // pod id -> its chip
const nodeEls = new Map();    // node name -> {box, head, net, pods}
const dirty = new Set();      // ids changed since the last frame
let meta = {};
const UNSCHEDULED = "(unscheduled)";  // the box of pods no node has taken yet
const COMPACT_ABOVE = 400;              // pods drawn as squares above this many
let lastTrace = null;
let framePending = false;
// Figures the tests and bench/ui.py read: when the snapshot was drawn, how many deltas arrived.
window.kinns = { snapshots: 0, deltas: 0, drawnAt: 0 };

const $ = (sel) => document.querySelector(sel);

// h("li", {class: "x", data: {id: "1"}}, "text", child): an element, text set safely.
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "data") Object.assign(e.dataset, v);
    else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function byKind(kind) {
  // Natural order: worker2 before worker10, web-9 before web-10.
  return [...views.values()].filter((v) => v.kind === kind)
    .sort((a, b) => a.id.localeCompare(b.id, undefined, { numeric: true }));
}

// ------------------------------------------------------------------ live connection

function connect() {
  const es = new EventSource("/api/events");
  es.addEventListener("snapshot", (e) => {
    const d = JSON.parse(e.data);
    meta = d.meta;
    views.clear();
    for (const v of d.objects) views.set(v.id, v);
    drawAll();
    setLive(true);
    window.kinns.snapshots += 1;
    window.kinns.drawnAt = performance.now();
  });
  es.addEventListener("delta", (e) => {
    for (const op of JSON.parse(e.data)) {
      if (op.op === "put") { views.set(op.obj.id, op.obj); dirty.add(op.obj.id); }
      else { views.delete(op.id); dirty.add(op.id); }
    }
    window.kinns.deltas += 1;
    if (!framePending) { framePending = true; requestAnimationFrame(drawDirty); }
  });
  es.onopen = () => setLive(true);
  es.onerror = () => setLive(false);
}

function setLive(on) {
  const b = $("#live");
  b.textContent = on ? "live" : "offline";
  b.classList.toggle("off", !on);
}

// ------------------------------------------------------------------ drawing

function drawAll() {
  $("#cluster").textContent = meta.cluster;
  $("#fabric").textContent = `fabric0 ${meta.fabric}  ·  host .1  ·  pod network ${meta.podNetwork}  ·  ` +
    `service network ${meta.serviceNetwork}  ·  overlay ${meta.overlay}  ·  kube-proxy ${meta.proxyMode}`;
  $("#nodes").replaceChildren();
  podEls.clear();
  nodeEls.clear();
  for (const n of byKind("node")) drawNode(n);
  for (const p of byKind("pod")) drawPod(p.id);
  drawLists();
  drawSummary();
  applyFilter();
}

function drawDirty() {
  framePending = false;
  let lists = false;
  for (const id of dirty) {
    const kind = id.split("/")[0];
    if (kind === "node") { const v = views.get(id); if (v) drawNode(v); else removeNode(id.slice(5)); }
    else if (kind === "pod") drawPod(id);
    else lists = true;
  }
  dirty.clear();
  if (lists) drawLists();
  drawSummary();
  if ($("#filter").value.trim()) applyFilter();   // an empty filter hides nothing: skip the walk
  if (lastTrace) drawTrace(lastTrace);
}

function nodeBox(name) {
  let n = nodeEls.get(name);
  if (!n) {
    const head = h("h3"), net = h("div", { class: "net" }), pods = h("div", { class: "pods" });
    const box = h("div", { class: "node", data: { id: `node/${name}`, name } }, head, net, pods);
    n = { box, head, net, pods };
    nodeEls.set(name, n);
    head.textContent = name;
    $("#nodes").append(box);
  }
  return n;
}

function drawNode(v) {
  const n = nodeBox(v.name);
  n.head.textContent = `${v.name}  (${v.role}${v.ready ? "" : ", NotReady"})`;
  n.box.classList.toggle("notready", !v.ready);
  const overlay = meta.overlay === "vxlan" ? "flannel.1 VXLAN" : "host-gw routes";
  n.net.textContent = `eth0 ${v.ip || "?"}  ·  ${v.bridge} ${v.gateway || "?"}  ·  pods ${v.podCIDR || "none yet"}  ·  ${overlay}`;
}

function removeNode(name) {
  const n = nodeEls.get(name);
  if (n && n.pods.children.length === 0) { n.box.remove(); nodeEls.delete(name); }
}

function drawPod(id) {
  const v = views.get(id);
  let e = podEls.get(id);
  if (!v) {
    if (e) { e.remove(); podEls.delete(id); }
    removeNode(UNSCHEDULED);
    return;
  }
  if (!e) {
    e = h("div", { data: { id, name: v.name, ns: v.ns }, onclick: () => showPod(id) });
    podEls.set(id, e);
  }
  const bad = /Err|BackOff|Failed|Error|OOM/.test(v.state);
  e.className = "pod" + (v.ready ? "" : " notready") + (bad ? " failed" : "") + (v.hostNetwork ? " hostnet" : "");
  e.replaceChildren(v.ns === "default" ? v.name : `${v.ns}/${v.name}`, " ", h("span", { class: "ip" }, v.ip || "—"));
  e.title = `${v.ns}/${v.name} on ${v.node || "no node yet"}: ${v.state}${v.hostNetwork ? " (hostNetwork)" : ""}`;
  const target = nodeBox(v.node || UNSCHEDULED).pods;
  if (e.parentNode !== target) {
    const from = e.parentNode;
    target.append(e);
    if (from && from.parentNode.dataset.name === UNSCHEDULED) removeNode(UNSCHEDULED);
  }
}

// Service key "ns/name" -> its endpoints, summed over its EndpointSlices.
function endpointsByService() {
  const out = new Map();
  for (const v of views.values()) {
    if (v.kind === "eps") out.set(v.service, (out.get(v.service) || []).concat(v.endpoints));
  }
  return out;
}

function endpointsOf(svc, index) {
  return (index || endpointsByService()).get(`${svc.ns}/${svc.name}`) || [];
}

function portText(p) {
  const target = p.targetPort !== p.port ? `→${p.targetPort}` : "";
  return `${p.port}${target}/${p.protocol}${p.nodePort ? ` node:${p.nodePort}` : ""}`;
}

function drawLists() {
  const svcs = byKind("svc");
  const index = endpointsByService();
  $("#svc-count").textContent = `(${svcs.length})`;
  $("#services").replaceChildren(...svcs.map((s) => {
    const eps = endpointsOf(s, index);
    const ready = eps.filter((e) => e.ready).length;
    const addrs = [s.clusterIP, ...s.loadBalancer.map((a) => `LB ${a}`), ...s.externalIPs.map((a) => `ext ${a}`)];
    return h("li", { data: { id: s.id, name: s.name, ns: s.ns }, onclick: () => showService(s.id) },
      h("strong", {}, s.ns === "default" ? s.name : `${s.ns}/${s.name}`), " ", h("span", { class: "type" }, s.type),
      h("div", { class: "addr" }, `${addrs.join("  ")}  ${s.ports.map(portText).join(", ")}`),
      h("div", { class: "addr" }, `${ready}/${eps.length} endpoints ready` +
        (eps.length ? `: ${eps.slice(0, 4).map((e) => e.pod || e.ip).join(", ")}${eps.length > 4 ? ", …" : ""}` : "")));
  }));
  const ings = byKind("ing");
  $("#ing-count").textContent = `(${ings.length})`;
  $("#ingresses").replaceChildren(...ings.map((i) => h("li", { data: { id: i.id } },
    h("strong", {}, `${i.ns}/${i.name}`), " ", h("span", { class: "type" }, i.class || "no class"),
    h("div", { class: "addr" }, i.address.join(" ") || "no address yet"),
    ...i.rules.map((r) => h("div", { class: "addr" }, `${r.host}${r.path} → ${r.backend}`)))));
  const pols = byKind("netpol");
  $("#netpol-count").textContent = `(${pols.length})`;
  $("#netpols").replaceChildren(...pols.map((p) => h("li", { data: { id: p.id } },
    h("strong", {}, `${p.ns}/${p.name}`), " ", h("span", { class: "type" }, p.types.join("+")),
    h("div", { class: "addr" }, `pods: ${p.podSelector}  ·  ${p.ingressRules} ingress, ${p.egressRules} egress rules`))));
}

function drawSummary() {
  const n = { node: 0, pod: 0, svc: 0 };
  for (const v of views.values()) if (v.kind in n) n[v.kind] += 1;
  $("#summary").textContent = `${n.node} nodes · ${n.pod} pods · ${n.svc} Services · ` +
    `proxy ${meta.proxyMode} · overlay ${meta.overlay}`;
  // Past a few hundred pods, names no longer fit on a screen: pods become small squares
  // (name and IP in their tooltip) unless a filter narrows them down.
  $("#nodes").classList.toggle("compact", n.pod > COMPACT_ABOVE && !$("#filter").value.trim());
}

function applyFilter() {
  const q = $("#filter").value.trim().toLowerCase();
  const match = (e, extra) => !q || e.dataset.id.toLowerCase().includes(q) || (extra || "").includes(q);
  for (const [id, e] of podEls) e.classList.toggle("hidden", !match(e, (views.get(id) || {}).ip || ""));
  for (const e of document.querySelectorAll("aside li")) e.classList.toggle("hidden", !match(e, e.textContent));
}

// ------------------------------------------------------------------ details on click

function showDetail(title, ...parts) {
  $("#detail-body").replaceChildren(h("h3", {}, title), ...parts.filter((x) => x));
  $("#detail").hidden = false;
}

function pre(text) { return h("pre", {}, text); }

async function getJSON(url, init) {
  const r = await fetch(url, init);
  const text = await r.text();
  try { return JSON.parse(text); } catch { return { error: text || `HTTP ${r.status}` }; }
}

async function showService(id) {
  const s = views.get(id);
  if (!s) return;
  showDetail(`Service ${s.ns}/${s.name}`, h("p", { class: "muted" }, "reading each node's rules…"));
  $("#detail").dataset.for = id;
  const d = await getJSON(`/api/services/${s.ns}/${s.name}/rules`);
  if ($("#detail").dataset.for !== id) return;
  const eps = endpointsOf(s);
  const parts = [
    h("div", { class: "addr" }, [s.type, s.clusterIP, ...s.loadBalancer.map((a) => `LB ${a}`),
      ...s.externalIPs.map((a) => `ext ${a}`), s.ports.map(portText).join(", ")].filter((x) => x).join("  ")),
    h("div", { class: "addr" }, `endpoints: ${eps.map((e) => `${e.pod || "?"} ${e.ip}${e.ready ? "" : " (not ready)"}`).join(", ") || "none"}`),
  ];
  if (d.error) parts.push(h("p", { class: "error" }, d.error));
  for (const n of d.nodes || []) {
    parts.push(h("h4", {}, `${n.node}: ${d.command}`));
    parts.push(n.error ? h("p", { class: "error" }, n.error) : pre(n.rules || "(no rules for this Service)"));
  }
  showDetail(`Service ${s.ns}/${s.name} (kube-proxy ${d.proxyMode || meta.proxyMode})`, ...parts);
}

async function showPod(id) {
  const p = views.get(id);
  if (!p) return;
  showDetail(`Pod ${p.ns}/${p.name}`, h("p", { class: "muted" }, "entering the pod's namespaces…"));
  $("#detail").dataset.for = id;
  const d = await getJSON(`/api/pods/${p.ns}/${p.name}`);
  if ($("#detail").dataset.for !== id) return;
  const parts = [
    h("div", { class: "addr" }, `${p.state} on ${p.node || "no node"}, IP ${p.ip || "none"}${p.hostNetwork ? " (hostNetwork: the node's interfaces)" : ""}`),
    h("button", { onclick: () => { $("#trace-ns").value = p.ns; $("#trace-src").value = `pod/${p.name}`; $("#trace-dst").focus(); } },
      "trace from here"),
  ];
  if (d.error) parts.push(h("p", { class: "error" }, d.error));
  parts.push(h("h4", {}, "interfaces (ip addr)"), h("div", { class: "interfaces" }, pre(d.interfaces || "")));
  parts.push(h("h4", {}, "routes (ip route)"), pre(d.routes || ""));
  parts.push(h("h4", {}, "recent events"), pre((d.events || []).map((e) =>
    `${e.time || ""}  ${e.type}  ${e.reason}  ${e.from || ""}  ${e.message}${e.count > 1 ? ` (x${e.count})` : ""}`).join("\n") || "(none)"));
  showDetail(`Pod ${p.ns}/${p.name}`, ...parts);
}

// ------------------------------------------------------------------ trace

async function runTrace(ev) {
  ev.preventDefault();
  const source = $("#trace-src").value.trim(), dest = $("#trace-dst").value.trim();
  const namespace = $("#trace-ns").value.trim() || "default";
  lastTrace = null;
  clearTrace();
  showDetail(`trace ${source} → ${dest}`, h("p", { class: "muted" }, "sending a probe…"));
  $("#detail").dataset.for = "trace";
  const t = await getJSON("/api/trace", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ source, dest, namespace }) });
  if (t.error) { showDetail(`trace ${source} → ${dest}`, h("p", { class: "error" }, t.error)); return; }
  t.namespace = namespace;
  lastTrace = t;
  const ep = t.endpoint;
  const parts = [
    h("div", {}, t.ok ? "answered" : "no answer", " · endpoint ",
      h("strong", { id: "trace-endpoint" }, ep ? (ep.pod || ep.ip) : "none"),
      ep ? ` ${ep.namespace ? ep.namespace + "/" : ""}${ep.ip}:${ep.port}` : ""),
    t.resolved ? h("div", { class: "addr" }, `${t.resolved.name} → ${t.resolved.address}`) : null,
    h("ol", { class: "hops" }, ...t.hops.map((x) => h("li", { data: { step: x.step } },
      h("strong", {}, x.step), ` ${x.node ? "[" + x.node + "] " : ""}${x.summary}`))),
    t.stopped ? h("p", { class: "stopped" }, `stopped at ${t.stopped.step}: ${t.stopped.reason}` +
      (t.stopped.policy ? ` (policy ${t.stopped.policy})` : "") + (t.stopped.rule ? ` rule: ${t.stopped.rule}` : "")) : null,
    h("div", { class: "addr" }, t.command),
  ];
  showDetail(`trace ${t.source} → ${t.dest} (${t.protocol})`, ...parts);
  drawTrace(t);
}

function podElByName(name, ns) {
  const hits = [...podEls.values()].filter((e) => e.dataset.name === name);
  return hits.find((e) => e.dataset.ns === (ns || "default")) || hits[0] || null;
}

function elementOf(ref, ns) {
  const [kind, ...rest] = ref.replace(/:\d+$/, "").split("/");
  if (kind === "pod") return podElByName(rest[rest.length - 1], ns);
  if (kind === "node") return (nodeEls.get(rest[0]) || {}).box || null;
  if (kind === "host") return $("#fabric");
  return null;
}

function clearTrace() {
  for (const e of document.querySelectorAll(".on-path")) e.classList.remove("on-path");
  $("#trace-path").setAttribute("d", "");
}

// The path: source, each node a hop happened on (in order), then the endpoint pod.
function drawTrace(t) {
  clearTrace();
  const chain = [elementOf(t.source, t.namespace)];
  for (const hop of t.hops) {
    if (hop.node && nodeEls.has(hop.node)) chain.push(nodeEls.get(hop.node).box);
  }
  if (t.endpoint && t.endpoint.pod) chain.push(podElByName(t.endpoint.pod, t.endpoint.namespace));
  const path = chain.filter((e, i) => e && e !== chain[i - 1]);
  const svc = /^svc\/(.+?)(:|$)/.exec(t.dest);
  if (svc) { const li = document.querySelector(`aside li[data-name="${CSS.escape(svc[1])}"]`); if (li) li.classList.add("on-path"); }
  const base = $("#diagram").getBoundingClientRect();
  const points = path.map((e) => {
    e.classList.add("on-path");
    const r = e.getBoundingClientRect();
    const big = e.classList.contains("node") || e.id === "fabric";
    return [r.left - base.left + r.width / 2, r.top - base.top + (big ? 14 : r.height / 2)];
  });
  if (points.length > 1) $("#trace-path").setAttribute("d", "M " + points.map((p) => p.join(" ")).join(" L "));
}

// ------------------------------------------------------------------ wiring

$("#filter").addEventListener("input", () => { applyFilter(); drawSummary(); });
$("#trace-form").addEventListener("submit", runTrace);
$("#detail-close").addEventListener("click", () => { $("#detail").hidden = true; lastTrace = null; clearTrace(); });
window.addEventListener("resize", () => { if (lastTrace) drawTrace(lastTrace); });
connect();
