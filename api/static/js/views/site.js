// #/sites/ID: one site's figures, its emissions chart with the limit line, recent batches.

import { ApiError, Unreachable, get } from "../api.js";
import { badge, fill, h, reconcile, setText } from "../dom.js";
import { ago, count, mass, percent, shortId, utc, window as span } from "../format.js";
import { rememberSites } from "../store.js";
import { siteChart } from "../chart.js";
import { co2eOn, tonnes, tonnesAxis, toCo2e } from "../units.js";
import { alertRow } from "./alerts.js";
import {
  errorSlot,
  freshness,
  gwpNote,
  updateGwpNote,
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
const BATCH_EVENT = "measurements.accepted";
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
  const note = gwpNote();
  const alertList = h("ol", { class: "alert-list", id: "site-alerts", "aria-label": "Open alerts of this site" });
  const alertsEmpty = h("p", { class: "empty ok-text", hidden: true }, "No open alerts.");
  const alertNote = h("p", { class: "notice", role: "status", "aria-live": "polite", hidden: true });
  const alertsCard = h("section", { class: "card", "aria-labelledby": "site-alerts-title", id: "site-alerts-card", hidden: true },
    h("div", { class: "card-head" }, h("h2", { id: "site-alerts-title" }, "Open alerts"),
      h("a", { class: "button small ghost", href: `#/alerts?status=open&site=${id}` }, "All alerts of this site")),
    alertNote, alertList, alertsEmpty);
  const alerts = alertRow((done) => {
    alertNote.hidden = false;
    alertNote.className = "notice notice-ok";
    setText(alertNote, `Alert #${done.id} acknowledged by ${done.acknowledged_by}.`);
    refreshAlerts();
  }, (text, tone) => {
    alertNote.hidden = false;
    alertNote.className = `notice notice-${tone}`;
    setText(alertNote, text);
  });

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
    h("div", { class: "page-head" },
      h("div", { class: "title-row" }, title, status,
        h("a", { class: "button small", href: `#/sites/${id}/report`, id: "report-link" }, "Reports")),
      meta, note),
    errors.el,
    h("section", { class: "tiles", "aria-label": "Figures" }, Object.values(tiles).map((t) => t.el)),
    alertsCard,
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
    const co2e = co2eOn();
    setText(tiles.ytd.value, co2e ? tonnes(site.year_t_co2e) : mass(site.year_kg));
    updateLimitBar(bar, site);
    setText(tiles.limit.value, co2e ? tonnes(toCo2e(site.emission_limit_kg, site.gwp)) : mass(site.emission_limit_kg));
    setText(tiles.limit.sub, `${co2e ? `${mass(site.emission_limit_kg)} CH₄ · ` : ""}${percent(site.percent_of_limit)} used · status ${site.status}`);
    setText(tiles.lifetime.value, co2e ? tonnes(site.lifetime_t_co2e) : mass(site.lifetime_kg));
    updateGwpNote(note, site.gwp);
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
    // In CO₂e the bars are the API's per-hour t_co2e and the limit is converted with the
    // factor the API states for the series.
    const co2e = co2eOn();
    const gwp = series.gwp || site.gwp;
    const hours = co2e ? series.hours.map((p) => ({ ...p, total_kg: p.t_co2e })) : series.hours;
    const limit = co2e ? toCo2e(site.emission_limit_kg, gwp) : site.emission_limit_kg;
    const fmt = co2e ? tonnes : mass;
    chart = siteChart(chartBox, {
      mode, from, to, hours, limitKg: limit, yearStart, yearEnd,
      ...(co2e ? { fmt, axisFmt: tonnesAxis } : {}),
    });
    chartBox.dataset.points = String(series.hours.length);
    chartBox.dataset.mode = mode;
    chartBox.dataset.unit = co2e ? "t_co2e" : "kg";
    const hoursInYear = (yearEnd - yearStart) / 3600;
    const total = hours.reduce((s, p) => s + p.total_kg, 0);
    const unit = co2e ? "t CO₂e" : "kg";
    const factor = co2e ? ` CO₂e with ${gwp.version.replace(/-/g, " ")} GWP100 = ${gwp.factor}.` : "";
    chartEmpty.hidden = series.hours.length > 0;
    setText(chartEmpty, "No readings in this range.");
    setText(chartNote, (mode === "rate"
      ? `Bars: ${unit} emitted per UTC hour (${fmt(total)} in range). Dashed line: limit pace, the annual limit spread evenly over the year's ${count(hoursInYear)} hours = ${fmt(limit / hoursInYear)}/h. Hours above it use the limit faster than it allows.`
      : `Cumulative ${unit} since 1 Jan ${now.getUTCFullYear()} UTC (${fmt(total)}). Dashed: the annual limit (${fmt(limit)}). Dotted: the even-pace budget; above it, the site is on course to exceed its limit.`) + factor);
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

  async function refreshAlerts() {
    try {
      const page = await get(`/v1/alerts?status=open&site_id=${id}&limit=20`);
      reconcile(alertList, page.items, (a) => a.id, alerts.create, alerts.update);
      alertsCard.hidden = false;
      alertList.hidden = page.items.length === 0;
      alertsEmpty.hidden = page.items.length > 0;
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      alertsCard.hidden = true; // an API without alerts: the rest of the page still works
    }
  }

  async function refresh() {
    try {
      const [s, events] = await Promise.all([
        get(`/v1/sites/${id}`),
        get(`/v1/ops/outbox?site_id=${id}&event_type=${BATCH_EVENT}&limit=20`),
      ]);
      site = s;
      rememberSites([s]);
      renderSite();
      // The outbox also carries notices (alerts raised, restatements) for subscribers: not batches.
      const batchEvents = events.items.filter((e) => !e.event_type || e.event_type === BATCH_EVENT);
      reconcile(batchBody, batchEvents, (e) => e.id, createBatch, updateBatch);
      batches.hidden = batchEvents.length === 0;
      batchEmpty.hidden = batchEvents.length > 0;
      await refreshAlerts();
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
