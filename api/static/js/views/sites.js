// #/sites: every site with totals, year to date against the limit, status and freshness.

import { ageOf, getAll } from "../api.js";
import { fill, h, reconcile, setText } from "../dom.js";
import { age, count, mass } from "../format.js";
import { SITE_STALE_S, rememberSites } from "../store.js";
import { amount, co2eOn, tonnes } from "../units.js";
import {
  STATUS_RANK,
  deadBadge,
  errorSlot,
  freshness,
  gwpNote,
  updateGwpNote,
  isStale,
  limitBar,
  statusBadge,
  tile,
  updateFreshness,
  updateLimitBar,
  updateDeadBadge,
  updateStatusBadge,
} from "./common.js";

// Survives navigation: coming back to the list keeps the operator's sort and filter; the URL
// (#/sites?q=…&status=…&sort=…&dir=…) carries them too, so a filtered list can be shared.
const DEFAULTS = { sort: "status", dir: "desc", query: "", status: "all" };
const prefs = { ...DEFAULTS };
const STATUSES = ["all", "exceeded", "warning", "ok", "stale", "nodata", "dead"];

const COLUMNS = [
  { key: "name", label: "Site", value: (s) => s.name.toLowerCase() },
  { key: "status", label: "Status", value: (s) => STATUS_RANK[s.status] * 1e6 + s.percent_of_limit },
  { key: "percent", label: "Year to date vs limit", value: (s) => s.percent_of_limit },
  { key: "lifetime", label: "Lifetime", value: (s) => s.lifetime_kg, cls: "num" },
  { key: "fresh", label: "Last reading", value: (s) => (s.freshness_s === null ? Infinity : s.freshness_s) },
  { key: "readings", label: "Readings", value: (s) => s.reading_count, cls: "num col-opt" },
];

function matches(site) {
  const q = prefs.query.trim().toLowerCase();
  if (q && !site.name.toLowerCase().includes(q) && String(site.id) !== q) return false;
  switch (prefs.status) {
    case "all":
      return true;
    case "stale":
      return isStale(site);
    case "nodata":
      return site.last_reading_at === null;
    case "dead":
      return site.dead_events > 0 || site.dead_deliveries > 0;
    default:
      return site.status === prefs.status;
  }
}

/** Prefs from the URL where it names them (a shared link), else those kept from the last visit. */
function readParams(params) {
  if (params.q !== undefined) prefs.query = params.q;
  if (STATUSES.includes(params.status)) prefs.status = params.status;
  if (COLUMNS.some((c) => c.key === params.sort)) prefs.sort = params.sort;
  if (params.dir === "asc" || params.dir === "desc") prefs.dir = params.dir;
}

