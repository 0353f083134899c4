// The queue page's webhook panel: subscriptions with their delivery health (GET
// /v1/subscriptions), a subscription's dead deliveries on demand, and replaying them (dry run
// first, audited). On an API without subscriptions (404) the panel says so and stays quiet.

import { ApiError, Unreachable, describe, get } from "../api.js";
import { badge, fill, h, reconcile, setText } from "../dom.js";
import { ago, count, utc } from "../format.js";
import { DELIVERIES, openReplay } from "../replay.js";

const DEAD_LIMIT = 20;
const since = (iso) => (Date.now() - Date.parse(iso)) / 1000;

/** "HTTP 500 · receiver says no", without saying the status twice when the error names it. */
function answer(code, error) {
  const text = error || "—";
  return code && !text.includes(String(code)) ? `HTTP ${code} · ${text}` : text;
}

export function subscriptionsPanel() {
  let available = null; // null: not asked yet; false: this API has no subscriptions
  const open = new Set(); // subscription ids whose dead deliveries are shown
  const caption = h("caption", { class: "sr-only" }, "Webhook subscriptions and their delivery health");
  const thead = h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Receiver"), h("th", { scope: "col", class: "col-opt" }, "Event types"),
      h("th", { scope: "col", class: "num" }, "Delivered, last hour"), h("th", { scope: "col", class: "num" }, "Pending"),
      h("th", { scope: "col", class: "num" }, "Backoff"), h("th", { scope: "col", class: "num" }, "Dead"),
      h("th", { scope: "col" }, "Last error"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions"))));
  const table = h("table", { class: "table subs-table", hidden: true }, caption, thead);
  const empty = h("p", { class: "empty", hidden: true }, "No webhook subscriptions. Register one with POST /v1/subscriptions (admin).");
  const unavailable = h("p", { class: "notice", hidden: true, id: "subs-unavailable" }, "Webhook subscriptions are not available on this API.");
  const errorEl = h("p", { class: "notice notice-danger", role: "status", hidden: true });
  const el = h("section", { class: "card", "aria-labelledby": "subs-title", id: "subscriptions" },
    h("div", { class: "card-head" }, h("h2", { id: "subs-title" }, "Webhook subscriptions")),
    h("p", { class: "muted small" }, "Receivers of the events (batches accepted, alerts raised, reports restated). Each event is sent to each matching subscription at least once, retried with backoff; a delivery that fails every attempt is dead until replayed."),
    unavailable, errorEl,
    h("div", { class: "table-wrap" }, table, empty));

  function createRow(sub) {
    const toggle = h("button", { type: "button", class: "button small ghost dead-toggle", "aria-expanded": "false" }, "Dead deliveries", h("span", { class: "chev", "aria-hidden": "true" }, " ▸"));
    const replay = h("button", { type: "button", class: "button small danger replay-dead", dataset: { needs: "operator" } }, "Replay dead…");
    const main = h("tr", { class: "sub-row" },
      h("th", { scope: "row", class: "sub-url" }, h("code", { class: "url" }), h("div", { class: "muted small desc" })),
      h("td", { class: "col-opt types" }),
      h("td", { class: "num delivered" }, h("span", { class: "n" }), h("div", { class: "muted small last-ok" })),
      h("td", { class: "num pending" }), h("td", { class: "num backoff" }), h("td", { class: "num dead" }),
      h("td", { class: "err" }, h("code", { class: "error-text" }), h("div", { class: "muted small err-when" })),
      h("td", { class: "row-actions" }, toggle, replay));
    const detail = h("tr", { class: "dead-row", hidden: true },
      h("td", { colspan: "8" }, h("div", { class: "dead-list" }, h("p", { class: "muted small" }, "Loading…"))));
    // One keyed element per subscription: a tbody of two rows (the subscription, its dead list).
    const group = h("tbody", { class: "sub-group" }, main, detail);
    toggle.addEventListener("click", () => {
      const id = Number(group.dataset.key);
      const now = !open.has(id);
      if (now) open.add(id);
      else open.delete(id);
      toggle.setAttribute("aria-expanded", String(now));
      setText(toggle.querySelector(".chev"), now ? " ▾" : " ▸");
      detail.hidden = !now;
      if (now) loadDead(id, detail);
    });
    return group;
  }

  function updateRow(group, sub) {
    const hl = sub.health || {};
    const url = group.querySelector(".url");
    setText(url, sub.url);
    url.title = sub.url;
    const desc = group.querySelector(".desc");
    setText(desc, `#${sub.id}${sub.description ? ` · ${sub.description}` : ""} · by ${sub.created_by}${sub.disabled_at ? " · disabled" : ""}`);
    const types = group.querySelector(".types");
    const key = sub.event_types.join(",");
    if (types.dataset.types !== key) {
      types.dataset.types = key;
      fill(types, sub.event_types.map((t) => h("span", { class: "chip mono" }, t)));
    }
    setText(group.querySelector(".delivered .n"), count(hl.delivered_last_hour));
    setText(group.querySelector(".last-ok"), hl.last_delivered_at ? `last ${ago(since(hl.last_delivered_at))}` : "none yet");
    setText(group.querySelector(".pending"), count(hl.pending));
    setText(group.querySelector(".backoff"), count(hl.in_backoff));
    const dead = group.querySelector(".dead");
    const deadKey = String(hl.dead);
    if (dead.dataset.n !== deadKey) {
      dead.dataset.n = deadKey;
      fill(dead, hl.dead ? badge(count(hl.dead), "danger", "Dead-lettered deliveries: replay them once the receiver is fixed") : "0");
    }
    group.querySelector(".sub-row").classList.toggle("row-dead", hl.dead > 0);
    const err = group.querySelector(".error-text");
    const errText = hl.last_error ? answer(hl.last_status_code, hl.last_error) : "—";
    setText(err, errText);
    err.title = hl.last_error || "";
    err.classList.toggle("muted", !hl.last_error);
    setText(group.querySelector(".err-when"), hl.last_failure_at ? `failed ${ago(since(hl.last_failure_at))}` : "");
    const toggle = group.querySelector(".dead-toggle");
    toggle.setAttribute("aria-label", `Dead deliveries of subscription ${sub.id}`);
    const replay = group.querySelector(".replay-dead");
    replay.disabled = !hl.dead;
    replay.setAttribute("aria-label", `Replay dead deliveries of subscription ${sub.id}`);
    replay.onclick = () => openReplay({
      what: `dead deliveries of subscription #${sub.id}`,
      body: { subscription_id: sub.id, all_dead: true },
      kind: DELIVERIES,
    }, () => refresh());
    if (open.has(sub.id)) loadDead(sub.id, group.querySelector(".dead-row"));
  }

  async function loadDead(id, detail) {
    const box = detail.querySelector(".dead-list");
    try {
      const page = await get(`/v1/subscriptions/${id}/deliveries?status=dead&limit=${DEAD_LIMIT}`);
      if (!page.items.length) {
        fill(box, h("p", { class: "empty ok-text" }, "No dead deliveries."));
        return;
      }
      let body = box.querySelector("tbody");
      if (!body) {
        body = h("tbody");
        fill(box, h("table", { class: "table deliveries-table" },
          h("caption", { class: "sr-only" }, `Dead deliveries of subscription ${id}`),
          h("thead", {}, h("tr", {}, ["Delivery", "Event", "Type", "Attempts", "Last answer", "Dead since"].map((t, i) =>
            h("th", { scope: "col", class: i === 3 ? "num" : "" }, t)))), body),
        h("p", { class: "muted small more", hidden: true }, `Showing the newest ${DEAD_LIMIT}; replaying covers them all.`));
      }
      reconcile(body, page.items, (d) => d.id,
        () => h("tr", {}, h("td", { class: "mono d-id" }), h("td", { class: "mono d-ev" }), h("td", { class: "mono d-type" }),
          h("td", { class: "num d-att" }), h("td", { class: "d-err" }, h("code", { class: "error-text" })), h("td", { class: "d-dead" })),
        (tr, d) => {
          setText(tr.querySelector(".d-id"), `#${d.id}`);
          setText(tr.querySelector(".d-ev"), `#${d.event_id}`);
          setText(tr.querySelector(".d-type"), d.event_type);
          setText(tr.querySelector(".d-att"), count(d.attempts));
          setText(tr.querySelector(".d-err code"), answer(d.last_status_code, d.last_error));
          const when = tr.querySelector(".d-dead");
          setText(when, d.dead_at ? ago(since(d.dead_at)) : "—");
          when.title = d.dead_at ? utc(d.dead_at) : "";
        });
      box.querySelector(".more").hidden = page.next_before === null;
    } catch (err) {
      if (err instanceof Unreachable) return;
      fill(box, h("p", { class: "notice notice-danger" }, `Could not load the dead deliveries: ${describe(err)}`));
    }
  }

  async function refresh() {
    if (available === false) return;
    try {
      const page = await get("/v1/subscriptions");
      available = true;
      reconcile(table, page.items, (s) => s.id, createRow, updateRow);
      // reconcile keeps only the keyed children (one tbody per subscription): head back in front.
      table.prepend(caption, thead);
      table.hidden = page.items.length === 0;
      empty.hidden = page.items.length > 0;
      errorEl.hidden = true;
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      if (err instanceof ApiError && (err.status === 404 || err.status === 405)) {
        available = false; // an API from before webhooks: say so once, then stop asking
        unavailable.hidden = false;
        table.hidden = true;
        return;
      }
      errorEl.hidden = false;
      setText(errorEl, `Could not load the subscriptions: ${describe(err)}`);
    }
  }

  return { el, refresh };
}
