// Pieces several views share: the limit bar, status badges, freshness, inline errors.

import { describe } from "../api.js";
import { badge, h, setText } from "../dom.js";
import { ago, mass, percent, utc } from "../format.js";
import { SITE_STALE_S } from "../store.js";
import { ch4, co2eOn, gwpLabel, tonnes, toCo2e } from "../units.js";

const STATUS_TONE = { ok: "ok", warning: "warning", exceeded: "danger" };
const STATUS_TEXT = { ok: "OK", warning: "Warning", exceeded: "Exceeded" };
export const STATUS_RANK = { ok: 0, warning: 1, exceeded: 2 };

export function statusBadge(status) {
  const el = badge(STATUS_TEXT[status] || status, STATUS_TONE[status] || "neutral");
  el.dataset.status = status;
  return el;
}

export function updateStatusBadge(el, status) {
  if (el.dataset.status === status) return;
  el.replaceWith(statusBadge(status));
}

/** Has readings, but none for longer than SITE_STALE_S (a site without readings is "no data"). */
export function isStale(site) {
  return site.freshness_s !== null && site.freshness_s > SITE_STALE_S;
}

/** Year to date against the annual limit: a bar with the figures beside it. */
export function limitBar() {
  const fillEl = h("span", { class: "bar-fill" });
  const el = h(
    "div",
    { class: "limit" },
    // A meter has its name and a value before data arrives (axe: aria-meter-name, and a
    // screen reader hears "loading", not a silent 0).
    h("div", { class: "bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0",
      "aria-valuetext": "loading", "aria-label": "Year to date against the annual limit: loading" }, fillEl,
      h("span", { class: "bar-mark", title: "80%: warning" })),
    h("span", { class: "limit-text" }),
  );
  return el;
}

export function updateLimitBar(el, site) {
  const pct = site.percent_of_limit;
  const bar = el.querySelector(".bar");
  const fillEl = el.querySelector(".bar-fill");
  const width = `${Math.min(100, Math.max(0, pct))}%`;
  if (fillEl.style.width !== width) fillEl.style.width = width;
  const tone = site.status === "exceeded" ? "danger" : site.status === "warning" ? "warning" : "ok";
  const cls = `bar-fill bar-${tone}`;
  if (fillEl.className !== cls) fillEl.className = cls;
  bar.setAttribute("aria-valuenow", String(Math.round(Math.min(pct, 100))));
  bar.setAttribute("aria-valuetext", percent(pct));
  let used = ch4(site.year_kg);
  let limit = ch4(site.emission_limit_kg);
  let short = `${mass(site.year_kg)} / ${limit}`;
  if (co2eOn()) {
    used = tonnes(site.year_t_co2e);
    limit = tonnes(toCo2e(site.emission_limit_kg, site.gwp));
    short = `${tonnes(site.year_t_co2e, { suffix: false })} / ${limit}`;
  }
  bar.setAttribute("aria-label", `Year to date: ${used} of ${limit} (${percent(pct)})`);
  setText(el.querySelector(".limit-text"), `${short} · ${percent(pct)}`);
}

/** The stated factor beside CO₂e figures ("t CO₂e with GWP100 AR6 fossil = 29.8"); hidden in kg. */
export function gwpNote() {
  return h("p", { class: "gwp-note muted small", hidden: true });
}

export function updateGwpNote(el, gwp, prefix = "Figures in t CO₂e") {
  el.hidden = !co2eOn() || !gwp;
  if (gwp) setText(el, `${prefix}: kg CH₄ × ${gwp.factor} / 1000 (${gwpLabel(gwp)}).`);
}

/** "3 min ago", with the absolute time as a tooltip and a stale tag when it is old. */
export function freshness() {
  // The stale tag starts hidden: a page still loading is not stale.
  return h("span", { class: "fresh" }, h("time", {}, "…"), " ", h("span", { class: "tag tag-stale", hidden: true }, "stale"));
}

export function updateFreshness(el, site) {
  const time = el.querySelector("time");
  setText(time, site.last_reading_at ? ago(site.freshness_s) : "no readings");
  if (site.last_reading_at) {
    time.setAttribute("datetime", site.last_reading_at);
    time.title = `Newest reading window starts ${utc(site.last_reading_at)}`;
  }
  el.querySelector(".tag-stale").hidden = !isStale(site);
  el.classList.toggle("is-stale", isStale(site));
}

/** "3 dead events · 1 dead delivery": a link to the queue filtered to the site; null when none. */
export function deadText(site) {
  const parts = [];
  if (site.dead_events) parts.push(`${site.dead_events} dead event${site.dead_events === 1 ? "" : "s"}`);
  if (site.dead_deliveries) parts.push(`${site.dead_deliveries} dead deliver${site.dead_deliveries === 1 ? "y" : "ies"}`);
  return parts.length ? parts.join(" · ") : null;
}

export function deadHref(site) {
  return `#/queue?site=${site.id}&status=dead`;
}

/** The list's dead badge: a link, hidden while the site has nothing dead. */
export function deadBadge() {
  return h("a", { class: "badge badge-danger dead-badge", hidden: true });
}

export function updateDeadBadge(el, site) {
  const text = deadText(site);
  el.hidden = !text;
  if (!text) return;
  setText(el, text);
  el.href = deadHref(site);
  el.setAttribute("aria-label", `${site.name}: ${text}; open the queue filtered to this site`);
}

/** An inline error block that replaces itself with nothing when the error clears. */
export function errorSlot() {
  const el = h("div", { class: "notice notice-danger", role: "status", hidden: true });
  return {
    el,
    show(prefix, err) {
      el.hidden = false;
      setText(el, `${prefix}: ${describe(err)}`);
    },
    clear() {
      el.hidden = true;
    },
  };
}

export function tile(label, { id, hint } = {}) {
  const value = h("div", { class: "tile-value" }, "—");
  const sub = h("div", { class: "tile-sub" }, hint || "");
  const el = h("div", { class: "tile", dataset: { tile: id || label } }, h("div", { class: "tile-label" }, label), value, sub);
  return { el, value, sub };
}
