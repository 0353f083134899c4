// The queue page's history (samples the workers record every ~10 s, kept in Postgres, so they
// survive a reload): throughput, lag, backlog, dead and webhook deliveries over 15 min to 7 d, the range in the URL,
// live updates appended on each poll (pausable); and the workers table from the heartbeats.

import { Unreachable, get } from "../api.js";
import { badge, fill, h, reconcile, setText } from "../dom.js";
import { ago, count, duration, utc } from "../format.js";
import { seriesChart } from "../chart.js";
import { errorSlot } from "./common.js";

export const RANGES = [
  { key: "15m", label: "15 min", seconds: 15 * 60, step: 10 },
  { key: "1h", label: "1 h", seconds: 3600, step: 10 },
  { key: "24h", label: "24 h", seconds: 86400, step: 300 },
  { key: "7d", label: "7 d", seconds: 7 * 86400, step: 1800 },
];
const DEFAULT_RANGE = "1h";
const LIVE_EVERY_MS = 5000; // the workers sample every ~10 s: polling the tail faster adds nothing

const perMin = (v) => `${count(Math.round(v * 10) / 10)}/min`;
const events = (v) => count(Math.round(v));

const CHARTS = [
  {
    id: "throughput", title: "Throughput",
    scales: [{ key: "rate", fmt: perMin, min: 1 }],
    series: [
      { label: "Processed", scale: "rate", colour: "series", fill: true, width: 2, fmt: perMin, value: (p) => rate(p, p.processed) },
      { label: "Failed", scale: "rate", colour: "limit", fmt: perMin, value: (p) => rate(p, p.failed) },
    ],
  },
  {
    id: "lag", title: "Lag",
    scales: [{ key: "s", fmt: duration, min: 2 }],
    series: [{ label: "Oldest pending", scale: "s", colour: "second", width: 2, fmt: duration, value: (p) => p.oldest_pending_s }],
  },
  {
    id: "backlog", title: "Backlog",
    scales: [{ key: "events", fmt: events, min: 5 }],
    series: [
      { label: "Pending", scale: "events", colour: "series", fill: true, width: 2, fmt: events, value: (p) => p.pending },
      { label: "In backoff", scale: "events", colour: "second", dash: [5, 3], fmt: events, value: (p) => p.backoff },
    ],
  },
  {
    id: "dead", title: "Dead",
    scales: [{ key: "events", fmt: events, min: 5 }],
    series: [{ label: "Dead-lettered", scale: "events", colour: "limit", width: 2, fmt: events, value: (p) => p.dead }],
  },
  {
    id: "deliveries", title: "Webhook deliveries",
    scales: [{ key: "rate", fmt: perMin, min: 1 }],
    series: [
      { label: "Sent", scale: "rate", colour: "series", fill: true, width: 2, fmt: perMin, value: (p) => rate(p, p.deliveries_sent) },
      { label: "Failed", scale: "rate", colour: "second", dash: [5, 3], fmt: perMin, value: (p) => rate(p, p.deliveries_failed) },
      { label: "Dead", scale: "rate", colour: "limit", fmt: perMin, value: (p) => rate(p, p.deliveries_dead) },
    ],
  },
];

/** Events per minute in a bucket, over the seconds its samples cover. */
function rate(p, n) {
  return p.covered_s > 0 ? (n * 60) / p.covered_s : null;
}

/** Put `range` into the hash query, keeping the page's other parameters (no remount). */
function rememberRange(key) {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  params.set("range", key);
  history.replaceState(null, "", `#${path}?${params}`);
}

