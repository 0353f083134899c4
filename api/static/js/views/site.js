// #/sites/ID: one site's figures, its emissions chart with the limit line, recent batches.

import { ApiError, Unreachable, get } from "../api.js";
import { badge, fill, h, reconcile, setText } from "../dom.js";
import { ago, count, mass, percent, shortId, utc, window as span } from "../format.js";
import { rememberSites } from "../store.js";
import { siteChart } from "../chart.js";
import {
  errorSlot,
  freshness,
  limitBar,
  statusBadge,
  tile,
  updateFreshness,
  updateLimitBar,
} from "./common.js";

const RANGES = [
  { key: "24h", label: "24 h", seconds: 24 * 3600 },
  { key: "7d", label: "7 d", seconds: 7 * 86400 },
  { key: "30d", label: "30 d", seconds: 30 * 86400 },
  { key: "year", label: "Year" },
];
const CHART_MAX_AGE_MS = 60_000; // redraw at least this often so the window keeps moving
let lastRange = "24h";

/** Where an outbox event stands, from its timestamps. */
export function eventState(e) {
  if (e.processed_at) return { text: "Applied", tone: "ok" };
  if (e.dead_at) return { text: "Dead", tone: "danger" };
  if (Date.parse(e.available_at) > Date.now()) return { text: "Retrying", tone: "warning" };
  return { text: "Pending", tone: "neutral" };
}

function yearBounds(now) {
  const y = now.getUTCFullYear();
  return [Date.UTC(y, 0, 1) / 1000, Date.UTC(y + 1, 0, 1) / 1000];
}

