// The pressure timeline: stacked SVG panels over one time axis, hover values, a brushable range
// that snaps to the data's time buckets.
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"];
const TL = { width: 900, left: 78, right: 14, top: 8, bottom: 24, height: 150, panels: [] };
const durNs = Math.max(D.duration_ns, B.end_ns[nBuckets - 1] || 0, 1);

function timeUnit() {
  if (durNs < 2e6) return { div: 1e3, name: "µs" };
  if (durNs < 2e9) return { div: 1e6, name: "ms" };
  if (durNs < 600e9) return { div: 1e9, name: "s" };
  return { div: 60e9, name: "min" };
}
function valueFormatter(unit) {
  switch (unit) {
    case "bytes": return fmtBytes;
    case "bps": return v => fmtBytes(v) + "/s";
    case "ps": return v => fmtCount(v) + "/s";
    case "ns": return fmtNs;
    default: return fmtCount;
  }
}
function seriesOf(key) {
  const s = D.series[key];
  return s && s.t.length ? s : null;
}
function panelDefs() {
  const defs = [];
  const mem = [["live", "live heap (requested)"], ["rss", "RSS"], ["rss_anon", "RSS anon"],
    ["je_resident", "allocator resident (jemalloc)"], ["cgroup", "cgroup memory.current"]];
  defs.push({ title: "Memory", unit: "bytes", lines: mem.map(([k, l]) => ({ key: k, label: l })),
    ref: D.limit_bytes ? { label: "limit " + fmtBytes(D.limit_bytes), value: D.limit_bytes } : null });
  defs.push({ title: "Allocation rate", unit: "bps", lines: [{ key: "rate_bytes", label: "bytes allocated per second" }] });
  defs.push({ title: "Allocation calls", unit: "ps", lines: [{ key: "rate_calls", label: "allocation calls per second" }] });
  defs.push({ title: "Allocator latency per interval", unit: "ns", lines: [
    { key: "lat_p50", label: "p50" }, { key: "lat_p99", label: "p99", width: 2.2 },
    { key: "lat_max", label: "max", dash: true }] });
  defs.push({ title: "Threads", unit: "count", lines: [{ key: "threads", label: "live threads" }] });
  // Panels without data are left out; lines without data too.
  return defs.map(d => ({ ...d, lines: d.lines.map((l, i) => ({ ...l, color: COLORS[i % COLORS.length], s: seriesOf(l.key) })).filter(l => l.s) }))
    .filter(d => d.lines.length && d.lines.some(l => l.s.v.some(v => v > 0)));
}
function xOf(tNs) { return TL.left + (TL.width - TL.left - TL.right) * tNs / durNs; }
function tOf(x) { return Math.min(durNs, Math.max(0, (x - TL.left) / (TL.width - TL.left - TL.right) * durNs)); }

// A line split at its gaps: a null value is a sample without one (an interval with no timed
// allocator call), drawn as a gap, not a ramp.
function pathOf(s, y) {
  const t = s.t, v = s.v;
  let d = "";
  for (let i = 0; i < t.length; i++) {
    if (v[i] === null) continue;
    const gap = i === 0 || v[i - 1] === null;
    d += (gap ? "M" : "L") + xOf(t[i] * 1e9).toFixed(1) + "," + y(v[i]).toFixed(1);
  }
  return d;
}

