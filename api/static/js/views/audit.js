// #/audit: the audit trail (GET /v1/ops/audit, operators and admins), newest first: who (token
// name and role), what, with what, how many rows. The filters and the page live in the URL
// (?actor=&action=&from=&to=&before=&limit=), so a filtered view can be shared or reloaded.

import { ApiError, Unreachable, get } from "../api.js";
import { badge, fill, h, reconcile, setText } from "../dom.js";
import { count, utc } from "../format.js";
import { askToken } from "../token.js";
import { errorSlot } from "./common.js";

const LIMIT = 50;
const ACTIONS = [
  "site.create", "site.update", "device.create", "device.revoke", "token.create", "token.revoke",
  "alert.ack", "alerts.ack", "outbox.replay", "deliveries.replay", "stream.replay",
  "subscription.create", "subscription.disable", "subscription.pause", "subscription.resume",
  "aggregates.rebuild",
];
const ROLE_TONE = { viewer: "neutral", operator: "info", admin: "warning" };
const FILTERS = ["actor", "action", "from", "to"];

/** An ISO instant from a datetime-local value read as UTC ("" stays ""). */
function isoOf(local) {
  return local ? `${local.length === 16 ? `${local}:00` : local}Z` : "";
}

/** The URL's query for these filters (empty ones left out), with a cursor and size if given. */
function hashFor(filters, extra = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...filters, ...extra })) if (v) q.set(k, String(v));
  const text = q.toString();
  return text ? `#/audit?${text}` : "#/audit";
}

export function mount(root, params) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params[k] || ""]));
  const limit = /^\d+$/.test(params.limit || "") ? Math.min(500, Math.max(1, Number(params.limit))) : LIMIT;
  const before = /^\d+$/.test(params.before || "") ? params.before : "";
  const errors = errorSlot();
  const actor = h("input", { id: "audit-actor", type: "text", value: filters.actor, autocomplete: "off", spellcheck: "false", placeholder: "token name" });
  const action = h("input", { id: "audit-action", type: "text", value: filters.action, list: "audit-actions", autocomplete: "off", spellcheck: "false", placeholder: "any" });
  const from = h("input", { id: "audit-from", type: "datetime-local", value: filters.from.slice(0, 16) });
  const to = h("input", { id: "audit-to", type: "datetime-local", value: filters.to.slice(0, 16) });
  const form = h("form", { class: "toolbar", "aria-label": "Audit filters", onsubmit: (e) => {
    e.preventDefault();
    location.hash = hashFor({ actor: actor.value.trim(), action: action.value.trim(), from: isoOf(from.value), to: isoOf(to.value) },
      limit === LIMIT ? {} : { limit });
  } },
    h("span", { class: "control" }, h("label", { for: "audit-actor" }, "Who"), actor),
    h("span", { class: "control" }, h("label", { for: "audit-action" }, "Action"), action,
      h("datalist", { id: "audit-actions" }, ACTIONS.map((a) => h("option", { value: a })))),
    h("span", { class: "control" }, h("label", { for: "audit-from" }, "From (UTC)"), from),
    h("span", { class: "control" }, h("label", { for: "audit-to" }, "To (UTC)"), to),
    h("button", { type: "submit", class: "button primary small" }, "Show"),
    h("a", { class: "button small ghost", href: "#/audit" }, "Clear"));

  const tbody = h("tbody", { id: "audit-rows" });
  const table = h("table", { class: "table audit-table", hidden: true },
    h("caption", { class: "sr-only" }, "Audit entries, newest first"),
    h("thead", {}, h("tr", {}, ["Entry", "At (UTC)", "Who", "Action", "With", "Rows", ""].map((t, i) =>
      h("th", { scope: "col", class: i === 5 ? "num" : "" }, t)))),
    tbody);
  const empty = h("p", { class: "empty", hidden: true }, "No entry matches.");
  const newer = h("a", { class: "button small ghost", id: "audit-newest", href: hashFor(filters, limit === LIMIT ? {} : { limit }), hidden: !before }, "← Newest");
  const older = h("a", { class: "button small ghost", id: "audit-older", hidden: true }, "Older →");
  const locked = h("div", { class: "notice", id: "audit-locked", hidden: true },
    h("span", { class: "locked-text" }), " ",
    h("button", { type: "button", class: "button small", onclick: signIn }, "Enter a token…"));

  fill(root,
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Audit"),
      h("p", { class: "muted" }, "Every operator write, dry runs included: the name and role of the token that made it, what it did, with what, and how many rows it touched. Operators and admins can read it.")),
    errors.el,
    h("section", { class: "card", "aria-label": "Filters" }, form),
    h("section", { class: "card", "aria-labelledby": "audit-title" },
      h("div", { class: "card-head" }, h("h2", { id: "audit-title" }, before ? `Entries before #${before}` : "Newest entries"), newer, older),
      locked,
      h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "audit-title" }, table, empty),
      h("p", { class: "loading", id: "audit-loading" }, "Loading the audit trail…")));

  async function signIn() {
    const token = await askToken({ title: "The audit trail", reason: "Reading the audit trail needs the operator role or above.", needs: "operator" });
    if (token) refresh();
  }

  function createRow() {
    return h("tr", {},
      h("td", { class: "mono a-id" }), h("td", { class: "a-at" }),
      h("td", { class: "a-who" }, h("span", { class: "a-actor" }), " ", h("span", { class: "a-role" })),
      h("td", { class: "mono a-action" }), h("td", { class: "a-params" }, h("code", {})),
      h("td", { class: "num a-rows" }), h("td", { class: "a-dry" }));
  }

  function updateRow(tr, e) {
    setText(tr.querySelector(".a-id"), `#${e.id}`);
    setText(tr.querySelector(".a-at"), utc(e.at));
    setText(tr.querySelector(".a-actor"), e.actor);
    const role = tr.querySelector(".a-role");
    if (role.dataset.role !== e.role) {
      role.dataset.role = e.role;
      fill(role, badge(e.role, ROLE_TONE[e.role] || "neutral"));
    }
    setText(tr.querySelector(".a-action"), e.action);
    setText(tr.querySelector(".a-params code"), JSON.stringify(e.params));
    setText(tr.querySelector(".a-rows"), count(e.affected));
    const dry = tr.querySelector(".a-dry");
    if (dry.dataset.dry !== String(e.dry_run)) {
      dry.dataset.dry = String(e.dry_run);
      fill(dry, e.dry_run ? badge("dry run", "info") : null);
    }
  }

  async function refresh() {
    const q = new URLSearchParams({ limit: String(limit) });
    for (const k of FILTERS) if (filters[k]) q.set(k, filters[k]);
    if (before) q.set("before", before);
    try {
      const page = await get(`/v1/ops/audit?${q}`);
      locked.hidden = true;
      reconcile(tbody, page.items, (e) => e.id, createRow, updateRow);
      table.hidden = page.items.length === 0;
      empty.hidden = page.items.length > 0;
      older.hidden = page.next_before === null;
      if (page.next_before !== null) older.href = hashFor(filters, { before: page.next_before, ...(limit === LIMIT ? {} : { limit }) });
      errors.clear();
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
        locked.hidden = false;
        table.hidden = true;
        setText(locked.querySelector(".locked-text"), err.status === 403
          ? `${err.problem.detail}.`
          : "The audit trail needs a token with the operator role or above.");
      } else errors.show("Could not load the audit trail", err);
    } finally {
      root.querySelector("#audit-loading")?.remove();
    }
  }

  return { title: "Audit", refresh };
}
