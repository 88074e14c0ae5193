// runyard studio: one page, hash routes, every element built from text (never innerHTML with data).
"use strict";
const main = document.getElementById("main");
const COLORS = ["#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#2c7a7b", "#97266d"];
let cleanup = [];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick" || k === "onchange" || k === "oninput") node[k] = v;
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}
function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
async function api(path, options) {
  // The studio's own header: the server takes changes only from its page (another site cannot add it).
  options = {...(options || {}), headers: {...((options || {}).headers || {}), "X-Runyard-Studio": "1"}};
  const r = await fetch(path, options);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || body.detail || r.statusText);
  return body;
}
const fmtTime = t => t ? new Date(t * 1000).toLocaleString() : "";
function fmtDur(s) {
  if (s == null) return "";
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return Math.floor(s / 60) + " m " + Math.round(s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " m";
}
const fmtVal = v => typeof v === "number" ? (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : +v.toFixed(4)) : (v == null ? "" : String(v));
const status = s => el("span", {class: "status " + s, "data-status": s}, s);
const runLink = (id, name) => el("a", {href: "#/run/" + encodeURIComponent(id)}, name || id);

// -- charts ----------------------------------------------------------------------------------------------------
function lineChart(series) {  // series: [{label, steps, values}]
  const W = 600, H = 220, P = 36;
  const box = svg("svg", {class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none"});
  const pts = series.flatMap(s => s.steps.map((x, i) => [x, s.values[i]])).filter(p => typeof p[1] === "number");
  if (!pts.length) return el("p", {class: "muted"}, "no numeric values");
  let [x0, x1] = [Math.min(...pts.map(p => p[0])), Math.max(...pts.map(p => p[0]))];
  let [y0, y1] = [Math.min(...pts.map(p => p[1])), Math.max(...pts.map(p => p[1]))];
  if (x0 === x1) x1 = x0 + 1;
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const sx = x => P + (x - x0) / (x1 - x0) * (W - 2 * P), sy = y => H - P + (y0 - y) / (y1 - y0) * (H - 2 * P);
  box.append(svg("line", {x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: "#bbb"}));
  box.append(svg("line", {x1: P, y1: P, x2: P, y2: H - P, stroke: "#bbb"}));
  for (const [t, x, y, anchor] of [[fmtVal(y1), 2, P + 4, "start"], [fmtVal(y0), 2, H - P, "start"],
                                   [fmtVal(x0), P, H - 8, "start"], [fmtVal(x1), W - P, H - 8, "end"]]) {
    const text = svg("text", {x, y, "font-size": 11, fill: "#667", "text-anchor": anchor});
    text.textContent = t;
    box.append(text);
  }
  series.forEach((s, k) => {
    const d = s.steps.map((x, i) => typeof s.values[i] === "number" ? `${sx(x).toFixed(1)},${sy(s.values[i]).toFixed(1)}` : null)
      .filter(Boolean).join(" ");
    box.append(svg("polyline", {points: d, fill: "none", stroke: COLORS[k % COLORS.length], "stroke-width": 1.5,
                                "data-series": s.label}));
  });
  const legend = el("div", {class: "legend"}, series.map((s, k) => el("span", {style: "color:" + COLORS[k % COLORS.length]}, "■ " + s.label)));
  return el("div", {}, box, series.length > 1 ? legend : "");
}

function kvTable(obj) {
  const rows = Object.entries(obj || {}).filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, typeof v === "object" ? JSON.stringify(v) : fmtVal(v))));
  return rows.length ? el("table", {}, rows) : el("p", {class: "muted"}, "none");
}

// -- runs table -------------------------------------------------------------------------------------------------
const state = {experiment: "", status: "", search: "", sort: "-created", offset: 0, limit: 50, selected: new Set()};

