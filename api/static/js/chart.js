// uPlot wrappers (vendor/uPlot.iife.min.js, MIT): the site's emissions chart and the queue's
// live backlog/lag chart and its history charts. Charts follow their container's width and the page's colours.

import { activeZone, count, duration, mass, massAxis, timeParts, utc } from "./format.js";

const uPlot = window.uPlot;
// Ticks fall on the hours and days of the zone the header's switch chose (UTC by default); a
// switch remounts the page, so the charts are rebuilt in the new zone.
const UTC = (ts) => uPlot.tzDate(new Date(ts * 1e3), activeZone() || "Etc/UTC");

function colours() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    text: v("--muted"), grid: v("--grid"), series: v("--chart-1"), seriesFill: v("--chart-1-fill"),
    second: v("--chart-2"), limit: v("--danger"), budget: v("--muted"),
  };
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n) => String(n).padStart(2, "0");

/** Time ticks in the chosen zone (UTC by default), 24-hour clock: the date is written where
 * the day changes. */
function timeValues(u, splits, axisIdx, space, incr) {
  return splits.map((ts, i) => {
    const t = timeParts(new Date(ts * 1000));
    const day = `${t.day} ${MONTHS[t.month - 1]}`;
    const hm = `${pad(t.hour)}:${pad(t.minute)}`;
    if (incr < 60) return `${hm}:${pad(t.second)}`;
    if (incr < 86400) return hm === "00:00" || i === 0 ? `${hm}\n${day}` : hm;
    if (incr < 28 * 86400) return day;
    return t.month === 1 || i === 0 ? `${MONTHS[t.month - 1]}\n${t.year}` : MONTHS[t.month - 1];
  });
}

function axis(c, extra = {}) {
  return {
    stroke: c.text, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid, width: 1 },
    font: "12px system-ui, sans-serif", ...extra,
  };
}

/** With no cursor on the chart, the legend shows the newest values instead of dashes. */
function legendAtEnd(chart) {
  const n = chart.data[0].length;
  if (n && chart.cursor.idx === null) chart.setLegend({ idx: n - 1 });
}

function follow(container, chart, height) {
  const observer = new ResizeObserver(() => {
    const width = Math.max(240, Math.floor(container.clientWidth));
    if (width !== chart.width) chart.setSize({ width, height });
  });
  observer.observe(container);
  return () => observer.disconnect();
}

/**
 * Emissions of a site.
 * mode "rate": bars of kg per hour over [from, to), and the limit pace (kg/h) as a dashed line.
 * mode "cumulative": kg since 1 Jan (UTC) over the whole year, against the annual limit
 * (dashed) and the even-pace budget from 0 to the limit (dotted).
 */
export function siteChart(container, { mode, from, to, hours, limitKg, yearStart, yearEnd, height = 280, fmt = mass, axisFmt = massAxis }) {
  // hours[].total_kg and limitKg are in the unit shown (kg CH₄, or t CO₂e); fmt formats it.
  const c = colours();
  const hoursInYear = (yearEnd - yearStart) / 3600;
  let data;
  let series;
  let range;
  if (mode === "rate") {
    const start = Math.floor(from / 3600) * 3600;
    const byHour = new Map(hours.map((p) => [Date.parse(p.hour) / 1000, p.total_kg]));
    const xs = [];
    for (let t = start; t < to; t += 3600) xs.push(t);
    const pace = limitKg / hoursInYear;
    data = [xs, xs.map((t) => (byHour.has(t) ? byHour.get(t) : null)), xs.map(() => pace)];
    series = [
      { value: (u, v) => (v === null ? "—" : utc(new Date(v * 1000), { seconds: false })) },
      {
        label: "Emitted per hour", stroke: c.series, fill: c.seriesFill, width: 1,
        paths: uPlot.paths.bars({ size: [0.8, 28], gap: 1 }), points: { show: false },
        value: (u, v) => (v === null ? "—" : `${fmt(v)}/h`),
      },
      { label: "Limit pace", stroke: c.limit, width: 1.5, dash: [6, 4], points: { show: false },
        value: (u, v) => (v === null ? "—" : `${fmt(v)}/h`) },
    ];
    range = [from, to];
  } else {
    const xs = [yearStart];
    const cum = [0];
    let sum = 0;
    for (const p of hours) {
      sum += p.total_kg;
      xs.push(Date.parse(p.hour) / 1000 + 3600); // the total is reached at the end of the hour
      cum.push(sum);
    }
    const nowX = Math.min(to, yearEnd);
    if (xs[xs.length - 1] < nowX) {
      xs.push(nowX);
      cum.push(sum);
    }
    xs.push(yearEnd);
    cum.push(null);
    const budget = xs.map((t) => (limitKg * (t - yearStart)) / (yearEnd - yearStart));
    data = [xs, cum, xs.map(() => limitKg), budget];
    series = [
      { value: (u, v) => (v === null ? "—" : utc(new Date(v * 1000), { seconds: false })) },
      { label: "Emitted this year", stroke: c.series, fill: c.seriesFill, width: 2,
        paths: uPlot.paths.stepped({ align: 1 }), points: { show: false },
        value: (u, v) => (v === null ? "—" : fmt(v)) },
      { label: "Annual limit", stroke: c.limit, width: 1.5, dash: [6, 4], points: { show: false },
        value: (u, v) => (v === null ? "—" : fmt(v)) },
      { label: "Even-pace budget", stroke: c.budget, width: 1, dash: [2, 3], points: { show: false },
        value: (u, v) => (v === null ? "—" : fmt(v)) },
    ];
    range = [yearStart, yearEnd];
  }
  const opts = {
    width: Math.max(240, container.clientWidth),
    height,
    tzDate: UTC,
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    scales: { x: { time: true, auto: false, range }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] } },
    axes: [axis(c, { values: timeValues, space: 60 }), axis(c, { size: 64, values: (u, vals) => vals.map(axisFmt) })],
    series,
    legend: { live: true },
    hooks: { setCursor: [(u) => legendAtEnd(u)] },
  };
  const chart = new uPlot(opts, data, container);
  legendAtEnd(chart);
  const unfollow = follow(container, chart, height);
  return { destroy: () => { unfollow(); chart.destroy(); } };
}