export function mount(root, params) {
  const id = params.id;
  let range = RANGES.some((r) => r.key === params.range) ? params.range : lastRange;
  let site = null;
  let chart = null;
  let chartKey = null;
  let chartAt = 0;
  const errors = errorSlot();

  const title = h("h1", { tabindex: "-1" }, `Site #${id}`);
  const status = h("span", { class: "head-badge" });
  const meta = h("p", { class: "muted" }, "Loading…");
  const tiles = {
    ytd: tile("Year to date"),
    limit: tile("Annual limit"),
    lifetime: tile("Lifetime"),
    last: tile("Last reading"),
    readings: tile("Readings"),
  };
  const bar = limitBar();
  tiles.ytd.sub.replaceChildren(bar);
  const fresh = freshness();
  tiles.last.value.replaceChildren(fresh);

  const rangeGroup = h("div", { class: "segmented", role: "radiogroup", "aria-label": "Chart range" },
    RANGES.map((r) => h("label", { class: "seg" },
      h("input", { type: "radio", name: "range", value: r.key, checked: r.key === range,
        onchange: () => { range = r.key; lastRange = r.key; drawChart(true); } }),
      h("span", {}, r.label))));
  const chartBox = h("div", { class: "chart", id: "site-chart" });
  const chartNote = h("p", { class: "chart-note muted" });
  const chartEmpty = h("p", { class: "chart-empty", hidden: true });

  const batchBody = h("tbody");
  const batchEmpty = h("p", { class: "empty", hidden: true }, "No batch has stored readings for this site yet.");
  const batches = h("table", { class: "table batches-table" },
    h("caption", { class: "sr-only" }, "Recent batches of this site"),
    h("thead", {}, h("tr", {},
      ["Event", "Received", "Device", "Stored", "Windows", "State", "Batch", "Request"].map((t, i) =>
        h("th", { scope: "col", class: i === 3 ? "num" : i >= 6 ? "col-opt" : "" }, t)))),
    batchBody);

  fill(root,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/sites" }, "Sites"), " / ", h("span", { class: "crumb-current" }, `#${id}`)),
    h("div", { class: "page-head" }, h("div", { class: "title-row" }, title, status), meta),
    errors.el,
    h("section", { class: "tiles", "aria-label": "Figures" }, Object.values(tiles).map((t) => t.el)),
    h("section", { class: "card", "aria-labelledby": "chart-title" },
      h("div", { class: "card-head" }, h("h2", { id: "chart-title" }, "Emissions"), rangeGroup),
      chartBox, chartEmpty, chartNote),
    h("section", { class: "card", "aria-labelledby": "batches-title" },
      h("div", { class: "card-head" }, h("h2", { id: "batches-title" }, "Recent batches"),
        h("a", { class: "button", href: `#/ingest?site=${id}` }, "Send a test batch")),
      h("p", { class: "muted small" }, "Batches that stored new readings, newest first (their outbox events). Re-sent and duplicate-only batches store nothing and are not listed."),
      h("div", { class: "table-wrap" }, batches, batchEmpty)));

  function renderSite() {
    setText(title, site.name);
    fill(status, statusBadge(site.status));
    setText(root.querySelector(".crumb-current"), site.name);
    setText(meta, `Site #${site.id} · created ${utc(site.created_at, { seconds: false })} · limit counted per UTC calendar year ${site.year}`);
    setText(tiles.ytd.value, mass(site.year_kg));
    updateLimitBar(bar, site);
    setText(tiles.limit.value, mass(site.emission_limit_kg));
    setText(tiles.limit.sub, `${percent(site.percent_of_limit)} used · status ${site.status}`);
    setText(tiles.lifetime.value, mass(site.lifetime_kg));
    setText(tiles.lifetime.sub, "all years");
    updateFreshness(fresh, site);
    setText(tiles.last.sub, site.last_reading_at ? utc(site.last_reading_at, { seconds: false }) : "");
    setText(tiles.readings.value, count(site.reading_count));
    document.title = `${site.name} · Emissions engine`;
  }

  async function drawChart(force = false) {
    if (!site) return;
    const now = new Date();
    const key = `${range}:${site.reading_count}:${site.lifetime_kg}:${site.emission_limit_kg}`;
    if (!force && key === chartKey && Date.now() - chartAt < CHART_MAX_AGE_MS) return;
    const [yearStart, yearEnd] = yearBounds(now);
    const to = Math.ceil(now.getTime() / 1000);
    const spec = RANGES.find((r) => r.key === range);
    const from = range === "year" ? yearStart : to - spec.seconds;
    const q = new URLSearchParams({ from: new Date(from * 1000).toISOString(), to: new Date(to * 1000).toISOString() });
    const series = await get(`/v1/sites/${id}/hourly?${q}`);
    chartKey = key;
    chartAt = Date.now();
    chart?.destroy();
    chartBox.replaceChildren();
    const mode = range === "year" ? "cumulative" : "rate";
    chart = siteChart(chartBox, { mode, from, to, hours: series.hours, limitKg: site.emission_limit_kg, yearStart, yearEnd });
    chartBox.dataset.points = String(series.hours.length);
    chartBox.dataset.mode = mode;
    const hoursInYear = (yearEnd - yearStart) / 3600;
    const total = series.hours.reduce((s, p) => s + p.total_kg, 0);
    chartEmpty.hidden = series.hours.length > 0;
    setText(chartEmpty, "No readings in this range.");
    setText(chartNote, mode === "rate"
      ? `Bars: kg emitted per UTC hour (${mass(total)} in range). Dashed line: limit pace, the annual limit spread evenly over the year's ${count(hoursInYear)} hours = ${mass(site.emission_limit_kg / hoursInYear)}/h. Hours above it use the limit faster than it allows.`
      : `Cumulative kg since 1 Jan ${now.getUTCFullYear()} UTC (${mass(total)}). Dashed: the annual limit (${mass(site.emission_limit_kg)}). Dotted: the even-pace budget; above it, the site is on course to exceed its limit.`);
  }

  function createBatch() {
    return h("tr", {},
      h("td", { class: "mono ev" }), h("td", { class: "rcv" }), h("td", { class: "dev" }),
      h("td", { class: "num acc" }), h("td", { class: "win" }), h("td", { class: "state" }),
      h("td", { class: "mono col-opt bid" }), h("td", { class: "mono col-opt rid" }));
  }

  function updateBatch(row, e) {
    const p = e.payload || {};
    setText(row.querySelector(".ev"), `#${e.id}`);
    const rcv = row.querySelector(".rcv");
    setText(rcv, ago((Date.now() - Date.parse(e.created_at)) / 1000));
    rcv.title = utc(e.created_at);
    setText(row.querySelector(".dev"), p.device_id || "—");
    setText(row.querySelector(".acc"), count(p.accepted));
    setText(row.querySelector(".win"), span(p.first_ts, p.last_ts));
    const st = eventState(e);
    const cell = row.querySelector(".state");
    if (cell.dataset.state !== st.text) {
      cell.dataset.state = st.text;
      fill(cell, badge(st.text, st.tone, e.last_error || undefined));
    }
    const bid = row.querySelector(".bid");
    setText(bid, shortId(p.batch_id));
    bid.title = p.batch_id || "";
    const rid = row.querySelector(".rid");
    setText(rid, shortId(p.request_id));
    rid.title = p.request_id || "";
  }

  async function refresh() {
    try {
      const [s, events] = await Promise.all([
        get(`/v1/sites/${id}`),
        get(`/v1/ops/outbox?site_id=${id}&limit=20`),
      ]);
      site = s;
      rememberSites([s]);
      renderSite();
      reconcile(batchBody, events.items, (e) => e.id, createBatch, updateBatch);
      batches.hidden = events.items.length === 0;
      batchEmpty.hidden = events.items.length > 0;
      await drawChart();
      errors.clear();
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      if (err instanceof ApiError && err.status === 404) {
        setText(title, `Site #${id}`);
        setText(meta, "");
      }
      errors.show(`Could not load site #${id}`, err);
    }
  }

  return { title: `Site #${id}`, refresh, unmount: () => chart?.destroy() };
}