async function runsPage() {
  const summary = await api("/api/summary");
  document.getElementById("ws").textContent = summary.workspace;
  const expSelect = el("select", {id: "experiment", onchange: e => { state.experiment = e.target.value; state.offset = 0; render(); }},
    el("option", {value: ""}, "all experiments"),
    summary.experiments.map(e => { const o = el("option", {value: e.name}, `${e.name} (${e.runs})`); if (e.name === state.experiment) o.selected = true; return o; }));
  const statusSelect = el("select", {id: "status", onchange: e => { state.status = e.target.value; state.offset = 0; render(); }},
    ["", "Running", "Queued", "Completed", "Failed", "Canceled"].map(s => { const o = el("option", {value: s}, s || "any status"); if (s === state.status) o.selected = true; return o; }));
  let timer;
  const search = el("input", {id: "search", placeholder: "search id or name", value: state.search,
    oninput: e => { clearTimeout(timer); timer = setTimeout(() => { state.search = e.target.value; state.offset = 0; render(); }, 250); }});
  const compare = el("button", {id: "compare", onclick: () => { location.hash = "#/compare/" + [...state.selected].map(encodeURIComponent).join(","); }}, "Compare selected");
  const holder = el("div", {id: "runs"});
  main.replaceChildren(el("div", {class: "toolbar"}, expSelect, statusSelect, search, compare), holder);

  async function render() {
    const q = new URLSearchParams({limit: state.limit, offset: state.offset, sort: state.sort});
    if (state.experiment) q.set("experiment", state.experiment);
    if (state.status) q.set("status", state.status);
    if (state.search) q.set("search", state.search);
    const page = await api("/api/runs?" + q);
    const sortBy = key => () => { state.sort = state.sort === key ? "-" + key : key; state.offset = 0; render(); };
    const params = page.param_keys.slice(0, 6), metrics = page.metric_keys.slice(0, 8);
    const head = el("tr", {}, el("th", {}, ""), el("th", {onclick: sortBy("name")}, "run"), el("th", {}, "experiment"),
      el("th", {onclick: sortBy("status")}, "status"), el("th", {onclick: sortBy("created")}, "created"),
      el("th", {onclick: sortBy("duration")}, "duration"), el("th", {}, "target"),
      params.map(p => el("th", {onclick: sortBy("param:" + p)}, p)),
      metrics.map(m => el("th", {onclick: sortBy("metric:" + m)}, m)));
    const rows = page.runs.map(r => {
      const box = el("input", {type: "checkbox", onchange: e => e.target.checked ? state.selected.add(r.id) : state.selected.delete(r.id)});
      box.checked = state.selected.has(r.id);
      return el("tr", {"data-run": r.id}, el("td", {}, box), el("td", {}, runLink(r.id, r.name)), el("td", {}, r.experiment),
        el("td", {}, status(r.status)), el("td", {}, fmtTime(r.created)), el("td", {}, fmtDur(r.duration)), el("td", {}, r.target || ""),
        params.map(p => el("td", {}, r.params[p] ?? "")), metrics.map(m => el("td", {}, fmtVal(r.metrics[m]))));
    });
    const pager = el("div", {class: "toolbar"},
      el("button", {onclick: () => { state.offset = Math.max(0, state.offset - state.limit); render(); }}, "‹ newer"),
      el("span", {id: "page-info"}, `${page.total ? page.offset + 1 : 0}–${page.offset + page.runs.length} of ${page.total}`),
      el("button", {onclick: () => { if (state.offset + state.limit < page.total) { state.offset += state.limit; render(); } }}, "older ›"));
    holder.replaceChildren(el("table", {id: "runs-table"}, el("thead", {}, head), el("tbody", {}, rows)), pager);
  }
  await render();
  const live = setInterval(() => { if (document.visibilityState === "visible") render().catch(() => {}); }, 5000);
  cleanup.push(() => clearInterval(live));
}

