// #/alerts: open and acknowledged alerts (threshold, leak, stale), grouped by site and kind
// (how many, first and last seen), then newest first, in words; each open one, a selection, or
// whole groups can be acknowledged with an operator token. ?site=ID and ?kind=K narrow both.

import { Unreachable, describe, get, getAll } from "../api.js";
import { fill, h, reconcile, setText } from "../dom.js";
import { ago, count, plural, utc } from "../format.js";
import { KINDS, ackedText, acknowledge, acknowledgeMany, describeAlert, kindBadge, kindLabel, raisedAt, siteName } from "../alerts.js";
import { rememberSites, store } from "../store.js";
import { errorSlot } from "./common.js";

const LIMIT = 100;
const MAX_LIMIT = 500; // the API's page size cap
const TABS = [
  { key: "open", label: "Open" },
  { key: "acknowledged", label: "Acknowledged" },
];

/**
 * A row of the alert list; `onAck` runs after an alert was acknowledged. Shared with the site
 * page. With `select` ({ has(id), set(id, on) }) an open alert also gets a checkbox.
 */
export function alertRow(onAck, status, select = null) {
  return {
    create() {
      return h("li", { class: "alert-item" },
        select ? h("div", { class: "alert-pick" }) : null,
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
      const pick = li.querySelector(".alert-pick");
      if (pick) {
        const open = !a.acknowledged_at;
        if (pick.dataset.open !== String(open)) {
          pick.dataset.open = String(open);
          fill(pick, open ? h("input", { type: "checkbox", class: "alert-check", "aria-label": `Select alert ${a.id}: ${text.title}`,
            onchange: (e) => select.set(a.id, e.target.checked) }) : null);
        }
        const box = pick.querySelector("input");
        if (box) box.checked = select.has(a.id);
      }
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

const groupKey = (g) => `${g.site_id}:${g.kind}`;
const since = (iso) => (Date.now() - Date.parse(iso)) / 1000;

export function mount(root, params) {
  const tab = TABS.some((t) => t.key === params.status) ? params.status : "open";
  const siteId = /^\d+$/.test(params.site || "") ? Number(params.site) : null;
  const kind = KINDS.includes(params.kind) ? params.kind : null;
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
  const query = (status, { site = siteId, k = kind } = {}) => {
    const q = new URLSearchParams({ status });
    if (site) q.set("site", String(site));
    if (k) q.set("kind", k);
    return `#/alerts?${q}`;
  };

  // What is ticked: single alerts by id, whole groups by "site:kind".
  const pickedAlerts = new Set();
  const pickedGroups = new Map();
  const ackBtn = h("button", { type: "button", class: "button small", id: "ack-selected", disabled: true, dataset: { needs: "operator" } }, "Acknowledge selected…");
  const pickedText = h("span", { class: "muted small", id: "alerts-picked" }, "None selected");

  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Alert state" },
    TABS.map((t) => h("a", {
      role: "tab", class: "tab", href: query(t.key), id: `tab-${t.key}`,
      "aria-selected": t.key === tab ? "true" : "false", "aria-controls": "alert-panel",
    }, t.label, " ", counts.get(t.key))));
  const filter = siteId
    ? h("p", { class: "filter-chip" }, "Site: ", h("a", { href: `#/sites/${siteId}`, class: "chip-site" }, siteName(siteId)), " ",
      h("a", { href: query(tab, { site: null }), class: "button small ghost" }, "Show all sites"))
    : null;
  const kinds = h("nav", { class: "kind-filter", id: "kind-filter", "aria-label": "Filter by kind" },
    h("span", { class: "muted small" }, "Kind:"),
    [null, ...KINDS].map((k) => h("a", {
      class: `button small ${k === kind ? "" : "ghost"}`, href: query(tab, { k }),
      "aria-current": k === kind ? "true" : null, dataset: { kind: k || "all" },
    }, k ? kindLabel(k) : "All kinds")));

  function status(text, tone) {
    note.hidden = false;
    note.className = `notice notice-${tone}`;
    setText(note, text);
  }

  function renderPicked() {
    const n = pickedAlerts.size;
    const g = pickedGroups.size;
    const alertsN = n + [...pickedGroups.values()].reduce((sum, x) => sum + x.open, 0);
    const parts = [n ? plural(n, "alert") : null, g ? plural(g, "group") : null].filter(Boolean);
    setText(pickedText, parts.length ? `${parts.join(" and ")} selected (${plural(alertsN, "open alert")})` : "None selected");
    ackBtn.disabled = n + g === 0;
    setText(ackBtn, n + g ? `Acknowledge ${count(alertsN)} selected…` : "Acknowledge selected…");
  }

  const row = alertRow((done) => {
    status(`Alert #${done.id} acknowledged: ${ackedText(done)}.`, "ok");
    store.pollNow?.(); // the list and the header's open count, now
  }, status, tab === "open" ? {
    has: (id) => pickedAlerts.has(id),
    set: (id, on) => {
      if (on) pickedAlerts.add(id);
      else pickedAlerts.delete(id);
      renderPicked();
    },
  } : null);

  ackBtn.addEventListener("click", async () => {
    ackBtn.disabled = true;
    const requests = [];
    if (pickedAlerts.size) requests.push([{ alert_ids: [...pickedAlerts] }, plural(pickedAlerts.size, "selected alert")]);
    for (const g of pickedGroups.values()) {
      requests.push([{ site_id: g.site_id, kind: g.kind }, `the open ${kindLabel(g.kind).toLowerCase()} alerts of ${siteName(g.site_id)}`]);
    }
    let total = 0;
    const audits = [];
    try {
      for (const [body, what] of requests) {
        const done = await acknowledgeMany(body, what);
        if (!done) return; // cancelled: what was done so far stays done
        total += done.acknowledged;
        audits.push(`#${done.audit.id}`);
      }
      pickedAlerts.clear();
      pickedGroups.clear();
      status(`${plural(total, "alert")} acknowledged (audit ${audits.join(", ")}).`, "ok");
      store.pollNow?.();
    } catch (err) {
      if (!(err instanceof Unreachable)) status(`Could not acknowledge: ${describe(err)}`, "danger");
    } finally {
      renderPicked();
    }
  });

  const groupBody = h("tbody", { id: "group-rows" });
  const groupTable = h("table", { class: "table groups-table", hidden: true },
    h("caption", { class: "sr-only" }, `${tab === "open" ? "Open" : "Acknowledged"} alerts grouped by site and kind`),
    h("thead", {}, h("tr", {},
      tab === "open" ? h("th", { scope: "col", class: "g-check" }, h("span", { class: "sr-only" }, "Select")) : null,
      h("th", { scope: "col" }, "Site"), h("th", { scope: "col" }, "Kind"),
      h("th", { scope: "col", class: "num" }, "Alerts"), h("th", { scope: "col", class: "num" }, "Open"),
      h("th", { scope: "col" }, "First seen"), h("th", { scope: "col" }, "Last seen"),
      h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Show")))),
    groupBody);
  const groupEmpty = h("p", { class: "empty", hidden: true });
  const groupMore = h("p", { class: "muted small", hidden: true }, "More groups than shown: filter by kind or site to see the rest.");

  function createGroup() {
    const cells = [];
    if (tab === "open") {
      const box = h("input", { type: "checkbox", class: "group-check" });
      box.addEventListener("change", () => {
        const g = JSON.parse(box.dataset.group);
        if (box.checked) pickedGroups.set(groupKey(g), g);
        else pickedGroups.delete(groupKey(g));
        renderPicked();
      });
      cells.push(h("td", { class: "g-check" }, box));
    }
    return h("tr", {}, cells,
      h("th", { scope: "row", class: "g-site" }, h("a", {})), h("td", { class: "g-kind" }),
      h("td", { class: "num g-count" }), h("td", { class: "num g-open" }),
      h("td", { class: "g-first" }), h("td", { class: "g-last" }),
      h("td", { class: "g-show" }, h("a", { class: "button small ghost" }, "Show")));
  }

  function updateGroup(tr, g) {
    const box = tr.querySelector(".group-check");
    if (box) {
      box.dataset.group = JSON.stringify(g);
      box.checked = pickedGroups.has(groupKey(g));
      if (box.checked) pickedGroups.set(groupKey(g), g); // fresher counts
      box.setAttribute("aria-label", `Select the ${kindLabel(g.kind).toLowerCase()} alerts of ${siteName(g.site_id)}`);
    }
    const site = tr.querySelector(".g-site a");
    site.href = `#/sites/${g.site_id}`;
    setText(site, siteName(g.site_id));
    const k = tr.querySelector(".g-kind");
    if (k.dataset.kind !== g.kind) {
      k.dataset.kind = g.kind;
      fill(k, kindBadge(g.kind));
    }
    setText(tr.querySelector(".g-count"), count(g.count));
    setText(tr.querySelector(".g-open"), count(g.open));
    for (const [cls, iso] of [[".g-first", g.first_raised_at], [".g-last", g.last_raised_at]]) {
      const cell = tr.querySelector(cls);
      setText(cell, ago(since(iso)));
      cell.title = utc(iso);
    }
    const show = tr.querySelector(".g-show a");
    show.href = query(tab, { site: g.site_id, k: g.kind });
    show.setAttribute("aria-label", `Show the ${kindLabel(g.kind).toLowerCase()} alerts of ${siteName(g.site_id)}`);
  }

  fill(root,
    h("div", { class: "page-head" },
      h("h1", { tabindex: "-1" }, "Alerts"),
      h("p", { class: "muted" }, "Raised by the worker as readings are applied: a site passing 80 % and 100 % of its annual limit, a measurement window above the leak threshold, a site that stopped reporting. Each fires once; acknowledging one records who saw it.")),
    errors.el,
    h("section", { class: "card", "aria-label": "Alerts" },
      h("div", { class: "card-head" }, tabs, filter),
      kinds,
      note,
      h("div", { id: "alert-panel", role: "tabpanel", "aria-labelledby": `tab-${tab}` },
        h("section", { class: "alert-groups", "aria-labelledby": "groups-title" },
          h("h2", { id: "groups-title", class: "h3" }, "By site and kind"),
          h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "groups-title" }, groupTable, groupEmpty), groupMore),
        tab === "open" ? h("div", { class: "toolbar ack-bar" }, pickedText, ackBtn) : null,
        h("h2", { class: "h3" }, "Newest first"),
        list, empty, more),
      h("p", { class: "loading", id: "alerts-loading" }, "Loading alerts…")));

  async function refresh() {
    try {
      const filters = `${siteId ? `&site_id=${siteId}` : ""}${kind ? `&kind=${kind}` : ""}`;
      const [page, other, groups] = await Promise.all([
        get(`/v1/alerts?status=${tab}&limit=${limit}${filters}`),
        get(`/v1/alerts?status=${tab === "open" ? "acknowledged" : "open"}&limit=${LIMIT}${filters}`),
        get(`/v1/alerts/groups?status=${tab}${filters}`),
      ]);
      const unknown = [...page.items, ...groups.items].some((a) => !store.siteNames.has(a.site_id));
      if (unknown) rememberSites(await getAll("/v1/sites?limit=500", "after", "next_after"));
      const n = (p) => (p.next_before === null ? count(p.items.length) : `${count(p.items.length)}+`);
      const otherTab = tab === "open" ? "acknowledged" : "open";
      // The API counts them all (older APIs: what the pages hold).
      setText(counts.get(tab), page.counts ? count(page.counts[tab]) : n(page));
      setText(counts.get(otherTab), page.counts ? count(page.counts[otherTab]) : n(other));
      reconcile(groupBody, groups.items, groupKey, createGroup, updateGroup);
      // A group no longer listed (all acknowledged meanwhile) is no longer selected.
      for (const key of [...pickedGroups.keys()]) if (!groups.items.some((g) => groupKey(g) === key)) pickedGroups.delete(key);
      for (const id of [...pickedAlerts]) if (!page.items.some((a) => a.id === id && !a.acknowledged_at)) pickedAlerts.delete(id);
      groupTable.hidden = groups.items.length === 0;
      groupEmpty.hidden = groups.items.length > 0;
      setText(groupEmpty, "No alerts to group.");
      groupMore.hidden = !groups.truncated;
      reconcile(list, page.items, (a) => a.id, row.create, row.update);
      list.hidden = page.items.length === 0;
      empty.hidden = page.items.length > 0;
      setText(empty, tab === "open" ? "No open alerts." : "No acknowledged alerts yet.");
      more.hidden = page.next_before === null;
      setText(moreText, `Showing the newest ${count(limit)}.`);
      moreBtn.hidden = limit >= MAX_LIMIT;
      renderPicked();
      root.querySelector("#alerts-loading")?.remove();
      errors.clear();
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      errors.show("Could not load the alerts", err);
    }
  }

  return { title: "Alerts", refresh };
}
