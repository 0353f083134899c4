// #/sites/ID/report: a site's reporting periods (GET /v1/sites/{id}/reports): totals against the
// limit, completeness of the measurement windows, data gaps, restatements of closed periods,
// and the same report as CSV (fetched with the token, so it also works when reads need one).

import { ApiError, Unreachable, get } from "../api.js";
import { badge, fill, h, setText } from "../dom.js";
import { age, count, mass, percent, utc } from "../format.js";
import { rememberSites } from "../store.js";
import { adminToken } from "../token.js";
import { co2eOn, gwpLabel, tonnes, toCo2e } from "../units.js";
import { errorSlot, gwpNote, tile, updateGwpNote } from "./common.js";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MAX_PERIODS = 36;
const RELOAD_MS = 30_000; // reports change slowly; the tick only re-reads them this often
const pad = (n) => String(n).padStart(2, "0");

function monthName(d) {
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`;
}

/** Default range: the last six months, or this year and the one before. */
function defaults(period, now = new Date()) {
  if (period === "year") return { from: String(now.getUTCFullYear() - 1), to: String(now.getUTCFullYear()) };
  const from = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 5, 1));
  return { from: monthName(from), to: monthName(now) };
}

function validName(period, text) {
  return period === "year" ? /^\d{4}$/.test(text || "") : /^\d{4}-\d{2}$/.test(text || "");
}

function periodLabel(kind, iso) {
  const d = new Date(iso);
  return kind === "year" ? String(d.getUTCFullYear()) : `${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
}

/** Completeness as a bar and a percentage (the ratio is null when no window is expected). */
function completenessCell(c) {
  const pct = c.ratio === null ? null : c.ratio * 100;
  const tone = pct === null ? "neutral" : pct >= 99.5 ? "ok" : pct >= 90 ? "warning" : "danger";
  const fillEl = h("span", { class: `bar-fill bar-${tone}`, style: { width: `${Math.min(100, pct ?? 0)}%` } });
  const label = pct === null ? "no windows expected" : `${count(c.windows_received)} of ${count(c.windows_expected)} windows`;
  return h("div", { class: "limit completeness" },
    h("div", { class: "bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": "100",
      "aria-valuenow": pct === null ? "0" : String(Math.round(pct * 10) / 10), "aria-label": `Completeness: ${label}` }, fillEl),
    h("span", { class: "limit-text", title: label }, pct === null ? "—" : `${pct >= 99.95 || pct === 0 ? percent(pct) : `${pct.toFixed(1)}%`}`));
}

function gapText(g, intervalS) {
  const hours = (Date.parse(g.end) - Date.parse(g.start)) / 1000;
  return `${utc(g.start, { seconds: false, zone: false })} → ${utc(g.end, { seconds: false })} · ` +
    `${count(g.missing_windows)} missing window${g.missing_windows === 1 ? "" : "s"} of ${age(intervalS)} (${age(hours)})`;
}

export function mount(root, params) {
  const id = params.id;
  const period = params.period === "year" ? "year" : "month";
  const dflt = defaults(period);
  const from = validName(period, params.from) ? params.from : dflt.from;
  const to = validName(period, params.to) ? params.to : dflt.to;
  const minGap = /^\d+(\.\d+)?$/.test(params.min_gap_h || "") ? params.min_gap_h : "";
  const query = new URLSearchParams({ period, from, to });
  if (minGap) query.set("min_gap_h", minGap);
  const jsonUrl = `/v1/sites/${id}/reports?${query}`;
  const csvUrl = `${jsonUrl}&format=csv`;

  const errors = errorSlot();
  let site = null;
  let data = null;
  let shown = null; // JSON of what is rendered, to skip identical re-renders
  let loadedAt = 0;
  const expanded = new Set(); // period_start of rows whose gap list is open

  const title = h("h1", { tabindex: "-1" }, `Reports · site #${id}`);
  const meta = h("p", { class: "muted" }, "Loading…");
  const note = gwpNote();
  const tiles = {
    total: tile("Total in range", { id: "total" }),
    completeness: tile("Completeness", { id: "completeness" }),
    gaps: tile("Gaps", { id: "gaps", hint: "" }),
    restated: tile("Restated periods", { id: "restated" }),
  };

  // The picker: period kind, first and last period, shortest gap listed.
  const input = (kind, value, idAttr) => kind === "year"
    ? h("input", { type: "number", id: idAttr, min: "1970", max: "2200", step: "1", value, required: true, inputmode: "numeric" })
    : h("input", { type: "month", id: idAttr, value, required: true });
  const fromInput = input(period, from, "report-from");
  const toInput = input(period, to, "report-to");
  const gapInput = h("input", { type: "number", id: "report-gap", min: "0.01", step: "any", value: minGap, placeholder: "default", inputmode: "decimal" });
  const formError = h("p", { class: "notice notice-danger", role: "alert", hidden: true });
  const kindGroup = h("div", { class: "segmented", role: "radiogroup", "aria-label": "Period" },
    [["month", "Months"], ["year", "Years"]].map(([v, label]) => h("label", { class: "seg" },
      h("input", { type: "radio", name: "report-period", value: v, checked: v === period,
        onchange: () => go({ period: v, ...defaults(v) }) }),
      h("span", {}, label))));
  const picker = h("form", { class: "toolbar report-picker", "aria-label": "Report range", onsubmit: (e) => { e.preventDefault(); submit(); } },
    kindGroup,
    h("span", { class: "control" }, h("label", { for: "report-from" }, "From"), fromInput),
    h("span", { class: "control" }, h("label", { for: "report-to" }, "To"), toInput),
    h("span", { class: "control" }, h("label", { for: "report-gap" }, "Gaps ≥ h"), gapInput),
    h("button", { type: "submit", class: "button primary small" }, "Show"));

  const csvLink = h("a", { class: "button", href: csvUrl, id: "report-csv", download: `site-${id}-${period}-${from}-${to}.csv` }, "Download CSV");
  const csvNote = h("span", { class: "hint", role: "status", "aria-live": "polite" });
  csvLink.addEventListener("click", (e) => {
    e.preventDefault(); // an <a href> cannot send the token: fetch it, then save the Blob
    downloadCsv();
  });

  const tbody = h("tbody");
  const unitHead = h("th", { scope: "col", class: "num" }, "Total");
  const table = h("table", { class: "table report-table" },
    h("caption", { class: "sr-only" }, "Reporting periods, oldest first"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Period"), h("th", { scope: "col" }, "State"), unitHead,
      h("th", { scope: "col", class: "num col-opt" }, "Limit"), h("th", { scope: "col" }, "Of limit"),
      h("th", { scope: "col", class: "col-opt" }, "Peak hour"), h("th", { scope: "col", class: "num col-opt" }, "Readings"),
      h("th", { scope: "col" }, "Completeness"), h("th", { scope: "col" }, "Gaps"))),
    tbody);

  fill(root,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "#/sites" }, "Sites"), " / ", h("a", { href: `#/sites/${id}`, class: "crumb-site" }, `#${id}`), " / ",
      h("span", { class: "crumb-current" }, "Reports")),
    h("div", { class: "page-head" }, h("div", { class: "title-row" }, title), meta, note),
    errors.el,
    h("section", { class: "card", "aria-label": "Range" }, picker, formError),
    h("section", { class: "tiles", "aria-label": "Range figures" }, Object.values(tiles).map((t) => t.el)),
    h("section", { class: "card", "aria-labelledby": "periods-title" },
      h("div", { class: "card-head" }, h("h2", { id: "periods-title" }, period === "year" ? "Years" : "Months"), csvNote, csvLink),
      h("p", { class: "muted small", id: "report-explain" }),
      h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "periods-title" }, table),
      h("p", { class: "loading", id: "report-loading" }, "Loading reports…")));

  function go(next) {
    const q = new URLSearchParams({ period: next.period, from: next.from, to: next.to });
    if (next.min_gap_h) q.set("min_gap_h", next.min_gap_h);
    location.hash = `#/sites/${id}/report?${q}`;
  }

  function submit() {
    const a = fromInput.value.trim();
    const b = toInput.value.trim();
    formError.hidden = true;
    let problem = null;
    if (!validName(period, a) || !validName(period, b)) problem = period === "year" ? "Enter years as YYYY." : "Choose a first and a last month.";
    else if (a > b) problem = "The first period is after the last.";
    else if (gapInput.value && !(Number(gapInput.value) > 0)) problem = "The shortest gap must be a number of hours above 0.";
    if (problem) {
      formError.hidden = false;
      setText(formError, problem);
      return;
    }
    go({ period, from: a, to: b, min_gap_h: gapInput.value.trim() });
  }

  async function downloadCsv() {
    setText(csvNote, "Preparing CSV…");
    const token = adminToken();
    try {
      const res = await fetch(csvUrl, { headers: { Accept: "text/csv", ...(token ? { Authorization: `Bearer ${token}` } : {}) }, cache: "no-store" });
      if (!res.ok) {
        let detail = `HTTP ${res.status}`;
        try {
          const p = await res.json();
          detail = p.detail ? `${p.title}: ${p.detail}` : p.title || detail;
        } catch {
          // not a problem document
        }
        throw new Error(detail);
      }
      const blob = await res.blob();
      const named = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") || "");
      const a = h("a", { href: URL.createObjectURL(blob), download: named ? named[1] : csvLink.getAttribute("download"), hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
      setText(csvNote, `Saved ${a.download}`);
    } catch (err) {
      setText(csvNote, `CSV download failed: ${err.message}`);
    }
  }

  function row(r, kind, intervalS, gwp) {
    const co2e = co2eOn();
    const key = r.period_start;
    const gapsId = `gaps-${Date.parse(key)}`;
    const n = r.gaps.length;
    const state = h("td", { class: "state" }, r.closed ? badge("Closed", "neutral", "Final: the period ended and its grace time passed") : badge("Open", "info", "Still counting: the period has not closed yet"));
    if (r.restatements > 0) {
      state.append(" ", badge(`Restated${r.restatements > 1 ? ` ×${r.restatements}` : ""}`, "warning",
        `Changed after it closed, ${r.restatements} time${r.restatements === 1 ? "" : "s"}; last ${utc(r.last_restated_at)}`));
      state.append(h("div", { class: "muted small restated-at" }, `last restated ${utc(r.last_restated_at, { seconds: false })}`));
    }
    const pct = r.percent_of_limit;
    const pctTone = pct >= 100 ? "danger" : pct >= 80 ? "warning" : "ok";
    const peak = r.peak_hour
      ? `${utc(r.peak_hour.hour, { seconds: false })} · ${co2e ? tonnes(toCo2e(r.peak_hour.total_kg, gwp)) : mass(r.peak_hour.total_kg)}`
      : "—";
    const gapsCell = h("td", { class: "gaps-cell" });
    if (n === 0) gapsCell.append(h("span", { class: r.completeness.ratio === null ? "muted" : "ok-text" }, r.completeness.ratio === null ? "—" : "None"));
    else {
      const open = expanded.has(key);
      const btn = h("button", { type: "button", class: "button small ghost gaps-toggle", "aria-expanded": open ? "true" : "false", "aria-controls": gapsId },
        `${count(n)}${r.gaps_truncated ? "+" : ""} gap${n === 1 ? "" : "s"}`, h("span", { "aria-hidden": "true", class: "chev" }, open ? " ▾" : " ▸"));
      btn.addEventListener("click", () => {
        const now = !expanded.has(key);
        if (now) expanded.add(key);
        else expanded.delete(key);
        btn.setAttribute("aria-expanded", String(now));
        setText(btn.querySelector(".chev"), now ? " ▾" : " ▸");
        tbody.querySelector(`#${gapsId}`).hidden = !now;
      });
      gapsCell.append(btn);
    }
    const main = h("tr", { class: "period-row", dataset: { period: key, closed: String(r.closed) } },
      h("th", { scope: "row", class: "period" }, periodLabel(kind, r.period_start)),
      state,
      h("td", { class: "num total", dataset: { label: "Total" } }, co2e ? tonnes(r.t_co2e) : mass(r.total_kg)),
      h("td", { class: "num col-opt limit-kg" }, co2e ? tonnes(toCo2e(r.limit_kg, gwp)) : mass(r.limit_kg)),
      h("td", { class: "pct" }, badge(percent(pct), pctTone)),
      h("td", { class: "col-opt peak" }, peak),
      h("td", { class: "num col-opt readings" }, count(r.readings)),
      h("td", { class: "completeness-cell" }, completenessCell(r.completeness)),
      gapsCell);
    if (!n) return [main];
    const c = r.completeness;
    const detail = h("tr", { class: "gap-row", id: gapsId, hidden: !expanded.has(key) },
      h("td", { colspan: "9" },
        h("p", { class: "muted small" },
          `${periodLabel(kind, r.period_start)}: ${count(c.windows_received)} of ${count(c.windows_expected)} windows of ${age(c.interval_s)} received` +
          (c.coverage_start ? `, counted from ${utc(c.coverage_start, { seconds: false, zone: false })} to ${utc(c.coverage_end, { seconds: false })}` : "") +
          `. Gaps of at least ${data.min_gap_h} h:`),
        h("ul", { class: "gap-list" }, r.gaps.map((g) => h("li", {}, gapText(g, intervalS)))),
        r.gaps_truncated ? h("p", { class: "muted small" }, "More gaps than listed; the list is cut at the first ones.") : null));
    return [main, detail];
  }

  function render() {
    const key = JSON.stringify({ ...data, generated_at: null, unit: co2eOn() });
    if (key === shown) return;
    shown = key;
    const co2e = co2eOn();
    const gwp = data.gwp;
    const reports = data.reports;
    const interval = reports[0]?.completeness.interval_s ?? site?.reporting_interval_s ?? 900;
    setText(unitHead, co2e ? "Total, t CO₂e" : "Total, CH₄");
    fill(tbody, reports.flatMap((r) => row(r, data.period, interval, gwp)));
    root.querySelector("#report-loading")?.remove();

    const totalKg = reports.reduce((s, r) => s + r.total_kg, 0);
    const totalT = reports.reduce((s, r) => s + r.t_co2e, 0);
    setText(tiles.total.value, co2e ? tonnes(totalT) : mass(totalKg));
    setText(tiles.total.sub, `${count(reports.length)} ${data.period === "year" ? "year" : "month"}${reports.length === 1 ? "" : "s"} · ${count(reports.reduce((s, r) => s + r.readings, 0))} readings`);
    const exp = reports.reduce((s, r) => s + r.completeness.windows_expected, 0);
    const rec = reports.reduce((s, r) => s + r.completeness.windows_received, 0);
    setText(tiles.completeness.value, exp ? `${((rec / exp) * 100).toFixed(1)}%` : "—");
    setText(tiles.completeness.sub, exp ? `${count(rec)} of ${count(exp)} windows of ${age(interval)}` : "no windows expected yet");
    tiles.completeness.el.classList.toggle("tile-warning", exp > 0 && rec / exp < 0.99);
    const gaps = reports.reduce((s, r) => s + r.gaps.length, 0);
    setText(tiles.gaps.value, `${count(gaps)}${reports.some((r) => r.gaps_truncated) ? "+" : ""}`);
    setText(tiles.gaps.sub, `at least ${data.min_gap_h} h each`);
    const restated = reports.filter((r) => r.restatements > 0);
    setText(tiles.restated.value, count(restated.length));
    const last = restated.map((r) => r.last_restated_at).sort().pop();
    setText(tiles.restated.sub, last ? `last ${utc(last, { seconds: false })}` : "closed periods unchanged");
    tiles.restated.el.classList.toggle("tile-warning", restated.length > 0);

    updateGwpNote(note, gwp, "Totals, limits and peaks in t CO₂e");
    setText(root.querySelector("#report-explain"),
      `${data.period === "year" ? "UTC calendar years" : "UTC calendar months"} from ${from} to ${to}. ` +
      `${data.period === "month" ? "A month's limit is the annual limit pro rata by days. " : ""}` +
      "Completeness counts measurement windows with a reading since the site's first one. A period is closed once it ended and its grace time passed; late data that changes a closed period restates it. " +
      `Generated ${utc(data.generated_at)}${co2e ? ` · ${gwpLabel(gwp)}` : ""}.`);
  }

  async function refresh(force = false) {
    if (!force && data && Date.now() - loadedAt < RELOAD_MS) return;
    try {
      if (!site) {
        const s = await get(`/v1/sites/${id}`); // first: a 404 below then means "no reports here"
        site = s;
        rememberSites([s]);
        setText(title, `Reports · ${s.name}`);
        setText(root.querySelector(".crumb-site"), s.name);
        document.title = `Reports · ${s.name} · Emissions engine`;
        setText(meta, `Site #${id} · limit ${mass(s.emission_limit_kg)} CH₄ per UTC calendar year · measurement window ${age(s.reporting_interval_s)}`);
      }
      const body = await get(jsonUrl);
      if (!minGap) gapInput.placeholder = `${body.min_gap_h} (default)`;
      data = body;
      loadedAt = Date.now();
      render();
      errors.clear();
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      if (err instanceof ApiError && err.status === 404 && site) {
        errors.show("Reports are not available on this API", err);
      } else if (err instanceof ApiError && err.status === 422) {
        errors.show("This range cannot be reported", err);
      } else errors.show(`Could not load the reports of site #${id}`, err);
      root.querySelector("#report-loading")?.remove();
    }
  }

  // More than the API allows in one answer: say so before asking.
  const span = period === "year" ? Number(to) - Number(from) + 1
    : (Number(to.slice(0, 4)) - Number(from.slice(0, 4))) * 12 + Number(to.slice(5)) - Number(from.slice(5)) + 1;
  if (span > MAX_PERIODS) {
    formError.hidden = false;
    setText(formError, `At most ${MAX_PERIODS} periods at once (this range has ${span}).`);
  }

  return { title: `Reports · site #${id}`, refresh: () => refresh(false) };
}
