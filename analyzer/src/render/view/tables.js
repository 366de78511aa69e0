// Tables (bottom-up sites, top-down functions, caller/callee), the backtraces of a chosen site,
// histograms of the selection and threads.
const COLS = [["allocated", "Allocated"], ["allocations", "Calls"], ["live", "Live at end"],
  ["leaked", "Leaked"], ["temporary", "Temporary"], ["peak", "At peak"]];
const tbl = { tab: "sites", sort: { sites: "allocated", functions: "allocated", callers: "allocated", callees: "allocated" }, asc: {}, site: -1, fn: -1 };

function rowsBySite() {
  const rows = new Map();
  for (let i = 0; i < nStacks; i++) {
    const f = stacks.site[i];
    let r = rows.get(f);
    if (!r) { r = { key: f, name: frameName(f), loc: frameLoc(f), stacks: [] }; for (const [k] of COLS) r[k] = 0; rows.set(f, r); }
    for (const [k] of COLS) r[k] += sums[k][i];
    r.stacks.push(i);
  }
  return [...rows.values()];
}
// Per function: inclusive (each allocation once per function on its path) and self (leaf).
function rowsByFunction() {
  const rows = new Map();
  const get = fn => {
    let r = rows.get(fn);
    if (!r) { r = { key: fn, name: strings[fn], loc: "" }; for (const [k] of COLS) { r[k] = 0; r["self_" + k] = 0; } rows.set(fn, r); }
    return r;
  };
  const seen = new Set();
  for (let i = 0; i < nStacks; i++) {
    const leaf = stacks.node[i];
    if (leaf < 0) continue;
    seen.clear();
    const lr = get(nodeFn[leaf]);
    for (const [k] of COLS) lr["self_" + k] += sums[k][i];
    for (let n = leaf; n >= 0; n = nodes.parent[n]) {
      const fn = nodeFn[n];
      if (seen.has(fn)) continue;
      seen.add(fn);
      const r = get(fn);
      for (const [k] of COLS) r[k] += sums[k][i];
    }
  }
  return [...rows.values()];
}
// Callers and callees of function `fn`: through its outermost occurrences on each path.
function callerRows(fn, callees) {
  const rows = new Map();
  for (let n = 0; n < nNodes; n++) {
    if (nodeFn[n] !== fn) continue;
    let rec = false;
    for (let p = nodes.parent[n]; p >= 0; p = nodes.parent[p]) if (nodeFn[p] === fn) { rec = true; break; }
    if (rec) continue;
    const targets = callees ? children[n] : [nodes.parent[n]];
    for (const t of targets) {
      const key = t >= 0 ? nodeFn[t] : -1;
      let r = rows.get(key);
      if (!r) { r = { key, name: key >= 0 ? strings[key] : "(outermost frame)", loc: "" }; for (const [k] of COLS) r[k] = 0; rows.set(key, r); }
      const src = callees ? t : n;
      for (const [k] of COLS) r[k] += nodeVals[k][src];
    }
  }
  return [...rows.values()];
}
function table(id, rows, sortKey, extra, onPick, chosen) {
  const asc = !!tbl.asc[id];
  rows.sort((a, b) => (asc ? a[sortKey] - b[sortKey] : b[sortKey] - a[sortKey]) || (a.name < b.name ? -1 : 1));
  const t = el("table", { class: "data", id: "table-" + id });
  const head = el("tr");
  const cols = [["name", id === "sites" ? "Allocation site" : "Function"]].concat(COLS).concat(extra || []);
  for (const [k, label] of cols) {
    const th = el("th", { "data-key": k, class: (k === "name" ? "name " : "") + (k === sortKey ? "sorted" + (asc ? " asc" : "") : "") }, label);
    if (k !== "name") th.addEventListener("click", () => {
      if (tbl.sort[id] === k) tbl.asc[id] = !tbl.asc[id]; else { tbl.sort[id] = k; tbl.asc[id] = false; }
      renderTables();
    });
    head.appendChild(th);
  }
  t.appendChild(head);
  const shown = rows.filter(r => COLS.some(([k]) => r[k] > 0)).slice(0, 200);
  for (const r of shown) {
    const tr = el("tr", { class: "row" + (r.key === chosen ? " chosen" : ""), "data-key": r.key });
    const name = el("td", { class: "name" }, r.name);
    if (r.loc) { name.appendChild(el("br")); name.appendChild(el("span", { class: "loc" }, r.loc)); }
    tr.appendChild(name);
    for (const [k] of cols.slice(1)) {
      const isCount = (k.indexOf("alloc") >= 0 && k.indexOf("allocated") < 0) || k.indexOf("temporary") >= 0;
      const td = el("td", { "data-v": r[k], title: isCount ? fmtCount(r[k]) + " calls" : fmtCount(r[k]) + " bytes" }, isCount ? fmtCount(r[k]) : fmtBytes(r[k]));
      tr.appendChild(td);
    }
    if (onPick) tr.addEventListener("click", () => onPick(r));
    t.appendChild(tr);
  }
  if (!shown.length) { const tr = el("tr"); tr.appendChild(el("td", { class: "name", colspan: cols.length }, "Nothing in the selected range.")); t.appendChild(tr); }
  return t;
}
function chooseFunction(fn) { tbl.fn = fn; if (tbl.tab === "callers") renderTables(); }
function renderTables() {
  const box = document.getElementById("table-box");
  box.textContent = "";
  for (const b of document.querySelectorAll(".tabs button")) b.classList.toggle("active", b.dataset.tab === tbl.tab);
  if (tbl.tab === "sites") {
    box.appendChild(table("sites", rowsBySite(), tbl.sort.sites, null, r => { tbl.site = r.key; renderTables(); }, tbl.site));
  } else if (tbl.tab === "functions") {
    const extra = [["self_allocated", "Self allocated"], ["self_allocations", "Self calls"]];
    box.appendChild(table("functions", rowsByFunction(), tbl.sort.functions, extra, r => { tbl.fn = r.key; tbl.tab = "callers"; renderTables(); }, tbl.fn));
  } else {
    if (tbl.fn < 0) { box.appendChild(el("p", { class: "hint" }, "Pick a function in the top-down table or click a frame in the flamegraph.")); }
    else {
      box.appendChild(el("h3", {}, "Callers of " + strings[tbl.fn]));
      box.appendChild(table("callers", callerRows(tbl.fn, false), tbl.sort.callers, null, r => { if (r.key >= 0) { tbl.fn = r.key; renderTables(); } }, -2));
      box.appendChild(el("h3", {}, "Callees of " + strings[tbl.fn]));
      box.appendChild(table("callees", callerRows(tbl.fn, true), tbl.sort.callees, null, r => { tbl.fn = r.key; renderTables(); }, -2));
    }
  }
  renderDetail();
}
// The full backtraces of the chosen site, largest first (by the table's sort metric).
function renderDetail() {
  const box = document.getElementById("detail");
  box.textContent = "";
  if (tbl.tab !== "sites" || tbl.site < 0) return;
  const key = tbl.sort.sites;
  const list = [];
  for (let i = 0; i < nStacks; i++) if (stacks.site[i] === tbl.site && COLS.some(([k]) => sums[k][i] > 0)) list.push(i);
  list.sort((a, b) => sums[key][b] - sums[key][a]);
  box.appendChild(el("h3", {}, "Backtraces of " + frameName(tbl.site) + " (" + list.length + " call paths, by " + COLS.find(c => c[0] === key)[1].toLowerCase() + ")"));
  for (const s of list.slice(0, 8)) {
    box.appendChild(el("div", { class: "status" }, fmtBytes(sums.allocated[s]) + " allocated in " + fmtCount(sums.allocations[s]) +
      " calls · live at the range's end " + fmtBytes(sums.live[s]) + " · leaked " + fmtBytes(sums.leaked[s])));
    const ol = el("ol", { class: "backtrace" });
    for (let n = stacks.node[s]; n >= 0; n = nodes.parent[n]) {
      const f = nodes.frame[n];
      const loc = frameLoc(f);
      ol.appendChild(el("li", {}, frameName(f) + (loc ? "  " + loc : "")));
    }
    box.appendChild(ol);
  }
}
function attachTables() {
  for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => { tbl.tab = b.dataset.tab; renderTables(); });
}

