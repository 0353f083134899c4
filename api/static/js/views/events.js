// Outbox triage. On #/queue: a filter bar (state, site, type, batch id, request id, creation
// time; all in the URL: #/queue?status=dead&site=3&type=…&batch=…&request=…&from=…&to=…&before=…),
// keyset pages, a selection to replay, and "replay every dead event matching". On
// #/queue/events/<id>: one event with its raw payload (copyable), every recorded failure and
// the replays that concern it (GET /v1/ops/outbox/{id}).

import { ApiError, Unreachable, get, getAll } from "../api.js";
import { badge, fill, h, reconcile, setText } from "../dom.js";
import { ago, count, duration, utc, window as span } from "../format.js";
import { openReplay } from "../replay.js";
import { rememberSites, store } from "../store.js";
import { errorSlot } from "./common.js";

const LIMIT = 100;
const STATUSES = [["dead", "Dead"], ["backoff", "Retrying"], ["pending", "Pending"], ["processed", "Processed"], ["all", "Any state"]];
const TYPES = ["measurements.accepted", "site.threshold_crossed", "site.leak_detected", "site.stale", "report.restated"];
const FILTERS = ["status", "site", "type", "batch", "request", "from", "to"];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function siteLabel(siteId) {
  const name = store.siteNames.get(siteId);
  return name ? `${name} (#${siteId})` : `site #${siteId}`;
}

/** An ISO instant from a datetime-local value read as UTC ("" stays ""). */
function isoOf(local) {
  return local ? `${local.length === 16 ? `${local}:00` : local}Z` : "";
}

/** The URL for these filters (empty ones, and the default state, left out). */
export function queueHash(filters, extra = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...filters, ...extra })) {
    if (v && !(k === "status" && v === "dead")) q.set(k, String(v));
  }
  const text = q.toString();
  return text ? `#/queue?${text}` : "#/queue";
}

/** The event's state in words and a badge tone. */
function stateOf(e) {
  if (e.dead_at) return ["Dead", "danger"];
  if (e.processed_at) return ["Processed", "ok"];
  if (Date.parse(e.available_at) > Date.now()) return ["Retrying", "warning"];
  return [e.attempts ? "Due again" : "Pending", "info"];
}

function whenOf(e) {
  if (e.dead_at) return [`dead ${ago((Date.now() - Date.parse(e.dead_at)) / 1000)}`, e.dead_at];
  if (e.processed_at) return [`applied ${ago((Date.now() - Date.parse(e.processed_at)) / 1000)}`, e.processed_at];
  const due = (Date.parse(e.available_at) - Date.now()) / 1000;
  return [due > 0 ? `next try in ${duration(due)}` : "due now", e.available_at];
}

/** The triage panel of #/queue; `params` is the hash query. */
// The queue page's URL (filters, page) the triage list was last shown with, so an event's
// "← Queue" link goes back to the same list, as the browser's Back button does.
let lastList = "#/queue";

