// runyard studio: one page, hash routes, every element built from text (never innerHTML with data).
"use strict";
const main = document.getElementById("main");
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

// -- charts: plotly.js from the installed plotly package, loaded by the first page that draws one -------------------
let plotlyLoading = null;
function plotly() {
  if (!plotlyLoading) plotlyLoading = new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = document.querySelector('meta[name="runyard-charts"]').content;
    script.onload = () => resolve(window.Plotly);
    script.onerror = () => { plotlyLoading = null; reject(new Error("the chart library (plotly.js) did not load")); };
    document.head.append(script);
  });
  return plotlyLoading;
}
// plotly reads a few tags in its text (<b>, <br>, <a href>): names are text, so they go in escaped.
const plotText = s => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const num = v => typeof v === "number" && isFinite(v) ? v : null;  // "Infinity", NaN (null): a gap
const MAX_POINTS = 1000;  // the server's reduction; a live chart past twice this reduces what it holds the same way

// How every chart of the page is drawn: x by step, time since the run started or wall time; y linear or log;
// TensorBoard's smoothing (a debiased exponential moving average; the raw line stays, faded).
const view = Object.assign({x: "step", log: false, smoothing: 0},
  JSON.parse(localStorage.getItem("runyard.view") || "{}"));
const charts = new Set();
function chartControls() {
  const save = () => { localStorage.setItem("runyard.view", JSON.stringify(view)); charts.forEach(c => c.draw()); };
  const x = el("select", {id: "x-axis", onchange: e => { view.x = e.target.value; save(); }},
    [["step", "step"], ["relative", "relative time"], ["wall", "wall time"]].map(([v, t]) => {
      const o = el("option", {value: v}, t); if (v === view.x) o.selected = true; return o; }));
  const log = el("input", {type: "checkbox", id: "log-y", onchange: e => { view.log = e.target.checked; save(); }});
  log.checked = view.log;
  const shown = el("span", {id: "smoothing-value"}, view.smoothing.toFixed(2));
  const smoothing = el("input", {type: "range", id: "smoothing", min: 0, max: 0.99, step: 0.01, value: view.smoothing,
    oninput: e => { view.smoothing = +e.target.value; shown.textContent = view.smoothing.toFixed(2); save(); }});
  return el("div", {class: "toolbar chart-controls"}, el("label", {}, "x ", x), el("label", {}, log, " log y"),
    el("label", {}, "smoothing ", smoothing, " ", shown));
}

function smoothed(values, weight, state) {  // state carries the average on for appended values
  return values.map(v => {
    v = num(v);
    if (v === null || weight === 0) return v;
    state.last = state.last * weight + (1 - weight) * v;
    state.n += 1;
    return state.last / (1 - Math.pow(weight, state.n));
  });
}

function reduce(s, points) {  // the lowest and highest value of each of points/2 ranges, as the server reduces
  const size = Math.ceil(s.steps.length / Math.max(1, Math.floor(points / 2)));
  const out = {...s, steps: [], values: [], times: [], reduced: true};
  for (let i = 0; i < s.steps.length; i += size) {
    let lo = i, hi = i;
    for (let j = i; j < Math.min(i + size, s.steps.length); j++) {
      if ((num(s.values[j]) ?? Infinity) < (num(s.values[lo]) ?? Infinity)) lo = j;
      if ((num(s.values[j]) ?? -Infinity) > (num(s.values[hi]) ?? -Infinity)) hi = j;
    }
    for (const k of lo <= hi ? [lo, hi] : [hi, lo]) { out.steps.push(s.steps[k]); out.values.push(s.values[k]); out.times.push(s.times[k]); }
  }
  return out;
}