/** The URL follows the prefs without a history entry per keystroke (and without a remount). */
function writeParams() {
  const q = new URLSearchParams();
  if (prefs.query) q.set("q", prefs.query);
  if (prefs.status !== DEFAULTS.status) q.set("status", prefs.status);
  if (prefs.sort !== DEFAULTS.sort || prefs.dir !== DEFAULTS.dir) {
    q.set("sort", prefs.sort);
    q.set("dir", prefs.dir);
  }
  const hash = `#/sites${q.toString() ? `?${q}` : ""}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

export function mount(root, params = {}) {
  readParams(params);
  let sites = null;
  const errors = errorSlot();
  const tiles = {
    sites: tile("Sites"),
    exceeded: tile("Exceeded", { hint: "≥ 100% of annual limit" }),
    warning: tile("Warning", { hint: "≥ 80% of annual limit" }),
    stale: tile("Stale", { hint: `no reading for > ${age(SITE_STALE_S)}` }),
    dead: tile("Dead work", { hint: "sites with dead events or deliveries" }),
    ytd: tile("Year to date, all sites"),
  };

  const search = h("input", {
    id: "site-filter", type: "search", placeholder: "Name or id", value: prefs.query, autocomplete: "off",
    oninput: (e) => { prefs.query = e.target.value; writeParams(); render(); },
  });
  const statusSelect = h("select", {
    id: "status-filter",
    onchange: (e) => { prefs.status = e.target.value; writeParams(); render(); },
  },
  [["all", "All statuses"], ["exceeded", "Exceeded"], ["warning", "Warning"], ["ok", "OK"], ["stale", "Stale"], ["nodata", "No readings"], ["dead", "Dead events or deliveries"]].map(
    ([v, t]) => h("option", { value: v, selected: prefs.status === v }, t),
  ));
  const shown = h("span", { class: "muted", "aria-live": "polite" });

  const headRow = h("tr");
  const tbody = h("tbody");
  const empty = h("p", { class: "empty", hidden: true });
  const table = h("table", { class: "table sites-table" },
    h("caption", { class: "sr-only" }, "Sites, sortable by each column"), h("thead", {}, headRow), tbody);

  function renderHead() {
    fill(headRow, COLUMNS.map((col) => {
      const active = prefs.sort === col.key;
      const arrow = active ? (prefs.dir === "asc" ? "▲" : "▼") : "↕";
      return h("th", { scope: "col", class: col.cls || "", "aria-sort": active ? (prefs.dir === "asc" ? "ascending" : "descending") : "none" },
        h("button", { type: "button", class: "sort", onclick: () => sortBy(col.key) },
          col.label, h("span", { class: `sort-arrow${active ? " active" : ""}`, "aria-hidden": "true" }, arrow)));
    }));
  }

  function sortBy(key) {
    if (prefs.sort === key) prefs.dir = prefs.dir === "asc" ? "desc" : "asc";
    else {
      prefs.sort = key;
      prefs.dir = key === "name" ? "asc" : "desc";
    }
    writeParams();
    renderHead();
    render();
    headRow.querySelector(`th[aria-sort]:not([aria-sort="none"]) button`)?.focus();
  }

  function createRow(site) {
    const link = h("a", { href: `#/sites/${site.id}` });
    return h("tr", {},
      h("th", { scope: "row", class: "site-name" }, link, h("span", { class: "muted id" })),
      h("td", { class: "status-cell" }, statusBadge(site.status), " ", deadBadge()),
      h("td", { class: "limit-cell" }, limitBar()),
      h("td", { class: "num lifetime", dataset: { label: "Lifetime" } }),
      h("td", { class: "fresh-cell" }, freshness()),
      h("td", { class: "num col-opt readings" }));
  }

  function updateRow(row, site) {
    setText(row.querySelector("a"), site.name);
    setText(row.querySelector(".id"), ` #${site.id}`);
    updateStatusBadge(row.querySelector(".status-cell .badge"), site.status);
    updateDeadBadge(row.querySelector(".dead-badge"), site);
    updateLimitBar(row.querySelector(".limit"), site);
    setText(row.querySelector(".lifetime"), amount(site.lifetime_kg, { t: site.lifetime_t_co2e }));
    updateFreshness(row.querySelector(".fresh"), site);
    setText(row.querySelector(".readings"), count(site.reading_count));
    row.classList.toggle("row-stale", isStale(site));
    row.dataset.status = site.status;
  }

  function render() {
    if (!sites) return;
    const col = COLUMNS.find((c) => c.key === prefs.sort) || COLUMNS[0];
    const sign = prefs.dir === "asc" ? 1 : -1;
    const visible = sites.filter(matches).sort((a, b) => {
      const va = col.value(a);
      const vb = col.value(b);
      return (va < vb ? -1 : va > vb ? 1 : 0) * sign || a.id - b.id;
    });
    reconcile(tbody, visible, (s) => s.id, createRow, updateRow);
    setText(shown, `${count(visible.length)} of ${count(sites.length)} sites`);
    empty.hidden = visible.length > 0;
    setText(empty, sites.length === 0
      ? "No sites yet. Create one with POST /v1/sites, then send readings from the ingest demo."
      : "No site matches this filter.");
    table.hidden = visible.length === 0;

    setText(tiles.sites.value, count(sites.length));
    setText(tiles.exceeded.value, count(sites.filter((s) => s.status === "exceeded").length));
    setText(tiles.warning.value, count(sites.filter((s) => s.status === "warning").length));
    const stale = sites.filter((s) => isStale(s)).length;
    const noData = sites.filter((s) => s.last_reading_at === null).length;
    setText(tiles.stale.value, count(stale));
    setText(tiles.stale.sub, `no reading for > ${age(SITE_STALE_S)}${noData ? ` · ${count(noData)} without any` : ""}`);
    tiles.stale.el.classList.toggle("tile-warning", stale > 0);
    const dead = sites.filter((s) => s.dead_events > 0 || s.dead_deliveries > 0);
    setText(tiles.dead.value, count(dead.length));
    tiles.dead.el.classList.toggle("tile-danger", dead.length > 0);
    const sum = (f) => sites.reduce((total, s) => total + s[f], 0);
    const co2e = co2eOn();
    setText(tiles.ytd.value, co2e ? tonnes(sum("year_t_co2e")) : mass(sum("year_kg")));
    setText(tiles.ytd.sub, `lifetime ${co2e ? tonnes(sum("lifetime_t_co2e")) : mass(sum("lifetime_kg"))}`);
    updateGwpNote(note, sites[0]?.gwp);
    tiles.exceeded.el.classList.toggle("tile-danger", sites.some((s) => s.status === "exceeded"));
    tiles.warning.el.classList.toggle("tile-warning", sites.some((s) => s.status === "warning"));
  }

  const note = gwpNote();
  writeParams();
  renderHead();
  fill(root,
    h("div", { class: "page-head" },
      h("h1", { tabindex: "-1" }, "Sites"),
      h("p", { class: "muted" }, "Year to date is the current UTC calendar year, against each site's annual limit, in kg or t of methane (CH₄) unless the header switch shows t CO₂e."),
      note),
    h("section", { class: "tiles", "aria-label": "Summary" }, Object.values(tiles).map((t) => t.el)),
    errors.el,
    h("section", { class: "card", "aria-label": "Site list" },
      h("div", { class: "toolbar" },
        h("span", { class: "control" }, h("label", { for: "site-filter" }, "Filter"), search),
        h("span", { class: "control" }, h("label", { for: "status-filter" }, "Status"), statusSelect),
        h("span", { class: "spacer" }), shown),
      h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Sites table (scrolls sideways)" }, table, empty),
      h("p", { class: "loading", id: "sites-loading" }, "Loading sites…")));

  async function refresh() {
    try {
      // ETag: an unchanged list is a 304 and the kept body; its freshness moves on by the
      // time since that body came.
      const items = await getAll("/v1/sites?limit=500", "after", "next_after", 20, { revalidate: true });
      const lag = ageOf(items);
      sites = lag ? items.map((s) => (s.freshness_s === null ? s : { ...s, freshness_s: s.freshness_s + lag })) : items;
      rememberSites(sites);
      errors.clear();
      root.querySelector("#sites-loading")?.remove();
      render();
    } catch (err) {
      if (err.name === "Unreachable") throw err;
      errors.show("Could not load the sites", err);
    }
  }

  return { title: "Sites", refresh };
}