export function triagePanel(params) {
  if (location.hash.startsWith("#/queue") && !location.hash.startsWith("#/queue/")) lastList = location.hash;
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params[k] || ""]));
  if (!STATUSES.some(([v]) => v === filters.status)) filters.status = "dead";
  const before = /^\d+$/.test(params.before || "") ? params.before : "";
  const errors = errorSlot();
  const selected = new Set();
  let items = [];
  let loaded = false;

  const status = h("select", { id: "f-status" }, STATUSES.map(([v, t]) => h("option", { value: v, selected: v === filters.status }, t)));
  const site = h("select", { id: "f-site" }, h("option", { value: "" }, "Any site"));
  const type = h("select", { id: "f-type" }, h("option", { value: "" }, "Any type"),
    TYPES.map((t) => h("option", { value: t, selected: t === filters.type }, t)));
  const batch = h("input", { id: "f-batch", type: "text", value: filters.batch, autocomplete: "off", spellcheck: "false", placeholder: "uuid", size: 14 });
  const requestId = h("input", { id: "f-request", type: "text", value: filters.request, autocomplete: "off", spellcheck: "false", placeholder: "X-Request-Id", size: 14 });
  const from = h("input", { id: "f-from", type: "datetime-local", value: filters.from.slice(0, 16) });
  const to = h("input", { id: "f-to", type: "datetime-local", value: filters.to.slice(0, 16) });
  const form = h("form", { class: "toolbar triage-filters", "aria-label": "Event filters", onsubmit: (e) => {
    e.preventDefault();
    location.hash = queueHash({
      status: status.value, site: site.value, type: type.value, batch: batch.value.trim(),
      request: requestId.value.trim(), from: isoOf(from.value), to: isoOf(to.value),
    });
  } },
    h("span", { class: "control" }, h("label", { for: "f-status" }, "State"), status),
    h("span", { class: "control" }, h("label", { for: "f-site" }, "Site"), site),
    h("span", { class: "control" }, h("label", { for: "f-type" }, "Type"), type),
    h("span", { class: "control" }, h("label", { for: "f-batch" }, "Batch id"), batch),
    h("span", { class: "control" }, h("label", { for: "f-request" }, "Request id"), requestId),
    h("span", { class: "control" }, h("label", { for: "f-from" }, "Created from (UTC)"), from),
    h("span", { class: "control" }, h("label", { for: "f-to" }, "to (UTC)"), to),
    h("button", { type: "submit", class: "button primary small" }, "Show"),
    h("a", { class: "button small ghost", href: "#/queue" }, "Clear"));

  const list = h("ul", { class: "triage-list", id: "triage-list", "aria-label": "Events, newest first", hidden: true });
  const loading = h("p", { class: "loading", id: "triage-loading" }, "Loading events…");
  const filtered = FILTERS.some((k) => k !== "status" && filters[k]);
  const empty = h("p", { class: `empty${filters.status === "dead" && !filtered ? " ok-text" : ""}`, id: "triage-empty", hidden: true },
    filters.status === "dead" && !filtered ? "No dead events." : "No event matches these filters.");
  const newer = h("a", { class: "button small ghost", id: "triage-newest", href: queueHash(filters), hidden: !before }, "← Newest");
  const older = h("a", { class: "button small ghost", id: "triage-older", hidden: true }, "Older →");
  const pageNote = h("span", { class: "muted small", id: "triage-page" });
  const selectPage = h("button", { type: "button", class: "button small ghost", id: "triage-select-page", onclick: () => {
    const all = items.every((e) => selected.has(e.id));
    for (const e of items) (all ? selected.delete(e.id) : selected.add(e.id));
    render();
  } }, "Select page");
  const replaySelected = h("button", { type: "button", class: "button small", id: "replay-selected", disabled: true, dataset: { needs: "operator" },
    onclick: () => {
      const ids = [...selected].sort((a, b) => a - b);
      openReplay({ what: `${count(ids.length)} selected event${ids.length === 1 ? "" : "s"}`, body: { event_ids: ids } }, () => { selected.clear(); store.pollNow?.(); });
    } }, "Replay selected…");
  // Every dead event the filter selects, on every page: the all_dead mode takes site, type and
  // creation time; batch and request ids only narrow the list (select those events instead).
  const byIdsOnly = Boolean(filters.batch || filters.request);
  const matchBody = { all_dead: true };
  if (filters.site) matchBody.site_id = Number(filters.site);
  if (filters.type) matchBody.event_type = filters.type;
  if (filters.from) matchBody.created_from = filters.from;
  if (filters.to) matchBody.created_to = filters.to;
  const replayMatching = h("button", { type: "button", class: "button small danger", id: "replay-all", dataset: { needs: "operator" },
    disabled: byIdsOnly || !["dead", "all"].includes(filters.status),
    title: byIdsOnly ? "Batch and request ids narrow the list only: select the events to replay them" : null,
    onclick: () => openReplay({ what: filtered ? "every dead event matching the filter" : "every dead event", body: matchBody }, () => { selected.clear(); store.pollNow?.(); }),
  }, filtered ? "Replay all dead matching…" : "Replay all dead…");

  const el = h("section", { class: "card", id: "triage", "aria-labelledby": "triage-title" },
    h("div", { class: "card-head" }, h("h2", { id: "triage-title" }, "Events: triage"), replayMatching),
    h("p", { class: "muted small" }, "Dead events failed every attempt; retrying ones wait for their next. Fix the cause first (the errors say what failed), then replay: a dry run shows what would be replayed. Open an event for its payload, every error and its audit history."),
    form,
    errors.el,
    h("div", { class: "triage-bar" }, selectPage, replaySelected, pageNote, newer, older),
    loading, list, empty);

  function createItem(e) {
    const box = h("input", { type: "checkbox", class: "pick", "aria-label": `Select event ${e.id}`, onchange: () => {
      if (box.checked) selected.add(e.id); else selected.delete(e.id);
      renderSelection();
    } });
    const one = h("button", { type: "button", class: "button small replay-one", dataset: { needs: "operator" }, "aria-label": `Replay event ${e.id}`,
      onclick: () => openReplay({ what: `event #${e.id}`, body: { event_ids: [e.id] } }, () => store.pollNow?.()) }, "Replay");
    return h("li", { class: "triage-item" },
      h("div", { class: "ti-head" }, box, h("a", { class: "mono ev", href: `#/queue/events/${e.id}` }, `#${e.id}`),
        h("span", { class: "ti-state" }), h("span", { class: "ti-type mono small" }), h("a", { class: "ti-site" }), one),
      h("dl", { class: "ti-ids" },
        h("dt", {}, "Batch"), h("dd", { class: "mono ti-batch" }),
        h("dt", {}, "Request"), h("dd", { class: "mono ti-request" })),
      h("p", { class: "ti-meta small" }, h("span", { class: "ti-what" }), " · ", h("span", { class: "attempts-text" }, "attempts ", h("span", { class: "attempts" })), " · ", h("span", { class: "when" })),
      h("code", { class: "error-text" }));
  }

  function updateItem(li, e) {
    const p = e.payload || {};
    const [state, tone] = stateOf(e);
    const st = li.querySelector(".ti-state");
    if (st.dataset.state !== state) {
      st.dataset.state = state;
      fill(st, badge(state, tone));
    }
    setText(li.querySelector(".ti-type"), e.event_type);
    const link = li.querySelector(".ti-site");
    link.href = `#/sites/${e.site_id}`;
    setText(link, siteLabel(e.site_id));
    setText(li.querySelector(".ti-batch"), p.batch_id || "—");
    setText(li.querySelector(".ti-request"), p.request_id || "—");
    const isBatch = e.event_type === "measurements.accepted";
    setText(li.querySelector(".ti-what"), isBatch ? `${p.device_id || "?"} · ${count(p.accepted)} readings · ${span(p.first_ts, p.last_ts)}` : `created ${utc(e.created_at)}`);
    setText(li.querySelector(".attempts"), count(e.attempts));
    const [when, at] = whenOf(e);
    const w = li.querySelector(".when");
    setText(w, when);
    w.title = utc(at);
    const err = li.querySelector(".error-text");
    setText(err, e.last_error || "no error recorded");
    err.hidden = !e.last_error;
    li.querySelector(".pick").checked = selected.has(e.id);
  }

  function renderSelection() {
    const n = selected.size;
    replaySelected.disabled = n === 0;
    setText(replaySelected, n ? `Replay ${count(n)} selected…` : "Replay selected…");
    setText(selectPage, items.length && items.every((e) => selected.has(e.id)) ? "Clear page" : "Select page");
  }

  function render() {
    reconcile(list, items, (e) => e.id, createItem, updateItem);
    renderSelection();
  }

  async function loadSites() {
    if (!store.siteNames.size) rememberSites(await getAll("/v1/sites?limit=500", "after", "next_after"));
    const wanted = filters.site ? Number(filters.site) : null;
    const ids = [...store.siteNames.keys()].sort((a, b) => a - b);
    if (wanted && !ids.includes(wanted)) ids.push(wanted);
    if (site.options.length === ids.length + 1) return;
    fill(site, h("option", { value: "" }, "Any site"),
      ids.map((id) => h("option", { value: String(id), selected: id === wanted }, siteLabel(id))));
  }

  async function refresh() {
    const problems = [];
    if (filters.batch && !UUID.test(filters.batch)) problems.push("a batch id is a UUID");
    const q = new URLSearchParams({ status: filters.status, limit: String(LIMIT) });
    const names = { site: "site_id", type: "event_type", batch: "batch_id", request: "request_id", from: "from", to: "to" };
    for (const [k, name] of Object.entries(names)) if (filters[k]) q.set(name, filters[k]);
    if (before) q.set("before", before);
    try {
      await loadSites();
      if (problems.length) throw new Error(`Check the filter: ${problems.join("; ")}.`);
      const page = await get(`/v1/ops/outbox?${q}`);
      const unknown = page.items.some((e) => !store.siteNames.has(e.site_id));
      if (unknown) rememberSites(await getAll("/v1/sites?limit=500", "after", "next_after"));
      items = page.items;
      loaded = true;
      render();
      list.hidden = items.length === 0;
      empty.hidden = items.length > 0;
      older.hidden = page.next_before === null;
      if (page.next_before !== null) older.href = queueHash(filters, { before: page.next_before });
      setText(pageNote, items.length ? `${before ? `Older than #${before}: ` : "Newest: "}${count(items.length)} shown${page.next_before === null ? "" : ", more on the next page"}` : "");
      errors.clear();
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      // A failed load is never an empty list: the last good one stays, marked by the error.
      errors.show(loaded ? "Could not refresh the events (showing the last answer)" : "Could not load the events", err);
      empty.hidden = true;
    } finally {
      loading.remove();
    }
  }

  return { el, refresh };
}