// lines: [{label, series: {steps, values, times}, start (seconds: "relative time" counts from it), color?, width?,
// dash?}]. Each line is two traces: the values (faded while smoothing) and the smoothed values.
class LineChart {
  constructor(holder, lines, options) {
    this.holder = holder; this.lines = lines; this.options = options || {};
    charts.add(this);
  }
  x(line, s) {
    if (view.x === "step") return s.steps.slice();  // plotly keeps the array: appends go to ours and to its own
    if (view.x === "wall") return s.times.map(t => t * 1000);
    return s.times.map(t => t - (line.start ?? line.series.times[0] ?? t));
  }
  traces() {
    return this.lines.flatMap((line, k) => {
      line.state = {last: 0, n: 0};
      const x = this.x(line, line.series), color = line.color || PALETTE[k % PALETTE.length], name = plotText(line.label);
      const on = view.smoothing > 0, width = line.width || 1.5;
      const hover = `${name}<br>%{x}: %{y:.6g}<extra></extra>`;
      return [
        {type: "scatter", mode: line.series.steps.length === 1 ? "markers" : "lines",
         x, y: line.series.values.map(num), name, legendgroup: String(k), showlegend: !on, opacity: on ? 0.25 : 1,
         line: {color, width, dash: line.dash}, hovertemplate: hover, meta: line.id},
        {type: "scatter", mode: "lines", x, y: smoothed(line.series.values, view.smoothing, line.state), name,
         legendgroup: String(k), showlegend: on, visible: on, line: {color, width}, hovertemplate: hover, meta: line.id},
      ];
    });
  }
  layout() {
    const xTitle = {step: "step", relative: "seconds since start", wall: "time"}[view.x];
    const legend = this.lines.length > 1 && this.options.legend !== false;
    return {height: (this.options.height || 260) + (legend ? 20 * Math.ceil(this.lines.length / 3) : 0),
            margin: {l: 56, r: 12, t: legend ? 12 + 20 * Math.ceil(this.lines.length / 3) : 8, b: 40}, uirevision: `${view.x}-${view.log}`,
            xaxis: {title: {text: xTitle}, type: view.x === "wall" ? "date" : "linear", automargin: true},
            yaxis: {type: view.log ? "log" : "linear", automargin: true, exponentformat: "e"},
            showlegend: legend,
            legend: {orientation: "h", x: 0, y: 1.02, xanchor: "left", yanchor: "bottom"},
            hovermode: "closest", shapes: this.options.shapes || []};
  }
  async draw() {
    const Plotly = await plotly();
    if (!document.body.contains(this.holder)) { charts.delete(this); return; }
    await Plotly.react(this.holder, this.traces(), this.layout(), {displaylogo: false, responsive: true});
  }
  async append(k, chunk) {  // new values of line k: extend its traces (no redraw), reduce when it grew long
    const line = this.lines[k], s = line.series;
    s.steps.push(...chunk.steps); s.values.push(...chunk.values); s.times.push(...chunk.times);
    if (s.steps.length > 2 * MAX_POINTS) { Object.assign(s, reduce(s, MAX_POINTS)); return this.draw(); }
    const Plotly = await plotly();
    const x = this.x(line, chunk);
    await Plotly.extendTraces(this.holder, {x: [x, x], y: [chunk.values.map(num), smoothed(chunk.values, view.smoothing, line.state)]},
                              [2 * k, 2 * k + 1]);
  }
}
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
  "#17becf", "#393b79", "#ad494a", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1"];

function chartCard(name, title, lines, options) {
  const holder = el("div", {class: "plot"});
  const card = el("div", {class: "card", "data-metric": name}, el("h3", {}, title), holder);
  const chart = new LineChart(holder, lines, options);
  return [card, chart];
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
  // A run page is the usual next click: evaluate the chart library (about a second of script on a slow machine,
  // once per tab) while the table is read, not after the click.
  (window.requestIdleCallback || setTimeout)(() => plotly().catch(() => {}), {timeout: 2000});
  const live = setInterval(() => { if (document.visibilityState === "visible") render().catch(() => {}); }, 5000);
  cleanup.push(() => clearInterval(live));
}

