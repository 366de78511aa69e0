// Drives the system's headless Chromium through puppeteer-core over a page written by
// `tidemark view`, as a person would use it, and prints what it saw as one JSON object on stdout.
// Used by analyzer/tests/view.rs, which holds the expectations.
//
// usage: node drive.mjs PAGE.html SCREENSHOT_DIR SEARCH_TERM
//        node drive.mjs --report REPORT.html SCREENSHOT_DIR SEARCH_TERM
//        node drive.mjs --smoke PAGE.html SCREENSHOT_DIR NAME   (load, screenshot, report errors)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import puppeteer from "puppeteer-core";

const argv = process.argv.slice(2);
const reportMode = argv[0] === "--report";
const smokeMode = argv[0] === "--smoke";
const [pagePath, shotDir, searchTerm] = reportMode || smokeMode ? argv.slice(1) : argv;
if (!pagePath || !shotDir || !searchTerm) {
  console.error("usage: node drive.mjs PAGE.html SCREENSHOT_DIR SEARCH_TERM");
  process.exit(2);
}
const chromium = process.env.TIDEMARK_CHROMIUM || "/usr/bin/chromium";
fs.mkdirSync(shotDir, { recursive: true });
const profileDir = fs.mkdtempSync(path.join(os.tmpdir(), "tidemark-chromium-"));
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  userDataDir: profileDir,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"],
});
const out = { console: [], pageErrors: [], requests: [] };
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const url = pathToFileURL(path.resolve(pagePath)).href;
  page.on("console", m => { if (m.type() === "error" || m.type() === "warn") out.console.push(m.type() + ": " + m.text()); });
  page.on("pageerror", e => out.pageErrors.push(String(e)));
  page.on("request", r => { if (r.url() !== url) out.requests.push(r.url()); });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("body[data-ready='1']", { timeout: 30000 });
  const shot = async (name, sel) => {
    const file = path.join(shotDir, name + ".png");
    if (sel) await (await page.$(sel)).screenshot({ path: file });
    else await page.screenshot({ path: file, fullPage: true });
  };
  // A real mouse click at the element's centre, once it is laid out and in view.
  const realClick = async sel => {
    for (let attempt = 0; ; attempt++) {
      const r = await page.$eval(sel, e => {
        e.scrollIntoView({ block: "center" });
        const b = e.getBoundingClientRect();
        return { x: b.left + b.width / 2, y: b.top + b.height / 2, w: b.width };
      });
      if (r.w > 0 || attempt >= 20) { await page.mouse.click(r.x, r.y); return; }
      await new Promise(done => setTimeout(done, 50));
    }
  };
  if (smokeMode) {
    await shot("smoke-" + searchTerm);
    // Use it a little: brush where a timeline is drawn, switch metrics and tabs.
    const r = await page.evaluate(() => {
      const c = document.querySelector("#panels svg.chart");
      if (!c) return null;
      c.scrollIntoView({ block: "center" });
      const b = c.getBoundingClientRect();
      return { x: b.left, y: b.top, width: b.width, height: b.height };
    });
    if (r) {
      await page.mouse.move(r.x + r.width * 0.4, r.y + r.height / 2);
      await page.mouse.down();
      await page.mouse.move(r.x + r.width * 0.7, r.y + r.height / 2, { steps: 5 });
      await page.mouse.up();
    }
    for (const m of ["allocations", "live", "leaked", "temporary", "peak", "allocated"]) await page.select("#metric", m);
    for (const t of ["functions", "callers", "sites"]) await realClick(`.tabs button[data-tab='${t}']`);
    out.flame = await page.$eval("#flame-status", e => e.textContent);
    out.warnings = await page.$$eval("#warnings .warn", l => l.map(e => e.textContent));
    out.resources = await page.evaluate(() => performance.getEntriesByType("resource").map(e => e.name));
  }
  if (reportMode) {
    await shot("report");
    // Open every collapsed graph as a reader would, then search each flamegraph.
    const summaries = await page.$$eval("details > summary", l => l.length);
    for (let i = 1; i <= summaries; i++) await realClick(`details:nth-of-type(${i}) > summary`);
    out.graphs = [];
    for (const id of await page.$$eval(".flame-box", l => l.map(e => e.id))) {
      await page.type(`#${id} input[type=search]`, searchTerm);
      out.graphs.push(await page.$eval(`#${id}`, e => ({
        total: Number(e.querySelector(".status").dataset.total),
        sum: Number(e.querySelector(".search-status").dataset.sum),
        frames: e.querySelectorAll(".fr").length,
        matched: e.querySelectorAll(".fr.match").length,
      })));
      await shot("report-" + id, `#${id}`);
    }
    out.resources = await page.evaluate(() => performance.getEntriesByType("resource").map(e => e.name));
    await shot("report-open");
  }
  if (!reportMode && !smokeMode) {
  const sel = () => page.$eval("#selection", e => ({ ...e.dataset, text: e.textContent }));
  const flame = () => page.$eval("#flame-status", e => ({ total: Number(e.dataset.total), metric: e.dataset.metric, text: e.textContent }));
  await shot("page");
  await shot("timeline", "#timeline");
  await shot("flamegraph", "#flame");
  await shot("tables", "#tables");
  await shot("histograms", "#histograms");
  await shot("threads", "#threads");
  out.full = { selection: await sel(), flame: await flame() };

  // Search (whole run): which frames light up, and the sum.
  await page.type("#search", searchTerm);
  out.search = await page.evaluate(() => {
    const matched = [], unmatched = [];
    for (const d of document.querySelectorAll("#flame-graph .fr")) {
      const n = +d.dataset.node;
      if (n < 0) continue;
      (d.classList.contains("match") ? matched : unmatched).push(frameName(nodes.frame[n]));
    }
    const s = document.getElementById("search-status");
    return { sum: Number(s.dataset.sum), matched, unmatched, text: s.textContent };
  });
  await shot("flamegraph-search", "#flame");
  await page.click("#search", { clickCount: 3 });
  await page.keyboard.press("Backspace");

  // Brush a range on the first panel with real mouse events.
  const box = await page.$eval("#panels svg.chart", e => { const r = e.getBoundingClientRect(); return { x: r.left, y: r.top, w: r.width, h: r.height }; });
  await page.$eval("#panels", e => e.scrollIntoView());
  const box2 = await page.$eval("#panels svg.chart", e => { const r = e.getBoundingClientRect(); return { x: r.left, y: r.top, w: r.width, h: r.height }; });
  const plotLeft = box2.x + 78, plotW = box2.w - 78 - 14;
  const y = box2.y + box2.h / 2;
  await page.mouse.move(plotLeft + plotW * 0.30, y);
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) await page.mouse.move(plotLeft + plotW * (0.30 + 0.03 * i), y);
  await page.mouse.up();
  out.brushed = { selection: await sel(), flame: await flame(), box };
  // The hover tooltip over the timeline.
  await page.mouse.move(plotLeft + plotW * 0.5, y);
  out.timelineTip = await page.$eval("#tl-tip", e => (e.hidden ? "" : e.textContent));
  await shot("timeline-brushed", "#timeline");
  await shot("flamegraph-brushed", "#flame");

  // Hover and click (zoom) the widest frame under the root.
  const widest = await page.evaluate(() => {
    let best = null;
    for (const d of document.querySelectorAll("#flame-graph .fr")) {
      if (+d.dataset.node < 0) continue;
      const r = d.getBoundingClientRect();
      if (!best || r.width > best.w) best = { n: +d.dataset.node, w: r.width, x: r.left + r.width / 2, y: r.top + 8 };
    }
    return best;
  });
  if (widest) {
    await page.$eval(`#flame-graph .fr[data-node='${widest.n}']`, e => e.scrollIntoView({ block: "center" }));
    const r = await page.$eval(`#flame-graph .fr[data-node='${widest.n}']`, e => { const b = e.getBoundingClientRect(); return { x: b.left + b.width / 2, y: b.top + 8 }; });
    await page.evaluate(() => new Promise(done => requestAnimationFrame(() => done())));
    await page.mouse.move(2, 2);
    await page.mouse.move(r.x, r.y, { steps: 3 });
    await page.waitForFunction(() => !document.getElementById("flame-tip").hidden, { timeout: 30000 });
    out.flameTip = await page.$eval("#flame-tip", e => (e.hidden ? "" : e.textContent));
    await page.mouse.click(r.x, r.y);
    out.zoomed = await flame();
  }

  // Sort the sites table by calls, then reverse it.
  const column = async () => page.$$eval("#table-sites tr.row", rows => rows.map(r => Number(r.querySelector("td[data-v]:nth-child(3)").dataset.v)));
  await realClick("#table-sites th[data-key='allocations']");
  out.sortedDesc = await column();
  await realClick("#table-sites th[data-key='allocations']");
  out.sortedAsc = await column();
  await realClick("#table-sites tr.row");
  out.backtraces = await page.$$eval("#detail ol.backtrace", l => l.map(o => o.children.length));
  await shot("tables-sorted", "#tables");
  out.resources = await page.evaluate(() => performance.getEntriesByType("resource").map(e => e.name));
  }
} finally {
  await browser.close();
  fs.rmSync(profileDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(out) + "\n");
