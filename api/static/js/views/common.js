// Pieces several views share: the limit bar, status badges, freshness, inline errors.

import { describe } from "../api.js";
import { badge, h, setText } from "../dom.js";
import { ago, mass, percent, utc } from "../format.js";
import { SITE_STALE_S } from "../store.js";

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
    h("div", { class: "bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": "100" }, fillEl,
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
  const label = `${mass(site.year_kg)} of ${mass(site.emission_limit_kg)} (${percent(pct)})`;
  bar.setAttribute("aria-label", `Year to date: ${label}`);
  setText(el.querySelector(".limit-text"), `${mass(site.year_kg)} / ${mass(site.emission_limit_kg)} · ${percent(pct)}`);
}

/** "3 min ago", with the absolute time as a tooltip and a stale tag when it is old. */
export function freshness() {
  return h("span", { class: "fresh" }, h("time", {}), " ", h("span", { class: "tag tag-stale" }, "stale"));
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
