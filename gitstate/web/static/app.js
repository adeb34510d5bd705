// gitstate web view: one page, five views, over the JSON API under /api/ (docs/web.md).
// Hand-written, no build step, nothing fetched from anywhere but this server.
"use strict";

const main = document.getElementById("main");
const SVG = "http://www.w3.org/2000/svg";
const STATUSES = ["created", "running", "waiting", "paused", "completed", "failed", "stopped", "stopping"];

// -- small helpers ---------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const enc = encodeURIComponent;
const short = (sha) => (sha || "").slice(0, 7);
const when = (iso) => iso ? iso.replace("T", " ").replace(/(\.\d+)?(\+00:00|Z)$/, "") : "";
const bytes = (n) => n < 1000 ? `${n} B` : n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(1)} MB`;
const status = (s) => s ? h("span", {class: `status status-${s}`}, s) : "";
const names = (list) => (list || []).map((n) => h("span", {class: "name"}, n));
const agentLink = (id) => h("a", {href: `/agent/${enc(id)}`}, id);
const checkpointLink = (agent, commit, text) =>
  h("a", {href: `/checkpoint/${enc(agent)}/${enc(commit)}`, class: "mono"}, text || short(commit));

async function api(path) {
  const response = await fetch(path, {headers: {Accept: "application/json"}});
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function show(...children) {
  main.replaceChildren(...children.flat());
}

function fail(error) {
  show(h("p", {class: "error", id: "error"}, error.message || String(error)));
}

// A path in the syntax of `gitstate log --field` and `show --field`.
function childPath(path, key) {
  if (typeof key === "number") return `${path}[${key}]`;
  if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return path ? `${path}.${key}` : key;
  return `${path}[${JSON.stringify(key)}]`;
}

// -- agents ----------------------------------------------------------------------------
async function agentsPage(params) {
  const q = params.get("q") || "", state = params.get("status") || "";
  const offset = Number(params.get("offset") || 0), limit = 50;
  const data = await api(`/api/agents?q=${enc(q)}&status=${enc(state)}&offset=${offset}&limit=${limit}`);
  const go = (changes) => {
    const next = new URLSearchParams({q, status: state, offset: 0, ...changes});
    for (const [k, v] of [...next]) if (!v || v === "0") next.delete(k);
    navigate(`/agents${next.toString() ? "?" + next : ""}`);
  };
  let timer = null;
  const filter = h("input", {id: "filter", type: "search", placeholder: "filter by id", value: q,
    oninput: (e) => { clearTimeout(timer); timer = setTimeout(() => go({q: e.target.value}), 250); }});
  const select = h("select", {id: "status-filter", onchange: (e) => go({status: e.target.value})},
    h("option", {value: ""}, "any status"),
    STATUSES.map((s) => h("option", {value: s, selected: s === state}, s)));
  const rows = data.agents.map((a) => h("tr", {"data-agent": a.agent_id},
    h("td", {}, agentLink(a.agent_id)),
    h("td", {class: "count"}, a.count),
    h("td", {}, a.head.iteration ?? ""),
    h("td", {}, status(a.head.status)),
    h("td", {class: "mono"}, when(a.head.created)),
    h("td", {}, names(a.names)),
    h("td", {}, sparkline(a.sizes), " ", h("span", {class: "muted"}, bytes(a.sizes[a.sizes.length - 1] || 0)))));
  const last = Math.min(offset + limit, data.total);
  show(h("h1", {}, "Agents"),
    h("div", {class: "toolbar"}, filter, select,
      h("span", {class: "muted", id: "agent-total"}, data.total ? `${offset + 1}–${last} of ${data.total}` : "no agents"),
      h("button", {id: "prev", disabled: offset === 0, onclick: () => go({offset: Math.max(0, offset - limit)})}, "‹ newer"),
      h("button", {id: "next", disabled: last >= data.total, onclick: () => go({offset: offset + limit})}, "older ›")),
    h("table", {id: "agents"},
      h("thead", {}, h("tr", {}, ["agent", "checkpoints", "iteration", "status", "last saved (UTC)", "names",
                                  "state size"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)));
  if (q) { const input = document.getElementById("filter"); input.focus(); input.setSelectionRange(q.length, q.length); }
}

function sparkline(values) {
  const width = 90, height = 18;
  if (!values.length) return "";
  const max = Math.max(...values), min = Math.min(...values), span = max - min || 1;
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v - min) / span * (height - 2)).toFixed(1)}`);
  return h("svg:svg", {class: "spark", width, height, viewBox: `0 0 ${width} ${height}`},
    h("svg:polyline", {points: points.join(" ")}));
}