/** Charts of the queue's history; mount `el`, call refresh() on each poll, destroy() on unmount. */
export function historyPanel(params = {}) {
  let range = RANGES.find((r) => r.key === params.range) || RANGES.find((r) => r.key === DEFAULT_RANGE);
  let points = null; // null: not loaded (loading or failed), never shown as "no data"
  let paused = false;
  let lastLive = 0;
  let loading = null;
  let generation = 0;
  let sampleS = 10;
  let frozen = null; // the x range shown when live updates were paused
  const charts = new Map();
  const errors = errorSlot();
  const note = h("p", { class: "chart-note muted", id: "history-note", role: "status" }, "Loading history…");
  const rangeGroup = h("div", { class: "segmented", role: "radiogroup", "aria-label": "History range" },
    RANGES.map((r) => h("label", { class: "seg" },
      h("input", { type: "radio", name: "history-range", value: r.key, checked: r.key === range.key,
        onchange: () => { range = r; frozen = null; rememberRange(r.key); load().catch(() => {}); } }),
      h("span", {}, r.label))));
  const pause = h("button", { type: "button", class: "button small", id: "history-pause", "aria-pressed": "false",
    onclick: () => {
      paused = !paused;
      if (!paused) frozen = null;
      pause.setAttribute("aria-pressed", String(paused));
      setText(pause, paused ? "Resume live updates" : "Pause live updates");
      render();
      if (!paused) live();
    } }, "Pause live updates");
  const boxes = CHARTS.map((c) => {
    const box = h("div", { class: "chart chart-small", id: `history-${c.id}` });
    return { c, box, el: h("figure", { class: "history-chart" }, h("figcaption", {}, h("h3", {}, c.title)), box) };
  });
  const el = h("section", { class: "card", "aria-labelledby": "history-title", id: "queue-history" },
    h("div", { class: "card-head" }, h("h2", { id: "history-title" }, "History"), rangeGroup, pause),
    errors.el,
    h("div", { class: "history-grid" }, boxes.map((b) => b.el)),
    note);

  const url = (from, step) => `/v1/ops/queue/history?from=${encodeURIComponent(new Date(from * 1000).toISOString())}&step=${step}`;

  async function load() {
    const mine = ++generation;
    const now = Date.now() / 1000;
    const from = Math.floor((now - range.seconds) / range.step) * range.step;
    points = null;
    render();
    loading = (async () => {
      try {
        const body = await get(url(from, range.step));
        if (mine !== generation) return;
        points = body.points;
        sampleS = body.sample_s;
        lastLive = Date.now();
        errors.clear();
      } catch (err) {
        if (mine !== generation) return;
        if (err instanceof Unreachable) throw err;
        errors.show("Could not load the queue history", err);
      } finally {
        if (mine === generation) loading = null;
        render();
      }
    })();
    return loading;
  }

  /** Fetch the buckets from the newest one on (it may have grown) and append them. */
  async function live() {
    if (paused || points === null || loading) return;
    if (Date.now() - lastLive < LIVE_EVERY_MS) return;
    const mine = generation;
    const now = Date.now() / 1000;
    const start = Math.floor((now - range.seconds) / range.step) * range.step;
    const tailFrom = points.length ? Date.parse(points[points.length - 1].at) / 1000 : start;
    lastLive = Date.now();
    try {
      const body = await get(url(Math.max(tailFrom, start), range.step));
      if (mine !== generation || paused) return;
      const cut = Math.max(tailFrom, start);
      points = points.filter((p) => { const t = Date.parse(p.at) / 1000; return t >= start && t < cut; }).concat(body.points);
      errors.clear();
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      errors.show("Could not update the queue history", err);
    }
    render();
  }

  function render() {
    if (!window.uPlot) return;
    for (const { c, box } of boxes) {
      if (!charts.has(c.id)) charts.set(c.id, seriesChart(box, { series: c.series, scales: c.scales }));
    }
    const now = Date.now() / 1000;
    if (paused && !frozen) frozen = [now - range.seconds, now];
    const xRange = paused ? frozen : [now - range.seconds, now];
    const list = points || [];
    // A bucket without samples is a gap in the lines, not a straight line across it.
    const xs = [];
    const rows = [];
    list.forEach((p, i) => {
      const t = Date.parse(p.at) / 1000;
      if (i > 0 && t - xs[xs.length - 1] > range.step * 1.5) {
        xs.push(xs[xs.length - 1] + range.step);
        rows.push(null);
      }
      xs.push(t);
      rows.push(p);
    });
    for (const { c } of boxes) {
      charts.get(c.id).update(xs, c.series.map((s) => rows.map((p) => (p ? s.value(p) : null))), xRange);
    }
    el.dataset.points = points === null ? "" : String(list.length);
    el.dataset.last = list.length ? list[list.length - 1].at : "";
    if (points === null) {
      setText(note, loading ? "Loading history…" : "History unavailable.");
    } else if (!list.length) {
      setText(note, `No samples in the last ${range.label} yet: the workers record one every ${sampleS} s.`);
    } else {
      const first = list[0].at;
      setText(note, `${count(list.length)} points of ${duration(range.step)} since ${utc(first)}, sampled by the workers every ${sampleS} s` +
        (paused ? " · live updates paused." : " · updating live."));
    }
  }

  load().catch(() => {});
  return {
    el,
    async refresh() {
      if (loading) await loading.catch(() => {});
      else if (points === null) await load();
      else await live();
    },
    destroy() {
      generation += 1;
      for (const chart of charts.values()) chart.destroy();
    },
  };
}