// -- one run ----------------------------------------------------------------------------------------------------
async function runPage(id) {
  const run = await api("/api/runs/" + encodeURIComponent(id));
  const title = el("h2", {}, run.name, " ", status(run.status));
  const cancel = el("button", {id: "cancel", onclick: async () => {
    cancel.disabled = true;
    try { const r = await api(`/api/runs/${encodeURIComponent(id)}/cancel`, {method: "POST"}); title.replaceChildren(run.name, " ", status(r.status)); }
    catch (e) { alert(e.message); cancel.disabled = false; }
  }}, "Cancel run");
  if (run.terminal) cancel.disabled = true;
  const tb = el("button", {id: "tensorboard", onclick: async () => {
    try { const r = await api(`/api/runs/${encodeURIComponent(id)}/tensorboard`, {method: "POST"}); window.open(r.url, "_blank"); }
    catch (e) { alert(e.message); }
  }}, "TensorBoard");
  const timeline = el("div", {class: "timeline", id: "timeline"}, run.timeline.map(t => el("span", {}, `${t.status} ${fmtTime(t.at)}`)));
  const details = el("div", {class: "card"}, el("h3", {}, "Details"), kvTable({
    id: run.id, experiment: run.experiment, target: run.target, script: run.script, arguments: (run.arguments || []).join(" "),
    environment: run.environment, environment_key: run.environment_key, snapshot: run.snapshot, parent: run.parent,
    duration: fmtDur(run.duration), exit_code: run.exit_code}));
  const error = run.error ? el("div", {class: "card", id: "error"}, el("h3", {}, "Error"), el("div", {class: "error"}, run.error.message),
    el("pre", {class: "log"}, (run.error.last_lines || []).join("\n"))) : "";
  const inputs = run.inputs.length ? el("div", {class: "card"}, el("h3", {}, "Input datasets"), el("table", {}, run.inputs.map(i =>
    el("tr", {}, el("td", {}, i.consumptionDetails.inputName), el("td", {}, i.consumptionDetails.mechanism),
       el("td", {}, i.dataset ? `${i.dataset.name || i.dataset.id}${i.dataset.version ? ":" + i.dataset.version : ""}` : `${i.dataReference.datastore}:${i.dataReference.path}`))))) : "";
  const charts = el("div", {class: "cards", id: "charts"});
  const rankSelect = el("select", {id: "rank"}, run.ranks.map(r => el("option", {value: r}, "rank " + r)));
  const log = el("pre", {class: "log", id: "log"});
  const files = el("div", {class: "card", id: "files"}, el("h3", {}, "Files"));
  const children = el("div", {id: "children"});
  main.replaceChildren(title, el("div", {class: "toolbar"}, timeline, cancel, tb), el("div", {class: "cards"}, details, el("div", {class: "card"}, el("h3", {}, "Tags and params"), kvTable({...run.tags, ...run.params})), error, inputs),
    el("h3", {}, "Metrics"), charts, el("h3", {}, "Output"), el("div", {class: "toolbar"}, rankSelect), log, children, files);

  async function drawMetrics() {
    const m = await api(`/api/runs/${encodeURIComponent(id)}/metrics`);
    const cards = Object.entries(m.series).map(([name, s]) => el("div", {class: "card", "data-metric": name},
      el("h3", {}, name, s.reduced ? ` (${s.count} values, drawn from ${s.values.length})` : ""), lineChart([{label: name, ...s}])));
    for (const [name, rows] of Object.entries(m.tables)) {
      const flat = rows.flatMap(r => Array.isArray(r) ? r : [r]);
      const keys = [...new Set(flat.flatMap(r => (r && typeof r === "object") ? Object.keys(r) : ["value"]))];
      cards.push(el("div", {class: "card"}, el("h3", {}, name), el("table", {}, el("tr", {}, keys.map(k => el("th", {}, k))),
        flat.slice(0, 200).map(r => el("tr", {}, keys.map(k => el("td", {}, fmtVal(r && typeof r === "object" ? (typeof r[k] === "object" ? JSON.stringify(r[k]) : r[k]) : r))))))));
    }
    for (const img of m.images) cards.push(el("div", {class: "card"}, el("h3", {}, img.name),
      el("img", {class: "logged", src: `/api/runs/${encodeURIComponent(id)}/file?path=${encodeURIComponent(img.path)}`, alt: img.name})));
    charts.replaceChildren(...(cards.length ? cards : [el("p", {class: "muted"}, "no metrics logged")]));
  }
  await drawMetrics();

  let source;
  function follow() {
    if (source) source.close();
    log.textContent = "";
    source = new EventSource(`/api/runs/${encodeURIComponent(id)}/logs?rank=${rankSelect.value}`);
    source.addEventListener("log", e => {
      const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.append(document.createTextNode(JSON.parse(e.data)));
      if (stick) log.scrollTop = log.scrollHeight;
    });
    source.addEventListener("end", async e => {
      source.close();
      const st = JSON.parse(e.data);
      title.replaceChildren(run.name, " ", status(st));
      cancel.disabled = true;
      api("/api/runs/" + encodeURIComponent(id)).then(r => timeline.replaceChildren(
        ...r.timeline.map(t => el("span", {}, `${t.status} ${fmtTime(t.at)}`)))).catch(() => {});
      drawMetrics().catch(() => {});
      showFiles().catch(() => {});
    });
  }
  rankSelect.onchange = follow;
  follow();
  cleanup.push(() => source && source.close());
  if (!run.terminal) {
    const t = setInterval(() => drawMetrics().catch(() => {}), 3000);
    cleanup.push(() => clearInterval(t));
  }

  async function showFiles() {
    const f = await api(`/api/runs/${encodeURIComponent(id)}/files`);
    files.replaceChildren(el("h3", {}, "Files"), el("table", {}, f.files.map(x => el("tr", {},
      el("td", {}, el("a", {href: `/api/runs/${encodeURIComponent(id)}/file?path=${encodeURIComponent(x.path)}`}, x.path)),
      el("td", {}, x.size.toLocaleString() + " B")))));
  }
  await showFiles();
  if (run.children) {
    const page = await api(`/api/runs?parent=${encodeURIComponent(id)}&limit=200` + (run.primary_metric ? `&sort=${run.primary_metric.goal === "maximize" ? "-" : ""}metric:${encodeURIComponent(run.primary_metric.name)}` : ""));
    const pm = run.primary_metric && run.primary_metric.name;
    const rows = page.runs.map(r => el("tr", {}, el("td", {}, runLink(r.id, r.name)), el("td", {}, status(r.status)),
      el("td", {}, Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join(" ")), el("td", {}, pm ? fmtVal(r.metrics[pm]) : "")));
    children.replaceChildren(el("h3", {}, `Child runs (${page.total})` + (pm ? ` by ${pm}` : "")),
      el("table", {id: "children-table"}, el("tr", {}, el("th", {}, "run"), el("th", {}, "status"), el("th", {}, "parameters"), el("th", {}, pm || "")), rows));
    if (pm) {
      const cmp = await api("/api/compare?ids=" + page.runs.slice(0, 8).map(r => encodeURIComponent(r.id)).join(","));
      children.append(lineChart(cmp.runs.filter(r => r.series[pm]).map(r => ({label: r.name, ...r.series[pm]}))));
    }
  }
}

