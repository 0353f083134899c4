// #/sites/ID: one site's figures, its emissions chart with the limit line, recent batches.

import { ApiError, Unreachable, ageOf, get } from "../api.js";
import { badge, fill, h, reconcile, setText } from "../dom.js";
import { ago, count, mass, percent, setSiteZone, shortId, utc, window as span } from "../format.js";
import { rememberSites } from "../store.js";
import { siteChart } from "../chart.js";
import { ch4, co2eOn, tonnes, tonnesAxis, toCo2e } from "../units.js";
import { alertRow } from "./alerts.js";
import {
  deadHref,
  deadText,
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
  let missing = false; // the API said 404: this id names no site
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
    projected: tile("Projected year end", { hint: "…" }),
  };
  tiles.projected.el.title =
    "At the year-to-date average pace: year to date ÷ the share of the UTC year gone. " +
    "The limit date is when that pace reaches the limit (1 January + time gone × limit ÷ year to date).";
  const deadBanner = h("div", { class: "notice notice-danger dead-banner", role: "status", hidden: true },
    h("strong", { class: "dead-text" }), " ",
    h("a", { class: "dead-link", href: `#/queue?site=${id}&status=dead` }, "Open the dead-letter queue for this site"));
  const bar = limitBar();
  tiles.ytd.sub.replaceChildren(bar);
  const fresh = freshness();
  tiles.last.value.replaceChildren(fresh);
  const note = gwpNote();
  const alertList = h("ol", { class: "alert-list", id: "site-alerts", "aria-label": "Open alerts of this site" });
  const alertsEmpty = h("p", { class: "empty ok-text", hidden: true }, "No open alerts.");
  const alertNote = h("p", { class: "notice", role: "status", "aria-live": "polite", hidden: true });
  // Collapsed (a <details>) so the chart stays above the fold; the summary says how many.
  const alertCountEl = h("span", { class: "nav-count alert-count" }, "…");
  const alertsCard = h("details", { class: "card alerts-card", id: "site-alerts-card", hidden: true },
    h("summary", {}, h("h2", { id: "site-alerts-title" }, "Open alerts"), " ", alertCountEl),
    h("p", {}, h("a", { class: "button small ghost", href: `#/alerts?status=open&site=${id}` }, "All alerts of this site")),
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
        onchange: () => {
          range = r.key;
          lastRange = r.key;
          // The range is in the URL (shareable), without a history entry or a remount.
          history.replaceState(null, "", `#/sites/${id}?range=${r.key}`);
          drawChart(true);
        } }),
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

  // Everything but the head: hidden as a whole when the site does not exist.
  const content = h("div", { class: "site-content" },
    h("section", { class: "tiles", "aria-label": "Figures" }, Object.values(tiles).map((t) => t.el)),
    h("section", { class: "card", "aria-labelledby": "chart-title" },
      h("div", { class: "card-head" }, h("h2", { id: "chart-title" }, "Emissions"), rangeGroup),
      chartBox, chartEmpty, chartNote),
    alertsCard,
    h("section", { class: "card", "aria-labelledby": "batches-title" },
      h("div", { class: "card-head" }, h("h2", { id: "batches-title" }, "Recent batches"),
        h("a", { class: "button", href: `#/ingest?site=${id}` }, "Send a test batch")),
      h("p", { class: "muted small" }, "Batches that stored new readings, newest first (their outbox events). Re-sent and duplicate-only batches store nothing and are not listed."),
      h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "batches-title" }, batches, batchEmpty)));

  fill(root,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/sites" }, "Sites"), " / ", h("span", { class: "crumb-current" }, `#${id}`)),
    h("div", { class: "page-head" },
      h("div", { class: "title-row" }, title, status,
        h("a", { class: "button small", href: `#/sites/${id}/report`, id: "report-link" }, "Reports")),
      meta, note),
    errors.el,
    deadBanner,
    content);

  function renderSite() {
    setSiteZone(site.time_zone);
    setText(title, site.name);
    fill(status, statusBadge(site.status));
    setText(root.querySelector(".crumb-current"), site.name);
    setText(meta, `Site #${site.id} · created ${utc(site.created_at, { seconds: false })} · limit counted per UTC calendar year ${site.year}`);
    const co2e = co2eOn();
    setText(tiles.ytd.value, co2e ? tonnes(site.year_t_co2e) : ch4(site.year_kg));
    updateLimitBar(bar, site);
    setText(tiles.limit.value, co2e ? tonnes(toCo2e(site.emission_limit_kg, site.gwp)) : ch4(site.emission_limit_kg));
    setText(tiles.limit.sub, `${co2e ? `${ch4(site.emission_limit_kg)} · ` : ""}${percent(site.percent_of_limit)} used · status ${site.status}`);
    setText(tiles.lifetime.value, co2e ? tonnes(site.lifetime_t_co2e) : ch4(site.lifetime_kg));
    renderProjection(co2e);
    const dead = deadText(site);
    deadBanner.hidden = !dead;
    if (dead) {
      setText(deadBanner.querySelector(".dead-text"), `${dead} for this site.`);
      deadBanner.querySelector(".dead-link").href = deadHref(site);
    }
    updateGwpNote(note, site.gwp);
    setText(tiles.lifetime.sub, "all years");
    updateFreshness(fresh, site);
    setText(tiles.last.sub, site.last_reading_at ? utc(site.last_reading_at, { seconds: false }) : "");
    setText(tiles.readings.value, count(site.reading_count));
    document.title = `${site.name} · Emissions engine`;
  }

  function renderProjection(co2e) {
    const projected = co2e ? tonnes(site.projected_year_t_co2e) : ch4(site.projected_year_kg);
    setText(tiles.projected.value, projected);
    let sub;
    if (site.status === "exceeded") sub = "limit already exceeded";
    else if (site.projected_exceedance_at) sub = `exceeds the limit ${utc(site.projected_exceedance_at, { seconds: false })}`;
    else if (site.year_kg > 0) sub = "stays under the limit at this pace";
    else sub = "no emissions this year";
    setText(tiles.projected.sub, sub);
    tiles.projected.el.classList.toggle("tile-danger", Boolean(site.projected_exceedance_at) || site.status === "exceeded");
  }

  /** The range asked for now: [from, to, yearStart, yearEnd] in epoch seconds. */
  function span_() {
    const now = new Date();
    const [yearStart, yearEnd] = yearBounds(now);
    const to = Math.ceil(now.getTime() / 1000);
    const spec = RANGES.find((r) => r.key === range);
    const from = range === "year" ? yearStart : to - spec.seconds;
    return { now, from, to, yearStart, yearEnd };
  }

  function hourlyUrl({ from, to }) {
    const q = new URLSearchParams({ from: new Date(from * 1000).toISOString(), to: new Date(to * 1000).toISOString() });
    return `/v1/sites/${id}/hourly?${q}`;
  }

  /** Draw the chart when it is due (range changed, totals moved, or a minute passed); `pre`
   * is a series fetched in parallel with the site on the first load. */
  async function drawChart(force = false, pre = null) {
    if (!site) return;
    const key = `${range}:${site.reading_count}:${site.lifetime_kg}:${site.emission_limit_kg}`;
    if (!force && key === chartKey && Date.now() - chartAt < CHART_MAX_AGE_MS) return;
    const w = pre ? pre.window : span_();
    const { now, from, to, yearStart, yearEnd } = w;
    const series = pre ? pre.series : await get(hourlyUrl(w));
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
    const unit = co2e ? "t CO₂e" : "kg CH₄";
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
      if (missing) return;
      alertsCard.hidden = false;
      const more = page.next_before !== null && page.next_before !== undefined;
      setText(alertCountEl, `${page.items.length}${more ? "+" : ""}`);
      alertCountEl.classList.toggle("nav-count-zero", page.items.length === 0);
      alertList.hidden = page.items.length === 0;
      alertsEmpty.hidden = page.items.length > 0;
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      alertsCard.hidden = true; // an API without alerts: the rest of the page still works
    }
  }

  async function refresh() {
    try {
      // One round trip: the site (ETag), its batches, its alerts and, on the first load, the
      // chart's series all at once (later ticks fetch the series only when the totals moved).
      const first = chartKey === null;
      const w = first ? span_() : null;
      const [s, events, , series] = await Promise.all([
        get(`/v1/sites/${id}`, { revalidate: true }),
        get(`/v1/ops/outbox?site_id=${id}&event_type=${BATCH_EVENT}&limit=20`),
        refreshAlerts(),
        first ? get(hourlyUrl(w)) : null,
      ]);
      const lag = ageOf(s);
      site = lag && s.freshness_s !== null ? { ...s, freshness_s: s.freshness_s + lag } : s;
      missing = false;
      content.hidden = false;
      rememberSites([s]);
      renderSite();
      // The outbox also carries notices (alerts raised, restatements) for subscribers: not batches.
      const batchEvents = events.items.filter((e) => !e.event_type || e.event_type === BATCH_EVENT);
      reconcile(batchBody, batchEvents, (e) => e.id, createBatch, updateBatch);
      batches.hidden = batchEvents.length === 0;
      batchEmpty.hidden = batchEvents.length > 0;
      await drawChart(false, first ? { window: w, series } : null);
      errors.clear();
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      if (err instanceof ApiError && err.status === 404) {
        // Not a failed load to retry quietly: this id names no site. Say so, and show none
        // of the figures (a dash, "no alerts" or a blank chart would read as a quiet site).
        missing = true;
        site = null;
        content.hidden = true;
        alertsCard.hidden = true;
        deadBanner.hidden = true;
        status.replaceChildren();
        setText(title, "Site not found");
        setText(meta, `No site has id ${id}. It may never have existed; check the link, or pick one from the sites list.`);
        setText(root.querySelector(".crumb-current"), `#${id} (not found)`);
        document.title = "Site not found · Emissions engine";
        errors.clear();
        return;
      }
      errors.show(`Could not load site #${id}`, err);
    }
  }

  return {
    title: `Site #${id}`,
    refresh,
    unmount: () => {
      chart?.destroy();
      setSiteZone(null);
    },
  };
}