// -- one run ----------------------------------------------------------------------------------------------------
async function runPage(id) {
  plotly().catch(() => {});  // the chart library loads while the run's data does (once per tab: hash routes)
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
  const values = el("div", {id: "values"});
  const metrics = el("div", {class: "cards", id: "charts"});
  const rankSelect = el("select", {id: "rank"}, run.ranks.map(r => el("option", {value: r}, "rank " + r)));
  const log = el("pre", {class: "log", id: "log"});
  const files = el("div", {class: "card", id: "files"}, el("h3", {}, "Files"));
  const children = el("div", {id: "children"});
  main.replaceChildren(title, el("div", {class: "toolbar"}, timeline, cancel, tb), el("div", {class: "cards"}, details, el("div", {class: "card"}, el("h3", {}, "Tags and params"), kvTable({...run.tags, ...run.params})), error, inputs),
    el("h3", {}, "Metrics"), chartControls(), values, metrics, children, el("h3", {}, "Output"), el("div", {class: "toolbar"}, rankSelect), log, files);

  // The run's metrics: series as charts, values logged once as values, tables as tables, images as images. While the
  // run is on, the page's event stream brings each second's new values, appended to the charts.
  let data = {series: {}, tables: {}, images: [], counts: {}};
  const drawn = new Map();  // metric name -> its chart
  async function drawMetrics() {
    data = await api(`/api/runs/${encodeURIComponent(id)}/metrics`);
    renderMetrics();
  }
  function renderMetrics() {
    drawn.forEach(c => charts.delete(c)); drawn.clear();
    const singles = Object.entries(data.series).filter(([, s]) => s.count === 1).map(([n, s]) => [n, s.values[0]]);
    const cards = [];
    for (const [name, s] of Object.entries(data.series)) {
      if (s.count < 2) continue;
      const [card, chart] = chartCard(name, name + (s.reduced ? ` (${s.count.toLocaleString()} values, drawn from ${s.values.length})` : ""),
                                      [{label: name, series: s, start: run.start}]);
      drawn.set(name, chart); cards.push(card);
    }
    for (const [name, rows] of Object.entries(data.tables)) {
      const flat = rows.flatMap(r => Array.isArray(r) ? r : [r]);
      if (flat.length === 1 && (flat[0] === null || typeof flat[0] !== "object")) { singles.push([name, flat[0]]); continue; }
      const keys = [...new Set(flat.flatMap(r => (r && typeof r === "object") ? Object.keys(r) : ["value"]))];
      cards.push(el("div", {class: "card", "data-table": name}, el("h3", {}, name), el("table", {}, el("tr", {}, keys.map(k => el("th", {}, k))),
        flat.slice(0, 200).map(r => el("tr", {}, keys.map(k => el("td", {}, fmtVal(r && typeof r === "object" ? (typeof r[k] === "object" ? JSON.stringify(r[k]) : r[k]) : r))))))));
    }
    for (const img of data.images) cards.push(el("div", {class: "card"}, el("h3", {}, img.name),
      el("img", {class: "logged", src: `/api/runs/${encodeURIComponent(id)}/file?path=${encodeURIComponent(img.path)}`, alt: img.name})));
    values.replaceChildren(singles.length ? el("div", {class: "values"}, singles.sort().map(([n, v]) =>
      el("div", {class: "value", "data-value": n}, el("div", {class: "value-name"}, n), el("div", {class: "value-number"}, fmtVal(v))))) : "");
    metrics.replaceChildren(...(cards.length || singles.length ? cards : [el("p", {class: "muted"}, "no metrics logged")]));
    drawn.forEach(c => c.draw().catch(e => console.error(e)));
  }
  function known() {  // what this page has, for the stream: {name: [last_id, count]}
    const out = {};
    for (const [n, c] of Object.entries(data.counts)) out[n] = [0, c];
    for (const [n, s] of Object.entries(data.series)) out[n] = [s.last_id, s.count];
    return out;
  }
  function addPoints(news) {
    let rebuild = false;
    for (const [name, chunk] of Object.entries(news.series)) {
      const have = data.series[name];
      data.counts[name] = chunk.count;
      if (chunk.replace || !have) { data.series[name] = chunk; rebuild = true; continue; }
      const wasSingle = have.count < 2;
      have.count = chunk.count; have.last_id = chunk.last_id;
      if (wasSingle || !drawn.has(name)) {
        have.steps.push(...chunk.steps); have.values.push(...chunk.values); have.times.push(...chunk.times);
        rebuild = true;
      } else {
        drawn.get(name).append(0, chunk).catch(e => console.error(e));
      }
    }
    if (news.refresh) return drawMetrics().catch(() => {});
    if (rebuild) renderMetrics();
  }
  await drawMetrics();

  let source, polling = null;
  function follow() {
    if (source) source.close();
    log.textContent = "";
    let live = run.terminal ? "" : "&metrics=" + encodeURIComponent(JSON.stringify(known()));
    if (live.length > 6000) {  // so many metrics that the URL would be too long: read them all every 3 s instead
      live = "";
      polling = polling || setInterval(() => { if (!run.terminal) drawMetrics().catch(() => {}); }, 3000);
    }
    source = new EventSource(`/api/runs/${encodeURIComponent(id)}/logs?rank=${rankSelect.value}${live}`);
    source.addEventListener("log", e => {
      const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.append(document.createTextNode(JSON.parse(e.data)));
      if (stick) log.scrollTop = log.scrollHeight;
    });
    source.addEventListener("metrics", e => addPoints(JSON.parse(e.data)));
    source.addEventListener("end", async e => {
      source.close();
      const st = JSON.parse(e.data);
      title.replaceChildren(run.name, " ", status(st));
      cancel.disabled = true;
      run.terminal = true;
      api("/api/runs/" + encodeURIComponent(id)).then(r => timeline.replaceChildren(
        ...r.timeline.map(t => el("span", {}, `${t.status} ${fmtTime(t.at)}`)))).catch(() => {});
      drawMetrics().catch(() => {});
      showFiles().catch(() => {});
      if (run.type === "hyperdrive") sweepSection(id, children, () => true).catch(() => {});
    });
  }
  rankSelect.onchange = follow;
  follow();
  cleanup.push(() => { if (source) source.close(); clearInterval(polling); });

  async function showFiles() {
    const f = await api(`/api/runs/${encodeURIComponent(id)}/files`);
    files.replaceChildren(el("h3", {}, "Files"), el("table", {}, f.files.map(x => el("tr", {},
      el("td", {}, el("a", {href: `/api/runs/${encodeURIComponent(id)}/file?path=${encodeURIComponent(x.path)}`}, x.path)),
      el("td", {}, x.size.toLocaleString() + " B")))));
  }
  await showFiles();
  if (run.type === "hyperdrive") {
    await sweepSection(id, children, () => run.terminal);
  } else if (run.children) {
    const page = await api(`/api/runs?parent=${encodeURIComponent(id)}&limit=200`);
    children.replaceChildren(el("h3", {}, `Child runs (${page.total})`),
      el("table", {id: "children-table"}, el("tr", {}, el("th", {}, "run"), el("th", {}, "status"), el("th", {}, "parameters")),
        page.runs.map(r => el("tr", {}, el("td", {}, runLink(r.id, r.name)), el("td", {}, status(r.status)),
          el("td", {}, Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join(" "))))));
  }
}