// -- an agent's timeline ----------------------------------------------------------------
const BUILT_IN = {iteration: (p) => p.iteration, size: (p) => p.size};

async function timelinePage(agent, params) {
  const extra = params.getAll("path");
  const metric = params.get("metric") || "iteration";
  const query = extra.map((p) => `path=${enc(p)}`).join("&");
  const data = await api(`/api/agents/${enc(agent)}/timeline${query ? "?" + query : ""}`);
  const metrics = ["iteration", "size", ...data.paths];
  const value = BUILT_IN[metric] || ((p) => p.values[metric]);
  const go = (changes) => {
    const next = new URLSearchParams();
    for (const p of changes.paths || extra) next.append("path", p);
    next.set("metric", changes.metric || metric);
    navigate(`/agent/${enc(agent)}?${next}`);
  };
  const choose = h("select", {id: "metric", onchange: (e) => go({metric: e.target.value})},
    metrics.map((m) => h("option", {value: m, selected: m === metric}, m === "messages" ? "messages (count)" : m)));
  const custom = h("input", {id: "path", placeholder: "any numeric field, e.g. task_context.budget"});
  const add = h("form", {onsubmit: (e) => { e.preventDefault(); const p = custom.value.trim();
    if (p) go({paths: [...extra, p], metric: p}); }}, custom, " ", h("button", {type: "submit"}, "plot"));
  const head = data.points[data.points.length - 1];
  const info = h("div", {class: "hoverinfo muted", id: "hoverinfo"}, "Hover a point to see its checkpoint; click it to open it.");
  show(h("h1", {}, "Agent ", h("span", {class: "mono"}, agent)),
    h("p", {}, `${data.points.length} checkpoints; latest `, head ? checkpointLink(agent, head.commit) : "", " ",
      head ? status(head.status) : "", " ", h("a", {href: `/diff?agent=${enc(agent)}`}, "diff of the last two")),
    h("div", {class: "toolbar"}, h("label", {}, "plot ", choose), add),
    plot(agent, data.points, value, metric, info), info,
    legend());
}

function legend() {
  return h("p", {class: "muted"}, "Markers: ", h("span", {class: "name"}, "name"), " named checkpoint · ",
    "purple: rollback · green: fork (first checkpoint of a fork) · dashed line: status change");
}

