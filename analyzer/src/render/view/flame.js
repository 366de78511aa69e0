// The flamegraph / icicle of the chosen metric over the selection: hover, click to zoom, search.
const ROW_PX = 18;
function flameColor(name, i) {
  let h = 0;
  for (let k = 0; k < name.length; k++) h = (h * 31 + name.charCodeAt(k)) >>> 0;
  const r = 205 + (h % 50), g = 120 + ((h >> 8) % 90), b = 30 + ((h >> 16) % 50);
  return "rgb(" + r + "," + g + "," + b + ")";
}
function searchRegex() {
  if (!state.search) return null;
  try { return new RegExp(state.search, "i"); } catch (e) {
    return new RegExp(state.search.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i");
  }
}
function ancestors(n) {
  const out = [];
  for (let p = nodes.parent[n]; p >= 0; p = nodes.parent[p]) out.push(p);
  return out;
}
function drawFlame() {
  const box = document.getElementById("flame-graph");
  box.textContent = "";
  const m = state.metric;
  const v = nodeVals[m];
  const tot = total(m);
  const width = Math.max(300, box.clientWidth || 900);
  const icicle = document.getElementById("icicle").checked;
  const status = document.getElementById("flame-status");
  status.dataset.metric = m;
  status.dataset.total = tot;
  if (tot <= 0) {
    status.textContent = "Total " + fmtMetric(m, 0) + ".";
    box.style.height = "auto";
    box.appendChild(el("div", { class: "empty" }, "Nothing to show: no " + METRICS[m].title + " in the selected range."));
    updateSearch();
    return;
  }
  // The zoomed node spans the width; its ancestors are drawn full width above it.
  const zoom = state.zoom >= 0 && v[state.zoom] > 0 ? state.zoom : -1;
  const chain = zoom >= 0 ? ancestors(zoom).reverse().concat([zoom]) : [];
  const base = zoom >= 0 ? v[zoom] : tot;
  status.textContent = "Total " + fmtMetric(m, tot) + (METRICS[m].bytes ? " (" + fmtCount(tot) + " B)" : "") +
    (zoom >= 0 ? " — zoomed to " + frameName(nodes.frame[zoom]) + " (" + fmtMetric(m, base) + ", " + fmtPct(base, tot) + "); click the top row or Reset zoom to go back" : "");
  const items = [];
  // The root row: everything in the selection.
  items.push({ node: -1, depth: 0, x: 0, w: width, name: "all", value: tot });
  chain.forEach((n, i) => items.push({ node: n, depth: i + 1, x: 0, w: width, name: frameName(nodes.frame[n]), value: v[n] }));
  const minPx = 0.6;
  const lay = (list, depth, x0, scale) => {
    let x = x0;
    const sorted = list.filter(c => v[c] > 0).sort((a, b) => strings[nodeFn[a]] < strings[nodeFn[b]] ? -1 : 1);
    for (const c of sorted) {
      const w = v[c] * scale;
      if (w >= minPx) {
        items.push({ node: c, depth, x, w, name: frameName(nodes.frame[c]), value: v[c] });
        lay(children[c], depth + 1, x, scale);
      }
      x += w;
    }
  };
  const scale = width / base;
  if (zoom >= 0) lay(children[zoom], chain.length + 1, 0, scale);
  else lay(roots, 1, 0, scale);
  let maxDepth = 0;
  for (const it of items) maxDepth = Math.max(maxDepth, it.depth);
  const height = (maxDepth + 1) * ROW_PX;
  box.style.height = height + "px";
  const frag = document.createDocumentFragment();
  for (const it of items) {
    const d = el("div", { class: "fr", "data-node": it.node, "data-value": it.value });
    d.style.left = it.x.toFixed(2) + "px";
    d.style.width = Math.max(0.5, it.w - 0.2).toFixed(2) + "px";
    d.style.top = (icicle ? it.depth * ROW_PX : height - (it.depth + 1) * ROW_PX) + "px";
    d.style.background = it.node < 0 ? "#e8ecef" : flameColor(it.name);
    if (it.w > 30) d.textContent = it.name;
    frag.appendChild(d);
  }
  box.appendChild(frag);
  updateSearch();
}
function nodeTip(n) {
  const m = state.metric;
  const tot = total(m);
  if (n < 0) return "<b>all</b><br>" + fmtMetric(m, tot);
  const f = nodes.frame[n];
  const loc = frameLoc(f);
  let html = "<b>" + esc(frameName(f)) + "</b>" + (loc ? "<br><span class=loc>" + esc(loc) + "</span>" : "");
  html += "<br>" + METRICS[m].title + ": " + (METRICS[m].bytes ? fmtBytesExact(nodeVals[m][n]) : fmtCount(nodeVals[m][n])) + " — " + fmtPct(nodeVals[m][n], tot) + " of the total";
  html += "<br>allocated in the range: " + fmtBytes(nodeVals.allocated[n]) + " in " + fmtCount(nodeVals.allocations[n]) + " calls";
  return html;
}
function attachFlame() {
  const box = document.getElementById("flame-graph");
  const tip = document.getElementById("flame-tip");
  box.addEventListener("mousemove", e => {
    const t = e.target.closest(".fr");
    if (!t) { tip.hidden = true; return; }
    tip.innerHTML = nodeTip(+t.dataset.node);
    tip.hidden = false;
    const w = tip.offsetWidth;
    tip.style.left = Math.min(e.clientX + 14, window.innerWidth - w - 8) + "px";
    tip.style.top = (e.clientY + 14) + "px";
  });
  box.addEventListener("mouseleave", () => { tip.hidden = true; });
  box.addEventListener("click", e => {
    const t = e.target.closest(".fr");
    if (!t) return;
    const n = +t.dataset.node;
    state.zoom = n === state.zoom ? nodes.parent[n] : n;
    drawFlame();
    if (n >= 0) chooseFunction(nodeFn[n]);
  });
  document.getElementById("unzoom").addEventListener("click", () => { state.zoom = -1; drawFlame(); });
  document.getElementById("icicle").addEventListener("change", drawFlame);
  document.getElementById("metric").addEventListener("change", e => { state.metric = e.target.value; changed("metric"); });
  document.getElementById("search").addEventListener("input", e => { state.search = e.target.value.trim(); updateSearch(); });
}
// Highlights matching frames and sums the metric over them, each allocation counted once (a
// match under another match is not added again).
function updateSearch() {
  const re = searchRegex();
  const out = document.getElementById("search-status");
  const v = nodeVals[state.metric];
  let sum = 0, matched = 0;
  const matches = new Uint8Array(nNodes);
  if (re) {
    for (let i = 0; i < nNodes; i++) {
      if (!re.test(strings[nodeFn[i]])) continue;
      matches[i] = 1;
      matched++;
      let under = false;
      for (let p = nodes.parent[i]; p >= 0; p = nodes.parent[p]) if (matches[p] || re.test(strings[nodeFn[p]])) { under = true; break; }
      if (!under) sum += v[i];
    }
  }
  for (const d of document.querySelectorAll("#flame-graph .fr")) {
    const n = +d.dataset.node;
    d.classList.toggle("match", !!re && n >= 0 && matches[n] === 1);
  }
  out.dataset.sum = sum;
  out.dataset.matched = matched;
  out.textContent = re ? "Search \"" + state.search + "\": " + fmtCount(matched) + " matching frames, " +
    fmtMetric(state.metric, sum) + " (" + fmtPct(sum, total(state.metric)) + " of the total)" : "";
}