async function comparePage(ids) {
  const data = await api("/api/compare?ids=" + ids);
  const names = [...new Set(data.runs.flatMap(r => Object.keys(r.series)))];
  const params = [...new Set(data.runs.flatMap(r => Object.keys(r.params)))];
  main.replaceChildren(el("h2", {}, `Comparing ${data.runs.length} runs`),
    el("table", {id: "compare-params"}, el("tr", {}, el("th", {}, "param"), data.runs.map(r => el("th", {}, runLink(r.id, r.name)))),
      params.map(p => el("tr", {}, el("td", {}, p), data.runs.map(r => el("td", {}, r.params[p] ?? ""))))),
    el("div", {class: "cards"}, names.map(n => el("div", {class: "card", "data-metric": n}, el("h3", {}, n),
      lineChart(data.runs.filter(r => r.series[n]).map(r => ({label: r.name, ...r.series[n]})))))));
}

async function listPage(path, key, columns) {
  const data = await api(path);
  const rows = data[key] || [];
  main.replaceChildren(el("h2", {}, key[0].toUpperCase() + key.slice(1)), rows.length ? el("table", {id: key + "-table"},
    el("tr", {}, columns.map(c => el("th", {}, c[0]))),
    rows.map(r => el("tr", {}, columns.map(c => el("td", {}, c[1](r)))))) : el("p", {class: "muted"}, "none yet"));
}

async function route() {
  cleanup.forEach(f => f()); cleanup = [];
  const hash = location.hash || "#/";
  try {
    if (hash.startsWith("#/run/")) return await runPage(decodeURIComponent(hash.slice(6)));
    if (hash.startsWith("#/compare/")) return await comparePage(hash.slice(10));
    if (hash === "#/models") return await listPage("/api/models", "models", [["model", m => m.name], ["version", m => m.version],
      ["framework", m => [m.framework, m.framework_version].filter(Boolean).join(" ")], ["aliases", m => m.aliases.join(", ")],
      ["run", m => m.run ? runLink(m.run) : ""], ["datasets", m => Object.values(m.datasets).flat().join(", ")], ["registered", m => fmtTime(m.created)]]);
    if (hash === "#/services") {
      const logs = el("pre", {class: "log", id: "service-log"});
      await listPage("/api/services", "services", [["service", s => s.name], ["state", s => status(s.state)],
        ["scoring URI", s => s.scoring_uri], ["models", s => s.models.join(", ")],
        ["logs", s => el("button", {onclick: async () => { logs.textContent = (await api(`/api/services/${encodeURIComponent(s.name)}/logs`)).logs; }}, "show")]]);
      return main.append(logs);
    }
    if (hash === "#/datasets") return await listPage("/api/datasets", "datasets", [["dataset", d => d.name], ["version", d => d.version],
      ["type", d => d.type], ["files", d => d.files], ["bytes", d => d.bytes.toLocaleString()], ["consumed by", d => d.runs.map(r => runLink(r))]]);
    if (hash === "#/compute") return await listPage("/api/compute", "compute", [["target", c => c.name], ["type", c => c.type],
      ["state", c => c.status.provisioningState || c.status.error || ""], ["nodes", c => c.status.currentNodeCount ?? ""], ["queued", c => c.queued ?? ""]]);
    if (hash === "#/environments") {
      const data = await api("/api/environments");
      return main.replaceChildren(el("h2", {}, "Environments"), el("table", {}, data.registered.map(e => el("tr", {}, el("td", {}, e.name), el("td", {}, e.version), el("td", {}, fmtTime(e.created))))),
        el("h3", {}, "Built (cache: " + data.cache.path + ")"), el("table", {}, data.cache.environments.map(k => el("tr", {}, el("td", {}, k)))));
    }
    return await runsPage();
  } catch (e) {
    main.replaceChildren(el("p", {class: "error"}, e.message));
  }
}
window.addEventListener("hashchange", route);
route();
