// The flamegraph / icicle component, shared by the page and the comparison report.
//
// new Flame(parts, opts) draws a call tree given as parent-pointer arrays (a parent's index below
// its children's): names, locations and inclusive values per node, optionally the values before
// (a differential graph: widths of the new profile, red grew, blue shrank). Hover shows value, share and file:line; click
// zooms (the top row or "Reset zoom" goes back); search highlights matching frames and sums them,
// each allocation counted once (a match under a match is not added again).
const FLAME_ROW_PX = 18;
function flameHue(name) {
  let h = 0;
  for (let k = 0; k < name.length; k++) h = (h * 31 + name.charCodeAt(k)) >>> 0;
  return "rgb(" + (205 + (h % 50)) + "," + (120 + ((h >> 8) % 90)) + "," + (30 + ((h >> 16) % 50)) + ")";
}
function flameDiffColor(before, after) {
  const base = Math.max(before, after, 1);
  const d = (after - before) / base;
  const k = Math.min(1, Math.abs(d));
  const c = Math.round(235 - 150 * k);
  return d >= 0 ? "rgb(245," + c + "," + c + ")" : "rgb(" + c + "," + c + ",245)";
}
function flameRegex(text) {
  if (!text) return null;
  try { return new RegExp(text, "i"); } catch (e) {
    return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i");
  }
}
class Flame {
  // parts: { graph, tip, status, searchStatus, search, unzoom, icicle } elements (some optional).
  constructor(parts, opts) {
    this.p = parts;
    this.opts = opts || {};
    this.zoom = -1;
    this.term = "";
    this.tree = null;
    parts.graph.classList.add("flame-graph");
    parts.graph.addEventListener("mousemove", e => this.hover(e));
    parts.graph.addEventListener("mouseleave", () => { parts.tip.hidden = true; });
    parts.graph.addEventListener("click", e => {
      const t = e.target.closest(".fr");
      if (!t) return;
      const n = +t.dataset.node;
      this.zoom = n === this.zoom ? (n >= 0 ? this.tree.parent[n] : -1) : n;
      this.draw();
      if (n >= 0 && this.opts.onPick) this.opts.onPick(n);
    });
    if (parts.unzoom) parts.unzoom.addEventListener("click", () => { this.zoom = -1; this.draw(); });
    if (parts.icicle) parts.icicle.addEventListener("change", () => this.draw());
    if (parts.search) parts.search.addEventListener("input", e => { this.term = e.target.value.trim(); this.highlight(); });
  }
  // tree: { parent, name(n), loc(n), value: Float64Array, before?: Float64Array, format(v), unit, extra?(n) }
  set(tree) {
    this.tree = tree;
    const n = tree.parent.length;
    this.children = Array.from({ length: n }, () => []);
    this.roots = [];
    for (let i = 0; i < n; i++) (tree.parent[i] < 0 ? this.roots : this.children[tree.parent[i]]).push(i);
    this.draw();
  }
  total(v) {
    let t = 0;
    for (const r of this.roots) t += v[r];
    return t;
  }
  draw() {
    const T = this.tree, box = this.p.graph, v = T.value;
    box.textContent = "";
    const tot = this.total(v);
    const width = Math.max(300, box.clientWidth || 900);
    const icicle = this.p.icicle ? this.p.icicle.checked : true;
    const status = this.p.status;
    if (status) { status.dataset.total = tot; }
    if (tot <= 0) {
      if (status) status.textContent = "Total " + T.format(0) + ".";
      box.style.height = "auto";
      box.appendChild(el("div", { class: "empty" }, this.opts.emptyText || "Nothing to show."));
      this.highlight();
      return;
    }
    // Widths are the values (a differential graph draws the new profile, coloured by change).
    const size = i => v[i];
    const zoom = this.zoom >= 0 && size(this.zoom) > 0 ? this.zoom : -1;
    const chain = [];
    for (let a = zoom; a >= 0; a = T.parent[a]) chain.unshift(a);
    const base = zoom >= 0 ? size(zoom) : this.roots.reduce((s, r) => s + size(r), 0);
    if (status) status.textContent = "Total " + T.format(tot) + (T.unit === "bytes" ? " (" + fmtCount(tot) + " B)" : "") +
      (zoom >= 0 ? " — zoomed to " + T.name(zoom) + " (" + T.format(v[zoom]) + ", " + fmtPct(v[zoom], tot) + "); click the top row or Reset zoom to go back" : "");
    const items = [{ node: -1, depth: 0, x: 0, w: width, name: "all" }];
    chain.forEach((n, i) => items.push({ node: n, depth: i + 1, x: 0, w: width, name: T.name(n) }));
    const lay = (list, depth, x0, scale) => {
      let x = x0;
      const sorted = list.filter(c => size(c) > 0).sort((a, b) => T.name(a) < T.name(b) ? -1 : 1);
      for (const c of sorted) {
        const w = size(c) * scale;
        if (w >= 0.6) {
          items.push({ node: c, depth, x, w, name: T.name(c) });
          lay(this.children[c], depth + 1, x, scale);
        }
        x += w;
      }
    };
    lay(zoom >= 0 ? this.children[zoom] : this.roots, chain.length + 1, 0, width / base);
    const maxDepth = items.reduce((m, it) => Math.max(m, it.depth), 0);
    const height = (maxDepth + 1) * FLAME_ROW_PX;
    box.style.height = height + "px";
    const frag = document.createDocumentFragment();
    for (const it of items) {
      const d = el("div", { class: "fr", "data-node": it.node });
      d.style.left = it.x.toFixed(2) + "px";
      d.style.width = Math.max(0.5, it.w - 0.2).toFixed(2) + "px";
      d.style.top = (icicle ? it.depth * FLAME_ROW_PX : height - (it.depth + 1) * FLAME_ROW_PX) + "px";
      d.style.background = it.node < 0 ? "#e8ecef" : T.before ? flameDiffColor(T.before[it.node], v[it.node]) : flameHue(it.name);
      if (it.w > 30) d.textContent = it.name;
      frag.appendChild(d);
    }
    box.appendChild(frag);
    this.highlight();
  }
  tipHtml(n) {
    const T = this.tree, v = T.value, tot = this.total(v);
    if (n < 0) return "<b>all</b><br>" + T.format(tot) + (T.before ? " (before: " + T.format(this.total(T.before)) + ")" : "");
    const loc = T.loc(n);
    let h = "<b>" + esc(T.name(n)) + "</b>" + (loc ? "<br><span class=loc>" + esc(loc) + "</span>" : "");
    h += "<br>" + (T.label || "value") + ": " + (T.unit === "bytes" ? fmtBytesExact(v[n]) : fmtCount(v[n])) + " — " + fmtPct(v[n], tot) + " of the total";
    if (T.before) {
      const d = v[n] - T.before[n];
      h += "<br>before: " + T.format(T.before[n]) + " · change: " + (d >= 0 ? "+" : "−") + T.format(Math.abs(d));
    }
    if (T.extra) h += T.extra(n);
    return h;
  }
  hover(e) {
    const t = e.target.closest(".fr"), tip = this.p.tip;
    if (!t) { tip.hidden = true; return; }
    tip.innerHTML = this.tipHtml(+t.dataset.node);
    tip.hidden = false;
    tip.style.left = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 8) + "px";
    tip.style.top = (e.clientY + 14) + "px";
  }
  highlight() {
    const T = this.tree, re = flameRegex(this.term), out = this.p.searchStatus;
    if (!T) return;
    const n = T.parent.length, v = T.value;
    const matches = new Uint8Array(n);
    let sum = 0, matched = 0;
    if (re) {
      for (let i = 0; i < n; i++) {
        if (!re.test(T.name(i))) continue;
        matches[i] = 1;
        matched++;
        let under = false;
        for (let p = T.parent[i]; p >= 0; p = T.parent[p]) if (matches[p] || re.test(T.name(p))) { under = true; break; }
        if (!under) sum += v[i];
      }
    }
    for (const d of this.p.graph.querySelectorAll(".fr")) {
      const k = +d.dataset.node;
      d.classList.toggle("match", !!re && k >= 0 && matches[k] === 1);
    }
    if (!out) return;
    out.dataset.sum = sum;
    out.dataset.matched = matched;
    out.textContent = re ? "Search \"" + this.term + "\": " + fmtCount(matched) + " matching frames, " +
      T.format(sum) + " (" + fmtPct(sum, this.total(v)) + " of the total)" : "";
  }
}
