// The page's flamegraph: the selection's values of the chosen metric on the shared component.
let flame = null;
function drawFlame() {
  const m = state.metric;
  document.getElementById("flame-status").dataset.metric = m;
  flame.opts.emptyText = "Nothing to show: no " + METRICS[m].title + " in the selected range.";
  flame.set({
    parent: nodes.parent,
    name: n => frameName(nodes.frame[n]),
    loc: n => frameLoc(nodes.frame[n]),
    value: nodeVals[m],
    unit: METRICS[m].bytes ? "bytes" : "count",
    label: METRICS[m].title,
    format: v => fmtMetric(m, v),
    extra: n => "<br>allocated in the range: " + fmtBytes(nodeVals.allocated[n]) + " in " + fmtCount(nodeVals.allocations[n]) + " calls",
  });
}
function attachFlame() {
  const $ = id => document.getElementById(id);
  flame = new Flame({ graph: $("flame-graph"), tip: $("flame-tip"), status: $("flame-status"), searchStatus: $("search-status"),
    search: $("search"), unzoom: $("unzoom"), icicle: $("icicle") }, { onPick: n => chooseFunction(nodeFn[n]) });
  $("metric").addEventListener("change", e => { state.metric = e.target.value; changed("metric"); });
}