function field(label, value, cls = "") {
  return [h("dt", {}, label), h("dd", { class: cls }, value)];
}

/** #/queue/events/<id>: one event in full. */
export function mount(root, params) {
  const id = params.id;
  const errors = errorSlot();
  const summary = h("dl", { class: "event-summary" });
  const payload = h("pre", { class: "payload mono", id: "event-payload", tabindex: "0", "aria-label": "Raw payload (JSON)" });
  const copied = h("span", { class: "muted small", role: "status", id: "copy-status" });
  const copy = h("button", { type: "button", class: "button small", id: "copy-payload", onclick: async () => {
    try {
      await navigator.clipboard.writeText(payload.textContent);
      setText(copied, "Copied.");
    } catch {
      // No clipboard (insecure origin, denied): select the text so Ctrl+C copies it.
      getSelection().selectAllChildren(payload);
      setText(copied, "Selected: press Ctrl+C to copy.");
    }
  } }, "Copy JSON");
  const replay = h("button", { type: "button", class: "button danger small", id: "event-replay", dataset: { needs: "operator" },
    onclick: () => openReplay({ what: `event #${id}`, body: { event_ids: [id] } }, () => refresh()) }, "Replay…");
  const errorsBody = h("tbody", { id: "event-errors" });
  const errorsTable = h("table", { class: "table errors-table", hidden: true },
    h("caption", { class: "sr-only" }, "Recorded failures, oldest first"),
    h("thead", {}, h("tr", {}, ["Attempt", "At (UTC)", "Worker", "Error"].map((t, i) => h("th", { scope: "col", class: i === 0 ? "num" : "" }, t)))),
    errorsBody);
  const noErrors = h("p", { class: "empty", hidden: true }, "No failure recorded.");
  const auditList = h("ul", { class: "event-audit", id: "event-audit" });
  const noAudit = h("p", { class: "empty", hidden: true }, "No replay concerns this event.");
  const loading = h("p", { class: "loading" }, `Loading event #${id}…`);
  const body = h("div", { hidden: true },
    h("section", { class: "card", "aria-labelledby": "ev-sum" },
      h("div", { class: "card-head" }, h("h2", { id: "ev-sum" }, "Event"), replay), summary),
    h("section", { class: "card", "aria-labelledby": "ev-payload" },
      h("div", { class: "card-head" }, h("h2", { id: "ev-payload" }, "Raw payload"), copied, copy), payload),
    h("section", { class: "card", "aria-labelledby": "ev-errors" },
      h("div", { class: "card-head" }, h("h2", { id: "ev-errors" }, "Errors")),
      h("p", { class: "muted small" }, "Every failed attempt (the last 20), oldest first; a replay starts the count again."),
      h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "ev-errors" }, errorsTable, noErrors)),
    h("section", { class: "card", "aria-labelledby": "ev-audit" },
      h("div", { class: "card-head" }, h("h2", { id: "ev-audit" }, "Audit history")),
      h("p", { class: "muted small" }, "Replays that named this event, and filter replays (all dead of a site, type, time) made after it that its site, type and creation time match: those may have selected it."),
      auditList, noAudit));

  fill(root,
    h("div", { class: "page-head" },
      h("p", {}, h("a", { href: lastList, id: "event-back" }, "← Queue")),
      h("h1", { tabindex: "-1" }, `Event #${id}`)),
    errors.el, loading, body);

  let shown = "";
  async function refresh() {
    try {
      const e = await get(`/v1/ops/outbox/${id}`);
      const key = JSON.stringify(e);
      if (key !== shown) {
        shown = key;
        const p = e.payload || {};
        const [state, tone] = stateOf(e);
        fill(summary,
          field("State", badge(state, tone)),
          field("Type", e.event_type, "mono"),
          field("Site", h("a", { href: `#/sites/${e.site_id}` }, siteLabel(e.site_id))),
          field("Batch id", p.batch_id || "—", "mono ev-batch"),
          field("Request id", p.request_id || "—", "mono ev-request"),
          field("Attempts", count(e.attempts), "ev-attempts"),
          field("Created", utc(e.created_at)),
          field(e.dead_at ? "Dead since" : e.processed_at ? "Applied" : "Next try", utc(e.dead_at || e.processed_at || e.available_at)),
          field("Last error", e.last_error ? h("code", { class: "error-text" }, e.last_error) : "—"));
        setText(payload, JSON.stringify(e.payload, null, 2));
        fill(errorsBody, e.errors.map((x) => h("tr", {},
          h("td", { class: "num" }, String(x.attempt)), h("td", {}, utc(x.at)),
          h("td", { class: "mono" }, x.worker), h("td", {}, h("code", { class: "error-text" }, x.error)))));
        errorsTable.hidden = e.errors.length === 0;
        noErrors.hidden = e.errors.length > 0;
        fill(auditList, e.audit.map((a) => h("li", { class: "audit-entry" },
          h("span", { class: "mono" }, `#${a.id}`), " ", utc(a.at), " · ", `${a.actor} (${a.role})`, " · ",
          a.matched_by === "ids" ? "named this event" : "by filter", " · ",
          `${count(a.affected)} event${a.affected === 1 ? "" : "s"}`, a.dry_run ? [" ", badge("dry run", "info")] : null)));
        noAudit.hidden = e.audit.length > 0;
      }
      body.hidden = false;
      errors.clear();
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      if (err instanceof ApiError && err.status === 404) {
        body.hidden = true;
        errors.show(`No event #${id}`, new Error("it does not exist, or retention deleted it after it was applied"));
      } else errors.show(shown ? "Could not refresh the event (showing the last answer)" : "Could not load the event", err);
    } finally {
      loading.remove();
    }
  }

  return { title: `Event #${id}`, refresh };
}