// Indices of values with a gap (or nothing) on both sides.
function isolated(s) {
  const v = s.v, out = [];
  for (let i = 0; i < v.length; i++) {
    if (v[i] === null) continue;
    if ((i === 0 || v[i - 1] === null) && (i === v.length - 1 || v[i + 1] === null)) out.push(i);
  }
  return out;
}
function drawTimeline() {
  const box = document.getElementById("panels");
  box.textContent = "";
  TL.width = Math.max(600, box.clientWidth || 900);
  TL.panels = [];
  const defs = panelDefs();
  if (!defs.length) {
    box.appendChild(el("p", { class: "hint" }, "No timeline samples in this profile: the time range cannot be selected."));
    return;
  }
  const tu = timeUnit();
  const tt = ticks(durNs / tu.div, 8, false);
  defs.forEach((def, pi) => {
    const wrap = el("div", { class: "panel", "data-panel": def.title });
    wrap.appendChild(el("div", { class: "ptitle" }, def.title));
    const legend = el("div", { class: "legend" });
    for (const l of def.lines) {
      const item = el("span");
      const sw = el("i", { class: l.dash ? "dash" : "" });
      sw.style.background = l.color; sw.style.color = l.color;
      item.appendChild(sw); item.appendChild(document.createTextNode(l.label));
      legend.appendChild(item);
    }
    if (def.ref) {
      const item = el("span"); const sw = el("i", { class: "dash" });
      sw.style.color = "#444"; item.appendChild(sw); item.appendChild(document.createTextNode(def.ref.label));
      legend.appendChild(item);
    }
    wrap.appendChild(legend);
    const last = pi === defs.length - 1;
    const h = TL.height + (last ? TL.bottom : 6);
    const svg = svgEl("svg", { class: "chart", width: TL.width, height: h });
    let max = 0;
    for (const l of def.lines) for (const v of l.s.v) if (v > max) max = v;
    if (def.ref) max = Math.max(max, def.ref.value);
    const yt = ticks(max > 0 ? max * 1.05 : 1, 4, def.unit === "bytes" || def.unit === "bps");
    const yMax = Math.max(yt.values[yt.values.length - 1], max * 1.02, 1e-9);
    const plotH = TL.height - TL.top;
    const y = v => TL.top + plotH * (1 - v / yMax);
    const fmt = valueFormatter(def.unit);
    for (const v of yt.values) {
      svg.appendChild(svgEl("line", { x1: TL.left, x2: TL.width - TL.right, y1: y(v), y2: y(v), stroke: "#eceff2" }));
      const tx = svgEl("text", { x: TL.left - 6, y: y(v) + 4, "text-anchor": "end" });
      tx.textContent = fmt(v); svg.appendChild(tx);
    }
    for (const v of tt.values) {
      const x = xOf(v * tu.div);
      svg.appendChild(svgEl("line", { x1: x, x2: x, y1: TL.top, y2: TL.height, stroke: "#f2f4f6" }));
      if (last) {
        const tx = svgEl("text", { x, y: TL.height + 16, "text-anchor": "middle" });
        tx.textContent = +v.toFixed(6) + " " + tu.name; svg.appendChild(tx);
      }
    }
    svg.appendChild(svgEl("line", { x1: TL.left, x2: TL.width - TL.right, y1: TL.height, y2: TL.height, stroke: "#9aa5ae" }));
    const sel = svgEl("rect", { class: "brush", y: TL.top, height: plotH, fill: "rgba(31,119,180,0.14)", stroke: "#1f77b4", "stroke-width": 1, visibility: "hidden" });
    svg.appendChild(sel);
    if (def.ref) {
      svg.appendChild(svgEl("line", { x1: TL.left, x2: TL.width - TL.right, y1: y(def.ref.value), y2: y(def.ref.value), stroke: "#444", "stroke-dasharray": "6 4" }));
      const tx = svgEl("text", { x: TL.width - TL.right - 4, y: y(def.ref.value) - 4, "text-anchor": "end" });
      tx.textContent = def.ref.label; svg.appendChild(tx);
    }
    // Dashed lines (an interval's max) first, so the p99 beside them stays visible on top.
    for (const l of [...def.lines].sort((a, b) => (b.dash ? 1 : 0) - (a.dash ? 1 : 0))) {
      const attrs = { d: pathOf(l.s, y), fill: "none", stroke: l.color, "stroke-width": l.width || 1.6 };
      if (l.dash) attrs["stroke-dasharray"] = "4 3";
      svg.appendChild(svgEl("path", attrs));
      // A sample with no neighbour to join is drawn as a dot, not left invisible.
      for (const i of isolated(l.s)) {
        svg.appendChild(svgEl("circle", { cx: xOf(l.s.t[i] * 1e9), cy: y(l.s.v[i]), r: 2.5, fill: l.color }));
      }
    }
    const cursor = svgEl("line", { y1: TL.top, y2: TL.height, stroke: "#555", visibility: "hidden" });
    svg.appendChild(cursor);
    wrap.appendChild(svg);
    box.appendChild(wrap);
    TL.panels.push({ def, svg, sel, cursor, fmt });
    attachBrush(svg);
  });
  showSelection();
}

