"use strict";
// Shared state, number formatting and the selection's per-stack sums.
const D = JSON.parse(document.getElementById("profile-data").textContent);
const SVGNS = "http://www.w3.org/2000/svg";

function fmtCount(n) {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
function fmtBytes(n) {
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  const sign = n < 0 ? "-" : "";
  let x = Math.abs(n);
  if (x < 1024) return sign + fmtCount(x) + " B";
  let u = -1;
  while (x >= 1024 && u < units.length - 1) { x /= 1024; u++; }
  return sign + (x >= 100 ? x.toFixed(0) : x.toFixed(1)) + " " + units[u];
}
// Exact bytes with separators after the human form: "12.3 MiB (12,897,485 B)".
function fmtBytesExact(n) {
  return Math.abs(n) < 1024 ? fmtBytes(n) : fmtBytes(n) + " (" + fmtCount(n) + " B)";
}
function fmtNs(ns) {
  const a = Math.abs(ns);
  if (a >= 60e9) return (ns / 60e9).toFixed(1) + " min";
  if (a >= 1e9) return +(ns / 1e9).toFixed(2) + " s";
  if (a >= 1e6) return +(ns / 1e6).toFixed(a >= 1e8 ? 0 : 1) + " ms";
  if (a >= 1e3) return +(ns / 1e3).toFixed(1) + " µs";
  return fmtCount(ns) + " ns";
}
function fmtPct(part, whole) {
  return whole > 0 ? (100 * part / whole).toFixed(1) + "%" : "0%";
}
function esc(s) {
  return String(s).replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function svgEl(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  return e;
}
// 1-2-5 steps: for bytes in binary units (1, 2, 5, 10, 20, 50 … × 1024^k, so labels read
// 2 MiB, 4 MiB, 6 MiB rather than 4.8 / 9.5 MiB), for everything else in decimal ones.
function niceStep(range, target, binary) {
  const raw = range / Math.max(1, target);
  if (raw <= 0) return 1;
  if (binary && raw >= 1024) {
    let unit = 1;
    while (raw / unit >= 1024) unit *= 1024;
    const x = raw / unit;
    for (const m of [1, 2, 5, 10, 20, 50, 100, 200, 500]) if (m >= x) return m * unit;
    return 1024 * unit;
  }
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
function ticks(max, target, binary) {
  const step = niceStep(max, target, binary);
  const out = [];
  for (let v = 0; v <= max * 1.0001; v += step) out.push(v);
  return { step, values: out };
}

const strings = D.strings;
const frames = D.frames;
const nodes = D.nodes;
const nNodes = nodes.parent.length;
const stacks = D.stacks;
const nStacks = stacks.node.length;
const B = D.buckets || { start_ns: [0], end_ns: [D.duration_ns], seq_lo: [0], seq_hi: [null], cell_width: 8, cells: [[]], size: [[]], life: [[]], threads: [[]] };
const nBuckets = B.start_ns.length;
const nodeFn = new Int32Array(nNodes);
for (let i = 0; i < nNodes; i++) nodeFn[i] = frames.fn[nodes.frame[i]];
const children = Array.from({ length: nNodes }, () => []);
const roots = [];
for (let i = 0; i < nNodes; i++) {
  const p = nodes.parent[i];
  if (p < 0) roots.push(i); else children[p].push(i);
}
function frameName(f) { return strings[frames.fn[f]]; }
function frameLoc(f) {
  const file = strings[frames.file[f]];
  return file ? file + (frames.line[f] ? ":" + frames.line[f] : "") : "";
}

const METRICS = {
  allocated: { title: "allocated", bytes: true },
  allocations: { title: "allocations", bytes: false },
  live: { title: "live at end", bytes: true },
  leaked: { title: "leaked", bytes: true },
  temporary: { title: "temporary", bytes: false },
  peak: { title: "at peak", bytes: true },
};
const METRIC_KEYS = Object.keys(METRICS);
function fmtMetric(m, v) { return METRICS[m].bytes ? fmtBytes(v) : fmtCount(v); }

const state = { b0: 0, b1: nBuckets - 1, metric: "allocated", zoom: -1, search: "", listeners: [] };
function onChange(f) { state.listeners.push(f); }
function changed(what) { for (const f of state.listeners) f(what); }

// Per-stack sums of the selected buckets, for every metric.
function stackSums() {
  const s = {};
  for (const k of METRIC_KEYS) s[k] = new Float64Array(nStacks);
  const w = B.cell_width;
  for (let b = 0; b <= state.b1; b++) {
    const c = B.cells[b];
    const inRange = b >= state.b0;
    for (let i = 0; i < c.length; i += w) {
      const st = c[i];
      s.live[st] += c[i + 2] - c[i + 4];
      if (!inRange) continue;
      s.allocations[st] += c[i + 1];
      s.allocated[st] += c[i + 2];
      s.temporary[st] += c[i + 5];
      s.leaked[st] += c[i + 7];
    }
  }
  for (let i = 0; i < nStacks; i++) s.peak[i] = stacks.peak[i];
  return s;
}
// Inclusive per-node values from per-stack values (a parent's index is below its children's).
function nodeValues(perStack) {
  const v = new Float64Array(nNodes);
  for (let i = 0; i < nStacks; i++) {
    const n = stacks.node[i];
    if (n >= 0) v[n] += perStack[i];
  }
  for (let i = nNodes - 1; i >= 0; i--) {
    const p = nodes.parent[i];
    if (p >= 0) v[p] += v[i];
  }
  return v;
}
let sums = null;
let nodeVals = {};
function recompute() {
  sums = stackSums();
  nodeVals = {};
  for (const k of METRIC_KEYS) nodeVals[k] = nodeValues(sums[k]);
}
function total(m) {
  let t = 0;
  for (const r of roots) t += nodeVals[m][r];
  return t;
}