function binLabel(k, ns) {
  if (k === 0) return "0";
  const hi = Math.pow(2, k);
  return ns ? "< " + fmtNs(hi) : "< " + fmtBytes(hi).replace(".0 ", " ");
}
function histogram(id, key, ns) {
  const box = document.getElementById(id);
  box.textContent = "";
  const bins = [];
  for (let b = state.b0; b <= state.b1; b++) {
    const h = B[key][b] || [];
    for (let k = 0; k < h.length; k++) bins[k] = (bins[k] || 0) + h[k];
  }
  let lo = bins.findIndex(v => v > 0);
  if (lo < 0) { box.appendChild(el("p", { class: "hint" }, "Nothing in the selected range.")); return; }
  const hi = bins.length - 1;
  const n = hi - lo + 1, W = Math.max(360, box.clientWidth || 420), H = 200, left = 66, bottom = 44;
  const max = Math.max(...bins.slice(lo));
  const svg = svgEl("svg", { width: W, height: H + bottom, class: "hist", "data-total": bins.reduce((a, b) => a + (b || 0), 0) });
  const yt = ticks(max, 4, false);
  const yMax = yt.values[yt.values.length - 1] || 1;
  for (const v of yt.values) {
    const y = 6 + (H - 6) * (1 - v / yMax);
    svg.appendChild(svgEl("line", { x1: left, x2: W, y1: y, y2: y, stroke: "#eceff2" }));
    const t = svgEl("text", { x: left - 6, y: y + 4, "text-anchor": "end" }); t.textContent = fmtCount(v); svg.appendChild(t);
  }
  const bw = (W - left) / n;
  for (let k = lo; k <= hi; k++) {
    const v = bins[k] || 0, x = left + (k - lo) * bw, h = (H - 6) * v / yMax;
    const r = svgEl("rect", { class: "bar", x: x + 1, y: H - h, width: Math.max(1, bw - 2), height: h });
    const title = svgEl("title"); title.textContent = (k === 0 ? "0" : (ns ? fmtNs(Math.pow(2, k - 1)) : fmtBytes(Math.pow(2, k - 1))) + " – " + binLabel(k, ns).slice(2)) + ": " + fmtCount(v) + " blocks";
    r.appendChild(title); svg.appendChild(r);
    if ((k - lo) % Math.ceil(n / 10) === 0) {
      const t = svgEl("text", { x: x + bw / 2, y: H + 14, "text-anchor": "middle" }); t.textContent = binLabel(k, ns); svg.appendChild(t);
    }
  }
  const cap = svgEl("text", { x: left + (W - left) / 2, y: H + 36, "text-anchor": "middle" });
  cap.textContent = ns ? "lifetime (estimated between timeline samples)" : "requested size"; svg.appendChild(cap);
  box.appendChild(svg);
}
function renderThreads() {
  const box = document.getElementById("thread-table");
  box.textContent = "";
  // Per thread, its live heap at the end of every bucket (running sums of the net changes).
  const series = new Map();
  for (const th of D.threads) series.set(th.tid, new Float64Array(nBuckets));
  const run = new Map();
  for (let b = 0; b < nBuckets; b++) {
    const t = B.threads[b] || [];
    for (let i = 0; i < t.length; i += 2) run.set(t[i], (run.get(t[i]) || 0) + t[i + 1]);
    for (const [tid, v] of run) { if (!series.has(tid)) series.set(tid, new Float64Array(nBuckets)); series.get(tid)[b] = v; }
  }
  const live = new Map();
  for (const [tid, s] of series) live.set(tid, s[state.b1]);
  const spark = tid => {
    const s = series.get(tid), W = 180, H = 26;
    const max = Math.max(1, ...s);
    const svg = svgEl("svg", { width: W, height: H, class: "spark" });
    const x = b => (W - 2) * (b + 0.5) / nBuckets + 1, y = v => H - 2 - (H - 4) * Math.max(0, v) / max;
    svg.appendChild(svgEl("rect", { x: x(state.b0) - 1, y: 0, width: Math.max(2, x(state.b1) - x(state.b0) + 2), height: H, fill: "rgba(31,119,180,0.12)" }));
    let d = "";
    for (let b = 0; b < nBuckets; b++) d += (b ? "L" : "M") + x(b).toFixed(1) + "," + y(s[b]).toFixed(1);
    svg.appendChild(svgEl("path", { d, fill: "none", stroke: "#1f77b4", "stroke-width": 1.4 }));
    const title = svgEl("title"); title.textContent = "peak " + fmtBytes(Math.max(0, ...s)) + " of live heap allocated by this thread";
    svg.appendChild(title);
    return svg;
  };
  const t = el("table", { class: "data", id: "table-threads" });
  const head = el("tr");
  for (const h of ["Thread", "Allocation calls", "Allocated", "Heap live at the range's end", "Its heap over time", "Stack size", "Stack high-water"]) head.appendChild(el("th", { class: h === "Thread" ? "name" : "" }, h));
  t.appendChild(head);
  for (const th of D.threads) {
    const tr = el("tr");
    tr.appendChild(el("td", { class: "name" }, th.tid + (th.name ? " " + th.name : "")));
    tr.appendChild(el("td", {}, fmtCount(th.allocations)));
    tr.appendChild(el("td", {}, fmtBytes(th.allocated_bytes)));
    tr.appendChild(el("td", {}, fmtBytes(Math.max(0, live.get(th.tid) || 0))));
    const sp = el("td"); sp.appendChild(spark(th.tid)); tr.appendChild(sp);
    tr.appendChild(el("td", {}, th.stack_bytes ? fmtBytes(th.stack_bytes) : "unknown"));
    tr.appendChild(el("td", {}, th.stack_high_water_bytes === null ? "not recorded (thread did not exit)" : fmtBytes(th.stack_high_water_bytes)));
    t.appendChild(tr);
  }
  box.appendChild(t);
}