// -- a sweep (HyperDrive parent): its trials' primary metric over time, hyperparameters -> metric, the ranking -------
async function sweepSection(id, holder, ended) {  // ended(): no more to come
  const sweep = await api(`/api/runs/${encodeURIComponent(id)}/sweep`);
  const {metric, goal, best, trials} = sweep;
  const bestTrial = trials.find(t => t.id === best);
  const lines = trials.filter(t => t.series.count).map((t, k) => ({
    id: t.id, label: (t.id === best ? "★ " : "") + t.name + (t.stopped ? " (stopped early)" : ""), series: t.series,
    start: t.start, color: t.id === best ? "#d69e2e" : PALETTE[k % PALETTE.length], width: t.id === best ? 4 : 1.5,
    dash: t.stopped ? "dot" : undefined}));
  const progress = el("div", {class: "plot", id: "sweep-metric"});
  const parallel = el("div", {class: "plot", id: "sweep-parallel"});
  const keys = [...new Set(trials.flatMap(t => Object.keys(t.hyperparameters)))];
  const rows = trials.map((t, k) => el("tr", {class: t.id === best ? "best" : "", "data-trial": t.id, "data-stopped": t.stopped ? "1" : null},
    el("td", {}, String(k + 1)), el("td", {}, runLink(t.id, t.name), t.id === best ? el("span", {class: "badge best"}, "best") : ""),
    el("td", {}, status(t.status), t.stopped ? el("span", {class: "badge stopped", title: t.stopped}, "stopped early") : ""),
    keys.map(key => el("td", {}, fmtVal(t.hyperparameters[key]))), el("td", {}, fmtVal(t.final))));
  holder.replaceChildren(el("h3", {}, `Trials (${trials.length}) by ${metric} (${goal})`),
    bestTrial ? el("p", {id: "sweep-best"}, "Best: ", runLink(bestTrial.id, bestTrial.name), ` ${metric} = ${fmtVal(bestTrial.final)}`) : "",
    el("div", {class: "cards"}, el("div", {class: "card"}, el("h3", {}, `${metric} per trial`), progress,
        el("p", {class: "caption"}, "gold, wide: the best trial; dotted: stopped early by the policy; hover a line for its trial")),
      el("div", {class: "card"}, el("h3", {}, "Hyperparameters → " + metric), parallel)),
    el("table", {id: "children-table"}, el("tr", {}, el("th", {}, "#"), el("th", {}, "trial"), el("th", {}, "status"),
      keys.map(key => el("th", {}, key)), el("th", {}, metric)), rows));
  const chart = new LineChart(progress, lines, {height: 320, legend: false});
  await chart.draw();
  const scored = trials.filter(t => typeof t.final === "number");
  if (scored.length) {
    const dimensions = keys.map(key => {
      const vals = scored.map(t => t.hyperparameters[key]);
      if (vals.every(v => typeof v === "number")) return {label: plotText(key), values: vals};
      const levels = [...new Set(vals.map(v => JSON.stringify(v ?? null)))].sort();
      return {label: plotText(key), values: vals.map(v => levels.indexOf(JSON.stringify(v ?? null))),
              tickvals: levels.map((_, i) => i), ticktext: levels.map(v => plotText(JSON.parse(v)))};
    });
    dimensions.push({label: plotText(metric), values: scored.map(t => t.final)});
    const Plotly = await plotly();
    await Plotly.react(parallel, [{type: "parcoords", dimensions,
      line: {color: scored.map(t => t.final), colorscale: "Viridis", reversescale: goal === "minimize", showscale: true,
             colorbar: {title: {text: plotText(metric)}}}}],
      {height: 320, margin: {l: 60, r: 60, t: 40, b: 20}}, {displaylogo: false, responsive: true});
  } else {
    parallel.replaceChildren(el("p", {class: "muted"}, `no trial has logged ${metric} yet`));
  }
  if (!ended()) {  // a sweep in progress: read it again while the page shows it
    const t = setTimeout(() => { if (document.body.contains(holder) && !ended()) sweepSection(id, holder, ended).catch(() => {}); }, 5000);
    cleanup.push(() => clearTimeout(t));
  }
}

