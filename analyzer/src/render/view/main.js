// Header, cards and wiring.
function renderHeader() {
  const p = document.getElementById("process");
  p.textContent = (D.cmdline.length ? D.cmdline.join(" ") : D.exe) + " · pid " + D.pid + " · " + fmtNs(D.duration_ns) +
    (D.sampling_rate ? " · sampled, one sample per " + fmtBytes(D.sampling_rate) + " (estimates)" : "");
  const w = document.getElementById("warnings");
  const warns = (D.truncated ? ["Truncated profile: " + D.truncated + ". Numbers cover the recorded part only."] : []).concat(D.warnings);
  for (const t of warns) w.appendChild(el("div", { class: "warn" }, t));
  const c = document.getElementById("cards");
  const T = D.totals;
  const exact = n => n >= 1024 ? fmtCount(n) + " B" : "";
  const cards = [["Allocation calls", fmtCount(T.allocations), fmtCount(T.frees) + " frees"],
    ["Allocated", fmtBytes(T.allocated_bytes), exact(T.allocated_bytes)],
    ["Peak heap", fmtBytes(T.peak_bytes), exact(T.peak_bytes) + (T.peak_bytes >= 1024 ? " in " : "") + fmtCount(T.peak_blocks) + " blocks"],
    ["Leaked", fmtBytes(T.leaked_bytes), exact(T.leaked_bytes) + (T.leaked_bytes >= 1024 ? " in " : "") + fmtCount(T.leaked_allocations) + " blocks"],
    ["Temporary", fmtCount(T.temporary_allocations), fmtPct(T.temporary_allocations, T.allocations) + " of calls"],
    ["Threads", fmtCount(D.threads.length), fmtNs(D.duration_ns)]];
  for (const [k, v, sub] of cards) {
    const d = el("div", { class: "card", "data-card": k });
    d.appendChild(el("div", { class: "k" }, k)); d.appendChild(el("div", { class: "v" }, v));
    if (sub) d.appendChild(el("div", { class: "k" }, sub));
    c.appendChild(d);
  }
}
function renderAll() {
  drawFlame();
  renderTables();
  histogram("size-hist", "size", false);
  histogram("life-hist", "life", true);
  renderThreads();
}
recompute();
renderHeader();
drawTimeline();
attachFlame();
attachTables();
onChange(() => renderAll());
renderAll();
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  // Only a change of width needs a redraw (a resize event also comes with the first layout).
  resizeTimer = setTimeout(() => {
    const w = Math.max(600, document.getElementById("panels").clientWidth || 900);
    if (w !== TL.width) { drawTimeline(); renderAll(); }
  }, 150);
});
document.body.dataset.ready = "1";
