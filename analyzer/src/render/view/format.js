"use strict";
// Number formatting (thousands separators, binary units), 1-2-5 ticks and DOM helpers.
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
  if (a === 0) return "0";
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
  // Up to the first tick at or above the maximum, so the top of the data is never cut.
  const n = Math.max(1, Math.ceil(max / step - 1e-9));
  for (let i = 0; i <= n; i++) out.push(i * step);
  return { step, values: out };
}