function plot(agent, points, value, metric, info) {
  const width = 1100, height = 320, left = 60, right = 90, top = 26, bottom = 30;
  const values = points.map(value);
  const known = values.filter((v) => typeof v === "number");
  const min = known.length ? Math.min(...known) : 0, max = known.length ? Math.max(...known) : 1;
  const span = max - min || 1;
  const x = (i) => left + (points.length > 1 ? i * (width - left - right) / (points.length - 1) : (width - left - right) / 2);
  const y = (v) => top + (height - top - bottom) * (1 - (v - min) / span);
  const svg = h("svg:svg", {class: "plot", id: "timeline", width, height, viewBox: `0 0 ${width} ${height}`,
    "data-metric": metric, "data-points": known.length});
  svg.append(h("svg:line", {class: "axis", x1: left, y1: height - bottom, x2: width - right, y2: height - bottom}),
    h("svg:line", {class: "axis", x1: left, y1: top, x2: left, y2: height - bottom}),
    h("svg:text", {x: 4, y: y(max) + 4}, fmt(max)), h("svg:text", {x: 4, y: y(min) + 4}, fmt(min)),
    h("svg:text", {x: left, y: height - 8}, when(points[0]?.created)),
    h("svg:text", {x: width - right - 90, y: height - 8}, when(points[points.length - 1]?.created)));
  let previous = null;
  points.forEach((p, i) => {
    if (previous !== null && p.status !== previous) {
      svg.append(h("svg:line", {class: "status-change", x1: x(i), y1: top, x2: x(i), y2: height - bottom}),
        h("svg:text", {x: x(i) + 3, y: top - 4}, p.status || ""));
    }
    previous = p.status;
  });
  svg.append(h("svg:polyline", {class: "line",
    points: points.map((p, i) => typeof values[i] === "number" ? `${x(i).toFixed(1)},${y(values[i]).toFixed(1)}` : "").join(" ")}));
  points.forEach((p, i) => {
    const v = values[i];
    if (typeof v !== "number") return;
    const kind = p.rollback_of ? " rollback" : p.forked_from_agent ? " fork" : "";
    const label = `${short(p.commit)} · ${metric} ${fmt(v)} · iteration ${p.iteration ?? "–"} · ${p.status || ""} · ` +
      `${when(p.created)}${p.names.length ? " · " + p.names.join(", ") : ""}${p.rollback_of ? " · rollback" : ""}`;
    const dot = h("svg:circle", {class: "pt" + kind, cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: points.length > 400 ? 2.5 : 4,
      "data-commit": p.commit, "data-value": v, "data-index": i,
      onmouseenter: () => { info.textContent = label; info.classList.remove("muted"); },
      onclick: () => navigate(`/checkpoint/${enc(agent)}/${p.commit}`)}, h("svg:title", {}, label));
    svg.append(dot);
    if (p.names.length) svg.append(h("svg:text", {class: "name-label", x: x(i) - 4, y: y(v) - 8}, p.names.join(", ")));
  });
  return svg;
}

function fmt(v) {
  return Number.isInteger(v) ? String(v) : Number(v).toPrecision(4);
}

// -- a checkpoint ------------------------------------------------------------------------
async function checkpointPage(agent, rev) {
  const data = await api(`/api/agents/${enc(agent)}/checkpoints/${enc(rev)}`);
  const c = data.checkpoint;
  const jump = h("form", {onsubmit: (e) => { e.preventDefault(); navigate(`/checkpoint/${enc(agent)}/${enc(revInput.value.trim())}`); }});
  const revInput = h("input", {id: "rev", value: rev, placeholder: "latest~3, a name, an id or a SHA"});
  jump.append("Revision ", revInput, " ", h("button", {type: "submit"}, "open"));
  const meta = h("dl", {class: "meta", id: "meta"});
  for (const [k, v] of [["agent", agentLink(c.agent_id)], ["commit", h("span", {class: "mono", id: "commit"}, c.commit)],
    ["checkpoint id", h("span", {class: "mono"}, c.checkpoint_id)], ["iteration", c.iteration ?? "–"],
    ["status", status(c.status)], ["saved (UTC)", when(c.created)], ["names", names(c.names)],
    ["message", c.message], ["state size", data.size === null ? "–" : bytes(data.size)]]) {
    meta.append(h("dt", {}, k), h("dd", {}, v));
  }
  const trailers = h("table", {id: "trailers"}, h("tbody", {},
    Object.entries(c.trailers).map(([k, v]) => h("tr", {}, h("td", {class: "mono"}, k), h("td", {class: "mono"}, v)))));
  const links = h("p", {class: "toolbar"},
    data.parent ? h("a", {id: "parent", href: `/checkpoint/${enc(agent)}/${data.parent}`}, "← parent") : h("span", {class: "muted"}, "no parent"),
    data.child ? h("a", {id: "child", href: `/checkpoint/${enc(agent)}/${data.child}`}, "child →") : h("span", {class: "muted"}, "latest"),
    data.parent ? h("a", {href: `/diff?agent=${enc(agent)}&b=${c.commit}`}, "diff with parent") : "",
    h("a", {id: "download", href: `/api/agents/${enc(agent)}/checkpoints/${c.commit}/state.json`, download: `${agent}-${short(c.commit)}-state.json`}, "download state.json"),
    agentLink(agent));
  show(h("h1", {}, "Checkpoint ", h("span", {class: "mono"}, short(c.commit)), " of ", h("span", {class: "mono"}, agent)),
    jump, links, meta, h("h2", {}, "Trailers"), trailers, h("h2", {}, "State"),
    h("p", {class: "muted"}, "Click “copy path” to copy a field's path (for gitstate log --field and show --field)."),
    h("div", {class: "tree", id: "tree"}, tree(data.state, "", null, true)));
}