/** The worker processes from their heartbeats: host, pid, started, last beat, events, claim. */
export function workersPanel() {
  const errors = errorSlot();
  const tbody = h("tbody");
  const table = h("table", { class: "table workers-table", hidden: true },
    h("caption", { class: "sr-only" }, "Worker processes"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Host"), h("th", { scope: "col", class: "num" }, "PID"),
      h("th", { scope: "col", class: "col-opt" }, "Started"), h("th", { scope: "col" }, "Last heartbeat"),
      h("th", { scope: "col", class: "num" }, "Events processed"), h("th", { scope: "col" }, "Current claim"),
      h("th", { scope: "col" }, "Status"))),
    tbody);
  const empty = h("p", { class: "empty", hidden: true }, "No worker has reported a heartbeat in the last 24 hours.");
  const loadingNote = h("p", { class: "muted" }, "Loading workers…");
  const more = h("p", { class: "muted small", hidden: true });
  const el = h("section", { class: "card", "aria-labelledby": "workers-title", id: "workers" },
    h("div", { class: "card-head" }, h("h2", { id: "workers-title" }, "Workers")),
    h("p", { class: "muted small" }, "Worker processes seen in the last 24 hours, from their heartbeats (every second); a worker is stale after 10 s without one."),
    errors.el, loadingNote,
    h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "workers-title" }, table, empty), more);

  function create() {
    return h("tr", {},
      h("td", { class: "w-host mono" }), h("td", { class: "w-pid num" }), h("td", { class: "w-started col-opt" }),
      h("td", { class: "w-seen" }), h("td", { class: "w-drained num" }), h("td", { class: "w-claim" }),
      h("td", { class: "w-status" }));
  }

  function update(row, w) {
    setText(row.querySelector(".w-host"), w.host);
    row.querySelector(".w-host").title = w.worker_id;
    setText(row.querySelector(".w-pid"), String(w.pid));
    setText(row.querySelector(".w-started"), utc(w.started_at));
    const seen = row.querySelector(".w-seen");
    setText(seen, ago(w.heartbeat_age_s));
    seen.title = utc(w.seen_at);
    setText(row.querySelector(".w-drained"), count(w.drained));
    const since = w.claim_since ? (Date.now() - Date.parse(w.claim_since)) / 1000 : null;
    setText(row.querySelector(".w-claim"), w.claim ? `${w.claim}${since !== null ? ` for ${duration(Math.max(0, since))}` : ""}` : "idle");
    const status = row.querySelector(".w-status");
    if (status.dataset.alive !== String(w.alive)) {
      status.dataset.alive = String(w.alive);
      fill(status, w.alive ? badge("Alive", "ok") : badge("Stale", "warning"));
    }
    row.classList.toggle("stale", !w.alive);
  }

  return {
    el,
    async refresh() {
      try {
        const body = await get("/v1/ops/workers");
        reconcile(tbody, body.items, (w) => w.worker_id, create, update);
        loadingNote.hidden = true;
        table.hidden = body.items.length === 0;
        empty.hidden = body.items.length > 0;
        more.hidden = !body.truncated;
        setText(more, `Showing the ${count(body.items.length)} most recently seen.`);
        errors.clear();
      } catch (err) {
        if (err instanceof Unreachable) throw err;
        setText(loadingNote, "Workers unavailable.");
        errors.show("Could not load the workers", err);
      }
    },
  };
}