/** Backlog (events) and lag (seconds) over the last `windowS`, from client-side history. The
 * time axis grows with the samples (at least a minute) until it spans the whole window. */
export function queueChart(container, { windowS, height = 220 }) {
  const c = colours();
  let first = null;
  const opts = {
    width: Math.max(240, container.clientWidth),
    height,
    tzDate: UTC,
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    scales: {
      x: {
        time: true, auto: false,
        range: () => {
          const now = Date.now() / 1000;
          return [Math.max(now - windowS, Math.min(first ?? now, now - 60)), now];
        },
      },
      events: { range: (u, min, max) => [0, Math.max(5, max * 1.15)] },
      s: { range: (u, min, max) => [0, Math.max(2, max * 1.15)] },
    },
    axes: [
      axis(c, { values: timeValues, space: 70 }),
      axis(c, { scale: "events", size: 56, values: (u, vals) => vals.map((v) => count(v)) }),
      axis(c, { scale: "s", side: 1, size: 64, grid: { show: false }, values: (u, vals) => vals.map((v) => duration(v)) }),
    ],
    series: [
      { value: (u, v) => (v === null ? "—" : utc(new Date(v * 1000))) },
      { label: "Backlog (pending + backoff)", scale: "events", stroke: c.series, fill: c.seriesFill, width: 2,
        points: { show: false }, value: (u, v) => (v === null ? "—" : `${count(v)} events`) },
      { label: "Dead", scale: "events", stroke: c.limit, width: 1.5, points: { show: false },
        value: (u, v) => (v === null ? "—" : count(v)) },
      { label: "Lag (oldest pending)", scale: "s", stroke: c.second, width: 1.5, dash: [5, 3],
        points: { show: false }, value: (u, v) => (v === null ? "—" : duration(v)) },
    ],
    legend: { live: true },
    hooks: { setCursor: [(u) => legendAtEnd(u)] },
  };
  const chart = new uPlot(opts, [[], [], [], []], container);
  const unfollow = follow(container, chart, height);
  return {
    update(history) {
      first = history.length ? history[0].t : null;
      chart.setData([
        history.map((p) => p.t), history.map((p) => p.backlog), history.map((p) => p.dead),
        history.map((p) => p.lag),
      ]);
      legendAtEnd(chart);
    },
    destroy: () => { unfollow(); chart.destroy(); },
  };
}

/**
 * A time series over a fixed x range (the queue's history): one or two y scales, each series
 * `{ label, scale, colour: "series" | "second" | "limit" | "budget", fill, dash, fmt }`. Null
 * values are gaps (no samples). update(xs, columns, [from, to]) redraws.
 */
export function seriesChart(container, { series, scales, height = 180 }) {
  const c = colours();
  let range = [Date.now() / 1000 - 3600, Date.now() / 1000];
  const axes = [axis(c, { values: timeValues, space: 70 })];
  const scaleOpts = { x: { time: true, auto: false, range: () => range } };
  scales.forEach((s, i) => {
    scaleOpts[s.key] = { range: (u, min, max) => [0, Math.max(s.min ?? 1, (max ?? 0) * 1.15)] };
    axes.push(axis(c, {
      scale: s.key, size: 72, side: i === 0 ? 3 : 1, grid: { show: i === 0 },
      values: (u, vals) => vals.map((v) => s.fmt(v)),
    }));
  });
  const opts = {
    width: Math.max(240, container.clientWidth),
    height,
    tzDate: UTC,
    cursor: { drag: { x: false, y: false }, points: { size: 6 } },
    scales: scaleOpts,
    axes,
    series: [
      { value: (u, v) => (v === null ? "—" : utc(new Date(v * 1000))) },
      ...series.map((s) => ({
        label: s.label, scale: s.scale, stroke: c[s.colour], width: s.width ?? 1.5,
        // uPlot's default points: drawn where they have room, so a lone sample between gaps shows.
        fill: s.fill ? c.seriesFill : undefined, dash: s.dash,
        value: (u, v) => (v === null || v === undefined ? "—" : s.fmt(v)),
      })),
    ],
    legend: { live: true },
    hooks: { setCursor: [(u) => legendAtEnd(u)] },
  };
  const chart = new uPlot(opts, [[], ...series.map(() => [])], container);
  const unfollow = follow(container, chart, height);
  return {
    update(xs, columns, xRange) {
      range = xRange;
      chart.setData([xs, ...columns]);
      legendAtEnd(chart);
    },
    destroy: () => { unfollow(); chart.destroy(); },
  };
}