function tree(value, path, key, open) {
  const label = key === null ? "state" : key;
  const copy = h("button", {class: "copy", title: path || "$", "data-path": path, onclick: (e) => {
    e.preventDefault(); e.stopPropagation(); copyText(path || "$"); }}, "copy path");
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    const kind = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
    const details = h("details", {"data-path": path}, h("summary", {}, h("span", {class: "key"}, label), " ",
      h("span", {class: "muted"}, kind), copy));
    let filled = false;
    const fill = () => { if (!filled) { filled = true; for (const [k, v] of entries) details.append(tree(v, childPath(path, k), k, false)); } };
    details.addEventListener("toggle", fill);
    if (open) { details.open = true; fill(); }
    return details;
  }
  const cls = typeof value === "string" ? "str" : typeof value === "number" ? "num" : "lit";
  return h("div", {class: "leaf", "data-path": path}, h("span", {class: "key"}, label), ": ",
    h("span", {class: cls}, JSON.stringify(value)), copy);
}

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text);
  else window.prompt("Copy the path:", text);
}

// -- a diff ------------------------------------------------------------------------------
async function diffPage(params) {
  const agent = params.get("agent") || "", a = params.get("a") || "", b = params.get("b") || "";
  const other = params.get("other") || "";
  const input = (name, value, placeholder) => h("input", {name, value, placeholder, id: `diff-${name}`});
  const form = h("form", {class: "toolbar", method: "get", action: "/diff"},
    "agent ", input("agent", agent, "agent id"), " from ", input("a", a, "REV (default: before b)"),
    " to ", input("b", b, "REV (default: latest)"), " of ", input("other", other, "other agent (optional)"),
    h("button", {type: "submit"}, "diff"));
  if (!agent) { show(h("h1", {}, "Diff"), form, h("p", {class: "muted"}, "Name an agent and two revisions.")); return; }
  const query = new URLSearchParams({agent, a, b, other});
  const data = await api(`/api/diff?${query}`);
  const rows = data.paths.map((p) => h("tr", {class: `op-${p.op}`, "data-path": p.path},
    h("td", {}, p.op), h("td", {class: "mono"}, p.path),
    h("td", {}, p.op === "add" ? "" : h("pre", {}, clip(p.old))), h("td", {}, p.op === "remove" ? "" : h("pre", {}, clip(p.new)))));
  show(h("h1", {}, "Diff"), form,
    h("p", {}, checkpointLink(data.old.agent_id, data.old.commit), ` (${data.old.agent_id}) → `,
      checkpointLink(data.new.agent_id, data.new.commit), ` (${data.new.agent_id}) · ${bytes(data.sizes[0])} → ${bytes(data.sizes[1])}`),
    h("p", {id: "summary"}, h("strong", {}, data.summary)),
    h("p", {}, h("a", {id: "patch", href: `/api/diff/patch.json?${query}`, download: "patch.json"}, "download the JSON Patch"),
      h("span", {class: "muted"}, ` (${data.patch.length} operations, RFC 6902)`)),
    h("table", {id: "changes"}, h("thead", {}, h("tr", {}, ["op", "path", "old", "new"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)));
}

function clip(value) {
  const text = JSON.stringify(value, null, 2) ?? "";
  return text.length > 4000 ? text.slice(0, 4000) + " …" : text;
}

// -- the fork graph --------------------------------------------------------------------------
async function graphPage() {
  const data = await api("/api/graph");
  const known = new Set(data.agents.map((a) => a.agent_id));
  const children = new Map();
  const roots = [];
  for (const a of data.agents) {
    if (a.from_agent && known.has(a.from_agent) && a.from_agent !== a.agent_id) {
      if (!children.has(a.from_agent)) children.set(a.from_agent, []);
      children.get(a.from_agent).push(a);
    } else roots.push(a);
  }
  const rows = [];
  const visit = (a, depth) => { rows.push([a, depth]); for (const c of children.get(a.agent_id) || []) visit(c, depth + 1); };
  roots.forEach((r) => visit(r, 0));
  const rowHeight = 30, indent = 28, height = rows.length * rowHeight + 10;
  const svg = h("svg:svg", {class: "graph", id: "graph", width: 1100, height, viewBox: `0 0 1100 ${height}`});
  const where = new Map();
  rows.forEach(([a, depth], i) => where.set(a.agent_id, [12 + depth * indent, 18 + i * rowHeight]));
  rows.forEach(([a]) => {
    const [x, y] = where.get(a.agent_id);
    if (a.from_agent && where.has(a.from_agent) && a.from_agent !== a.agent_id) {
      const [px, py] = where.get(a.from_agent);
      svg.append(h("svg:path", {class: "edge", d: `M${px},${py + 6} V${y} H${x - 6}`}));
    }
    const link = h("svg:a", {href: `/agent/${enc(a.agent_id)}`, "data-agent": a.agent_id},
      h("svg:circle", {class: a.from_agent ? "node" : "node root", cx: x, cy: y, r: 6}),
      h("svg:text", {x: x + 12, y: y + 4}, a.agent_id));
    const sub = a.from_agent
      ? `forked from ${a.from_agent} at ${short(a.from_commit)} · head ${short(a.head.commit)} iteration ${a.head.iteration ?? "–"}`
      : `head ${short(a.head.commit)} iteration ${a.head.iteration ?? "–"} ${a.head.status || ""}`;
    svg.append(link, h("svg:text", {class: "sub", x: x + 20 + a.agent_id.length * 7.5, y: y + 4}, sub));
  });
  show(h("h1", {}, "Agents and their forks"),
    h("p", {class: "muted"}, "Each agent under the agent it was forked from (gitstate fork); orange: agents that started on their own."),
    svg);
}

// -- routing ---------------------------------------------------------------------------------
function navigate(url) {
  history.pushState(null, "", url);
  route();
}

async function route() {
  const parts = location.pathname.split("/").slice(1).map(decodeURIComponent);
  const params = new URLSearchParams(location.search);
  document.body.dataset.ready = "no";
  try {
    if (parts[0] === "agent" && parts[1]) await timelinePage(parts[1], params);
    else if (parts[0] === "checkpoint" && parts[1] && parts[2]) await checkpointPage(parts[1], parts.slice(2).join("/"));
    else if (parts[0] === "diff") await diffPage(params);
    else if (parts[0] === "graph") await graphPage();
    else await agentsPage(params);
    document.title = `gitstate · ${parts[0] || "agents"}${parts[1] ? " · " + parts[1] : ""}`;
  } catch (error) {
    fail(error);
  }
  document.body.dataset.ready = "yes";
}

document.addEventListener("click", (e) => {  // links inside the app do not reload the page
  const a = e.target.closest("a");
  if (!a || a.hasAttribute("download") || a.target || e.ctrlKey || e.metaKey || e.shiftKey) return;
  const url = new URL(a.getAttribute("href"), location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", route);
if (location.search.includes("token=")) history.replaceState(null, "", location.pathname);  // the cookie has it now
route();