function bucketAt(tNs, end) {
  for (let b = 0; b < nBuckets; b++) {
    if (end ? B.end_ns[b] >= tNs : B.end_ns[b] > tNs) return b;
  }
  return nBuckets - 1;
}
function attachBrush(svg) {
  let x0 = null;
  const local = e => e.clientX - svg.getBoundingClientRect().left;
  svg.addEventListener("mousedown", e => {
    e.preventDefault();
    x0 = local(e);
    const move = ev => drawBrush(Math.min(x0, local(ev)), Math.max(x0, local(ev)));
    const up = ev => {
      window.removeEventListener("mousemove", move);
      window.removeEventListener("mouseup", up);
      const x1 = local(ev);
      const a = Math.min(x0, x1), b = Math.max(x0, x1);
      x0 = null;
      if (b - a < 3) { showSelection(); return; }
      selectRange(bucketAt(tOf(a), false), bucketAt(tOf(b), true));
    };
    window.addEventListener("mousemove", move);
    window.addEventListener("mouseup", up);
  });
  svg.addEventListener("dblclick", () => selectRange(0, nBuckets - 1));
  svg.addEventListener("mousemove", e => hover(local(e), e));
  svg.addEventListener("mouseleave", () => {
    document.getElementById("tl-tip").hidden = true;
    for (const p of TL.panels) p.cursor.setAttribute("visibility", "hidden");
  });
}
function drawBrush(a, b) {
  for (const p of TL.panels) {
    p.sel.setAttribute("x", a); p.sel.setAttribute("width", Math.max(1, b - a));
    p.sel.setAttribute("visibility", "visible");
  }
}
function selectRange(b0, b1) {
  state.b0 = Math.max(0, Math.min(b0, b1));
  state.b1 = Math.min(nBuckets - 1, Math.max(b0, b1));
  if (flame) flame.zoom = -1;
  recompute();
  showSelection();
  changed("range");
}
function showSelection() {
  const full = state.b0 === 0 && state.b1 === nBuckets - 1;
  const a = B.start_ns[state.b0], b = B.end_ns[state.b1];
  if (full) for (const p of TL.panels) p.sel.setAttribute("visibility", "hidden");
  else drawBrush(xOf(a), xOf(b));
  const box = document.getElementById("selection");
  box.dataset.b0 = state.b0; box.dataset.b1 = state.b1;
  box.dataset.seqLo = B.seq_lo[state.b0];
  box.dataset.seqHi = B.seq_hi[state.b1] === null ? "" : B.seq_hi[state.b1];
  const alloc = total("allocated"), calls = total("allocations");
  box.textContent = (full ? "Whole run, " : "Selection ") + fmtNs(a) + " – " + fmtNs(b) +
    (full ? "" : " of " + fmtNs(durNs)) + ": " + fmtCount(calls) + " allocation calls, " +
    fmtBytesExact(alloc) + " allocated; live at its end " + fmtBytes(total("live"));
}
function hover(x, e) {
  const t = tOf(x) / 1e9;
  const tip = document.getElementById("tl-tip");
  let html = "<b>" + fmtNs(t * 1e9) + "</b>";
  for (const p of TL.panels) {
    p.cursor.setAttribute("x1", x); p.cursor.setAttribute("x2", x);
    p.cursor.setAttribute("visibility", x >= TL.left ? "visible" : "hidden");
    for (const l of p.def.lines) {
      const ts = l.s.t;
      let lo = 0, hi = ts.length - 1;
      while (lo < hi) { const m = (lo + hi) >> 1; if (ts[m] < t) lo = m + 1; else hi = m; }
      if (lo > 0 && Math.abs(ts[lo - 1] - t) < Math.abs(ts[lo] - t)) lo--;
      html += "<br>" + esc(l.label) + ": " + (l.s.v[lo] === null ? "no value (no timed call)" : p.fmt(l.s.v[lo]));
    }
  }
  tip.innerHTML = html;
  tip.hidden = false;
  tip.style.left = (e.clientX + 14) + "px";
  tip.style.top = (e.clientY + 10) + "px";
}
