// Alerts as people read them (kind-specific text), and acknowledging them with an operator
// token (asked for once, like the queue's replay): one (POST /v1/alerts/{id}/ack) or many
// (POST /v1/alerts/ack, by ids or by site and kind); both audited.

import { ApiError, request } from "./api.js";
import { badge, h } from "./dom.js";
import { ago, mass, utc } from "./format.js";
import { store } from "./store.js";
import { adminToken, askToken } from "./token.js";

const KIND = {
  threshold: { label: "Threshold", tone: "warning" },
  leak: { label: "Leak", tone: "danger" },
  stale: { label: "Stale", tone: "neutral" },
};

const pad = (n) => String(n).padStart(2, "0");

export function siteName(siteId) {
  return store.siteNames.get(siteId) || `Site #${siteId}`;
}

export function kindBadge(kind, details = {}) {
  const k = KIND[kind] || { label: kind, tone: "neutral" };
  const el = badge(k.label, kind === "threshold" && details.threshold_percent >= 100 ? "danger" : k.tone);
  el.dataset.kind = kind;
  return el;
}

/** { title, detail } of an alert, in words; unknown kinds fall back to their raw details. */
export function describeAlert(a) {
  const d = a.details || {};
  const site = siteName(a.site_id);
  if (a.kind === "threshold") {
    const pct = d.threshold_percent;
    const title = pct >= 100
      ? `${site} passed 100 % of its ${d.year} limit: limit exceeded`
      : `${site} passed ${pct} % of its ${d.year} limit`;
    return { title, detail: `${mass(d.year_kg)} of ${mass(d.limit_kg)} CH₄ in ${d.year} when raised` };
  }
  if (a.kind === "leak") {
    const hour = new Date(d.hour);
    return {
      title: `Leak: ${mass(d.peak_rate_kg_h)}/h in hour ${pad(hour.getUTCHours())}:00`,
      detail: `Window starting ${utc(d.hour, { seconds: false })} · above the ${mass(d.threshold_kg_h)}/h leak threshold`,
    };
  }
  if (a.kind === "stale") {
    return {
      title: `No reading since ${utc(d.last_reading_at, { seconds: false })}`,
      detail: `Quiet for more than ${d.stale_after_h} h: check the site's devices and their connection`,
    };
  }
  return { title: `${site}: ${a.kind}`, detail: JSON.stringify(d) };
}

/** "raised 4 min ago" with the absolute time as a tooltip. */
export function raisedAt(a) {
  return h("time", { datetime: a.raised_at, title: utc(a.raised_at) },
    ago((Date.now() - Date.parse(a.raised_at)) / 1000));
}

export function ackedText(a) {
  return `Acknowledged by ${a.acknowledged_by} at ${utc(a.acknowledged_at, { seconds: false })}`;
}

/**
 * POST with an operator token (asked for when there is none, or when the one we have is
 * refused). Resolves to the answer's body, or null when the operator cancelled.
 */
export async function operatorPost(path, body, { title, reason }) {
  let token = adminToken();
  let why = reason;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    if (!token) token = await askToken({ title, reason: why, needs: "operator" });
    if (!token) return null;
    try {
      const { data } = await request("POST", path, {
        body,
        headers: { Authorization: `Bearer ${token}` },
      });
      return data;
    } catch (err) {
      if (!(err instanceof ApiError) || (err.status !== 401 && err.status !== 403)) throw err;
      why = `That token was refused (${err.problem.title}). ${reason}`;
      token = "";
    }
  }
  return null;
}

/** Acknowledge one alert (POST /v1/alerts/{id}/ack, audited); null when cancelled. */
export async function acknowledge(alert) {
  return operatorPost(`/v1/alerts/${alert.id}/ack`, undefined, {
    title: "Acknowledge alert",
    reason: `Acknowledging alert #${alert.id} (${siteName(alert.site_id)}) needs the operator role or above and is audited.`,
  });
}

/**
 * Acknowledge many open alerts at once (POST /v1/alerts/ack, audited): body { alert_ids } or
 * { site_id, kind } (a group). Resolves to { acknowledged, alert_ids, audit }, or null.
 */
export async function acknowledgeMany(body, what) {
  return operatorPost("/v1/alerts/ack", body, {
    title: "Acknowledge alerts",
    reason: `Acknowledging ${what} needs the operator role or above and is audited.`,
  });
}

export const KINDS = Object.keys(KIND);
export const kindLabel = (kind) => (KIND[kind] || { label: kind }).label;