async function comparePage(ids) {
  plotly().catch(() => {});
  const data = await api("/api/compare?ids=" + ids);
  const runs = data.runs.map((r, k) => ({...r, color: PALETTE[k % PALETTE.length]}));
  const names = [...new Set(runs.flatMap(r => Object.keys(r.series)))].sort();
  const series = names.filter(n => runs.some(r => r.series[n] && r.series[n].count > 1));
  const singles = names.filter(n => !series.includes(n));
  const params = [...new Set(runs.flatMap(r => Object.keys(r.params)))].sort();
  const head = el("tr", {}, el("th", {}, ""), runs.map(r => el("th", {}, el("span", {class: "swatch", style: "background:" + r.color}), runLink(r.id, r.name))));
  const table = el("table", {id: "compare-params"}, head,
    el("tr", {}, el("td", {}, "status"), runs.map(r => el("td", {}, status(r.status)))),
    params.map(p => el("tr", {}, el("td", {}, p), runs.map(r => el("td", {}, r.params[p] ?? "")))),
    singles.map(n => el("tr", {"data-value": n}, el("td", {}, n), runs.map(r => el("td", {}, r.series[n] ? fmtVal(r.series[n].values[0]) : "")))));
  const cards = [], made = [];
  for (const n of series) {
    const [card, chart] = chartCard(n, n, runs.filter(r => r.series[n]).map(r => ({id: r.id, label: r.name, series: r.series[n], start: r.start, color: r.color})));
    cards.push(card); made.push(chart);
  }
  const asked = ids.split(",").filter(Boolean).length;
  main.replaceChildren(el("h2", {}, `Comparing ${runs.length} runs`),
    asked > runs.length ? el("p", {class: "muted", id: "compare-note"}, `${asked} runs were ticked; a comparison shows the first ${runs.length}.`) : "",
    chartControls(),
    el("div", {class: "compare"}, el("div", {class: "card"}, el("h3", {}, "Parameters and values"), table),
      el("div", {class: "cards", id: "compare-charts"}, cards.length ? cards : el("p", {class: "muted"}, "no metric series to draw"))));
  await Promise.all(made.map(c => c.draw()));
}

async function listPage(path, key, columns) {
  const data = await api(path);
  const rows = data[key] || [];
  main.replaceChildren(el("h2", {}, key[0].toUpperCase() + key.slice(1)), rows.length ? el("table", {id: key + "-table"},
    el("tr", {}, columns.map(c => el("th", {}, c[0]))),
    rows.map(r => el("tr", {}, columns.map(c => el("td", {}, c[1](r)))))) : el("p", {class: "muted"}, "none yet"));
}

async function route() {
  cleanup.forEach(f => f()); cleanup = []; charts.clear();
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
