// The page's data and the selection's per-stack sums.
const D = JSON.parse(document.getElementById("profile-data").textContent);
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

const state = { b0: 0, b1: nBuckets - 1, metric: "allocated", listeners: [] };
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
