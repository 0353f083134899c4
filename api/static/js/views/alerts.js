// #/alerts: open and acknowledged alerts (threshold, leak, stale), newest first, in words;
// each open one can be acknowledged with an operator token. ?site=ID narrows to one site.

import { Unreachable, describe, get, getAll } from "../api.js";
import { fill, h, reconcile, setText } from "../dom.js";
import { count } from "../format.js";
import { ackedText, acknowledge, describeAlert, kindBadge, raisedAt, siteName } from "../alerts.js";
import { rememberSites, store } from "../store.js";
import { errorSlot } from "./common.js";

const LIMIT = 100;
const MAX_LIMIT = 500; // the API's page size cap
const TABS = [
  { key: "open", label: "Open" },
  { key: "acknowledged", label: "Acknowledged" },
];

/** A row of the alert list; `onAck` runs after an alert was acknowledged. Shared with the site page. */
export function alertRow(onAck, status) {
  return {
    create() {
      return h("li", { class: "alert-item" },
        h("div", { class: "alert-kind" }),
        h("div", { class: "alert-body" },
          h("div", { class: "alert-title" }),
          h("div", { class: "alert-detail muted small" }),
          h("div", { class: "alert-meta muted small" }, h("a", { class: "alert-site" }), " · raised ", h("span", { class: "alert-raised" }))),
        h("div", { class: "alert-actions" }));
    },
    update(li, a) {
      li.dataset.alertId = String(a.id);
      li.dataset.kind = a.kind;
      const kind = li.querySelector(".alert-kind");
      if (kind.dataset.kind !== a.kind) {
        kind.dataset.kind = a.kind;
        fill(kind, kindBadge(a.kind, a.details));
      }
      const text = describeAlert(a);
      setText(li.querySelector(".alert-title"), text.title);
      setText(li.querySelector(".alert-detail"), text.detail);
      const site = li.querySelector(".alert-site");
      site.href = `#/sites/${a.site_id}`;
      setText(site, siteName(a.site_id));
      fill(li.querySelector(".alert-raised"), raisedAt(a));
      const actions = li.querySelector(".alert-actions");
      const state = a.acknowledged_at ? `acked:${a.acknowledged_by}` : "open";
      if (actions.dataset.state === state) return;
      actions.dataset.state = state;
      if (a.acknowledged_at) {
        fill(actions, h("span", { class: "ack-text ok-text small" }, ackedText(a)));
      } else {
        const btn = h("button", { type: "button", class: "button small ack", "aria-label": `Acknowledge alert ${a.id}: ${text.title}`, dataset: { needs: "operator" } }, "Acknowledge");
        btn.addEventListener("click", async () => {
          btn.disabled = true;
          try {
            const done = await acknowledge(a);
            if (done) onAck(done);
          } catch (err) {
            if (!(err instanceof Unreachable)) status?.(`Could not acknowledge alert #${a.id}: ${describe(err)}`, "danger");
          } finally {
            btn.disabled = false;
          }
        });
        fill(actions, btn);
      }
    },
  };
}

export function mount(root, params) {
  const tab = TABS.some((t) => t.key === params.status) ? params.status : "open";
  const siteId = /^\d+$/.test(params.site || "") ? Number(params.site) : null;
  const errors = errorSlot();
  const list = h("ol", { class: "alert-list", id: "alert-list", "aria-label": `${tab === "open" ? "Open" : "Acknowledged"} alerts, newest first` });
  const empty = h("p", { class: "empty", hidden: true });
  let limit = LIMIT;
  const moreText = h("span", {});
  const moreBtn = h("button", { type: "button", class: "button small ghost", id: "alerts-more" }, "Show older");
  const more = h("p", { class: "muted small more-row", hidden: true }, moreText, " ", moreBtn);
  moreBtn.addEventListener("click", () => {
    limit = Math.min(MAX_LIMIT, limit + LIMIT);
    refresh();
  });
  const note = h("p", { class: "notice", role: "status", "aria-live": "polite", hidden: true });
  const counts = new Map(TABS.map((t) => [t.key, h("span", { class: "tab-count" })]));
  const query = (status) => {
    const q = new URLSearchParams({ status });
    if (siteId) q.set("site", String(siteId));
    return `#/alerts?${q}`;
  };

  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Alert state" },
    TABS.map((t) => h("a", {
      role: "tab", class: "tab", href: query(t.key), id: `tab-${t.key}`,
      "aria-selected": t.key === tab ? "true" : "false", "aria-controls": "alert-panel",
    }, t.label, " ", counts.get(t.key))));
  const filter = siteId
    ? h("p", { class: "filter-chip" }, "Site: ", h("a", { href: `#/sites/${siteId}`, class: "chip-site" }, siteName(siteId)), " ",
      h("a", { href: `#/alerts?status=${tab}`, class: "button small ghost" }, "Show all sites"))
    : null;

  function status(text, tone) {
    note.hidden = false;
    note.className = `notice notice-${tone}`;
    setText(note, text);
  }

  const row = alertRow((done) => {
    status(`Alert #${done.id} acknowledged: ${ackedText(done)}.`, "ok");
    store.pollNow?.(); // the list and the header's open count, now
  }, status);

  fill(root,
    h("div", { class: "page-head" },
      h("h1", { tabindex: "-1" }, "Alerts"),
      h("p", { class: "muted" }, "Raised by the worker as readings are applied: a site passing 80 % and 100 % of its annual limit, a measurement window above the leak threshold, a site that stopped reporting. Each fires once; acknowledging one records who saw it.")),
    errors.el,
    h("section", { class: "card", "aria-label": "Alerts" },
      h("div", { class: "card-head" }, tabs, filter),
      note,
      h("div", { id: "alert-panel", role: "tabpanel", "aria-labelledby": `tab-${tab}` }, list, empty, more),
      h("p", { class: "loading", id: "alerts-loading" }, "Loading alerts…")));

  async function refresh() {
    try {
      const site = siteId ? `&site_id=${siteId}` : "";
      const [page, other] = await Promise.all([
        get(`/v1/alerts?status=${tab}&limit=${limit}${site}`),
        get(`/v1/alerts?status=${tab === "open" ? "acknowledged" : "open"}&limit=${LIMIT}${site}`),
      ]);
      const unknown = page.items.some((a) => !store.siteNames.has(a.site_id));
      if (unknown) rememberSites(await getAll("/v1/sites?limit=500", "after", "next_after"));
      const n = (p) => (p.next_before === null ? count(p.items.length) : `${count(p.items.length)}+`);
      const otherTab = tab === "open" ? "acknowledged" : "open";
      // The API counts them all (older APIs: what the pages hold).
      setText(counts.get(tab), page.counts ? count(page.counts[tab]) : n(page));
      setText(counts.get(otherTab), page.counts ? count(page.counts[otherTab]) : n(other));
      reconcile(list, page.items, (a) => a.id, row.create, row.update);
      list.hidden = page.items.length === 0;
      empty.hidden = page.items.length > 0;
      setText(empty, tab === "open" ? "No open alerts." : "No acknowledged alerts yet.");
      more.hidden = page.next_before === null;
      setText(moreText, `Showing the newest ${count(limit)}.`);
      moreBtn.hidden = limit >= MAX_LIMIT;
      root.querySelector("#alerts-loading")?.remove();
      errors.clear();
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      errors.show("Could not load the alerts", err);
    }
  }

  return { title: "Alerts", refresh };
}
