// A stacked bar chart as plain SVG: one bar per day, one colour per series.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2f6fdb", "#e0892b", "#23864b", "#b03a8c", "#6b5bd2", "#c23b31",
                 "#1a9aa0", "#8a6d3b", "#5c6b7a", "#9bb62d"];

function svgEl(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * Draw `series` ({name: [value per day]}) over `days` (["2026-01-31", ...]) as stacked bars.
 * Returns the <svg>; its data-total attribute is the sum of every value.
 */
function stackedBars(days, series, unit) {
  const W = 600, H = 220, left = 48, bottom = 28, top = 8, right = 8;
  const names = Object.keys(series);
  const totals = days.map((_, i) => names.reduce((s, n) => s + (series[n][i] || 0), 0));
  const max = Math.max(1, ...totals);
  const step = niceStep(max / 4);
  const yMax = Math.ceil(max / step) * step;
  const y = v => top + (H - top - bottom) * (1 - v / yMax);
  const bw = (W - left - right) / days.length;
  const svg = svgEl("svg", {viewBox: `0 0 ${W} ${H}`, role: "img",
                            "data-total": String(totals.reduce((a, b) => a + b, 0))});
  for (let v = 0; v <= yMax; v += step) {
    svg.append(svgEl("line", {x1: left, x2: W - right, y1: y(v), y2: y(v), stroke: "#e6e8ee"}));
    svg.append(svgEl("text", {x: left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11,
                              fill: "#677085"}, compact(v)));
  }
  days.forEach((day, i) => {
    let base = 0;
    names.forEach((name, k) => {
      const v = series[name][i] || 0;
      if (!v) return;
      const rect = svgEl("rect", {x: left + i * bw + 1, width: Math.max(1, bw - 2),
                                  y: y(base + v), height: y(base) - y(base + v),
                                  fill: PALETTE[k % PALETTE.length], "data-series": name,
                                  "data-day": day, "data-value": v});
      rect.append(svgEl("title", {}, `${day} · ${name}: ${v} ${unit}`));
      svg.append(rect);
      base += v;
    });
    if (i % 5 === 0 || i === days.length - 1) {
      svg.append(svgEl("text", {x: left + i * bw + bw / 2, y: H - 10, "text-anchor": "middle",
                                "font-size": 11, fill: "#677085"}, day.slice(5)));
    }
  });
  return svg;
}

function legend(names) {
  const div = document.createElement("div");
  div.className = "legend";
  names.forEach((name, k) => {
    const span = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = PALETTE[k % PALETTE.length];
    span.append(swatch, name);
    div.append(span);
  });
  return div;
}

function niceStep(raw) {
  const mag = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
  for (const m of [1, 2, 5, 10]) if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

function compact(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + "k";
  return String(v);
}

window.GatewayChart = {stackedBars, legend};
