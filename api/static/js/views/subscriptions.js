// Webhook subscriptions. The queue page's panel: subscriptions with their delivery health (GET
// /v1/subscriptions), pause/resume (operator, audited), a subscription's dead deliveries on
// demand, and replaying them (dry run first, audited). On an API without subscriptions (404)
// the panel says so and stays quiet. #/subscriptions: the panel and the deliveries of every
// subscription or one, by status and event type, paged, with the filters and the page in the
// URL (?sub=&status=&type=&before=); select several (or the dead ones matching) and replay.

import { ApiError, Unreachable, describe, get } from "../api.js";
import { badge, fill, h, reconcile, setText } from "../dom.js";
import { ago, count, plural, utc } from "../format.js";
import { operatorPost } from "../alerts.js";
import { DELIVERIES, openReplay } from "../replay.js";
import { errorSlot } from "./common.js";

const DEAD_LIMIT = 20;
const since = (iso) => (Date.now() - Date.parse(iso)) / 1000;

/** "HTTP 500 · receiver says no", without saying the status twice when the error names it. */
function answer(code, error) {
  const text = error || "—";
  return code && !text.includes(String(code)) ? `HTTP ${code} · ${text}` : text;
}

export function subscriptionsPanel() {
  let available = null; // null: not asked yet; false: this API has no subscriptions
  let items = null; // the subscriptions of the last answer
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
  const note = h("p", { class: "notice", id: "subs-note", role: "status", "aria-live": "polite", hidden: true });
  const el = h("section", { class: "card", "aria-labelledby": "subs-title", id: "subscriptions" },
    h("div", { class: "card-head" }, h("h2", { id: "subs-title" }, "Webhook subscriptions")),
    h("p", { class: "muted small" }, "Receivers of the events (batches accepted, alerts raised, reports restated). Each event is sent to each matching subscription at least once, retried with backoff; a delivery that fails every attempt is dead until replayed."),
    unavailable, errorEl, note,
    h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "subs-title" }, table, empty));

  function createRow(sub) {
    const toggle = h("button", { type: "button", class: "button small ghost dead-toggle", "aria-expanded": "false" }, "Dead deliveries", h("span", { class: "chev", "aria-hidden": "true" }, " ▸"));
    const replay = h("button", { type: "button", class: "button small danger replay-dead", dataset: { needs: "operator" } }, "Replay dead…");
    const pause = h("button", { type: "button", class: "button small pause-toggle", dataset: { needs: "operator" } }, "Pause");
    const list = h("a", { class: "button small ghost deliveries-link" }, "Deliveries");
    const main = h("tr", { class: "sub-row" },
      h("th", { scope: "row", class: "sub-url" }, h("code", { class: "url" }), h("div", { class: "muted small desc" }), h("div", { class: "sub-state small" })),
      h("td", { class: "col-opt types" }),
      h("td", { class: "num delivered" }, h("span", { class: "n" }), h("div", { class: "muted small last-ok" })),
      h("td", { class: "num pending" }), h("td", { class: "num backoff" }), h("td", { class: "num dead" }),
      h("td", { class: "err" }, h("code", { class: "error-text" }), h("div", { class: "muted small err-when" })),
      h("td", { class: "row-actions" }, toggle, replay, pause, list));
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
    const paused = Boolean(sub.paused_at);
    const state = group.querySelector(".sub-state");
    const stateKey = paused ? `paused:${sub.paused_by}` : "active";
    if (state.dataset.state !== stateKey) {
      state.dataset.state = stateKey;
      fill(state, paused ? [badge("Paused", "warning"), " ", h("span", { class: "paused-by" })] : null);
    }
    if (paused) {
      const by = state.querySelector(".paused-by");
      setText(by, `by ${sub.paused_by} ${ago(since(sub.paused_at))}; backlog kept`);
      by.title = utc(sub.paused_at);
    }
    group.querySelector(".sub-row").classList.toggle("row-paused", paused);
    // Paused is a choice, not a failure: the backlog waits, it does not fail.
    const err = group.querySelector(".error-text");
    const errText = paused ? `Paused: ${plural(hl.backlog ?? hl.pending + hl.in_backoff, "delivery", "deliveries")} kept, sent on resume`
      : hl.last_error ? answer(hl.last_status_code, hl.last_error) : "—";
    setText(err, errText);
    err.title = paused ? "" : hl.last_error || "";
    err.classList.toggle("muted", paused || !hl.last_error);
    setText(group.querySelector(".err-when"), !paused && hl.last_failure_at ? `failed ${ago(since(hl.last_failure_at))}` : "");
    const pause = group.querySelector(".pause-toggle");
    setText(pause, paused ? "Resume" : "Pause");
    pause.setAttribute("aria-label", `${paused ? "Resume" : "Pause"} subscription ${sub.id}`);
    pause.hidden = Boolean(sub.disabled_at);
    pause.onclick = () => setPaused(sub, !paused, pause);
    const link = group.querySelector(".deliveries-link");
    link.href = `#/subscriptions?sub=${sub.id}`;
    link.setAttribute("aria-label", `Deliveries of subscription ${sub.id}`);
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

  async function setPaused(sub, paused, button) {
    button.disabled = true;
    try {
      const done = await operatorPost(`/v1/subscriptions/${sub.id}/${paused ? "pause" : "resume"}`, undefined, {
        title: paused ? "Pause subscription" : "Resume subscription",
        reason: `${paused ? "Pausing" : "Resuming"} subscription #${sub.id} needs the operator role or above and is audited.`,
      });
      if (done) {
        notice(done.changed
          ? `Subscription #${sub.id} ${paused ? "paused: its deliveries are kept until it is resumed" : "resumed: its backlog is being sent"}.`
          : `Subscription #${sub.id} was already ${paused ? "paused" : "running"}; nothing changed.`, "ok");
        await refresh();
      }
    } catch (err) {
      if (!(err instanceof Unreachable)) notice(`Could not ${paused ? "pause" : "resume"} subscription #${sub.id}: ${describe(err)}`, "danger");
    } finally {
      button.disabled = false;
    }
  }

  function notice(text, tone) {
    note.hidden = false;
    note.className = `notice notice-${tone}`;
    setText(note, text);
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
      items = page.items;
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

  return { el, refresh, items: () => items };
}

const STATUSES = [
  { key: "all", label: "Any status" },
  { key: "dead", label: "Dead" },
  { key: "backoff", label: "In backoff" },
  { key: "pending", label: "Pending" },
  { key: "delivered", label: "Delivered" },
];
const TYPES = ["batch.accepted", "site.threshold_crossed", "site.leak_detected", "site.stale", "report.restated"];
const STATUS_TONE = { dead: "danger", backoff: "warning", pending: "info", delivered: "ok" };
const PAGE = 50;

/** #/subscriptions with these filters (empty ones left out) and an optional cursor. */
function hashFor(filters, before = "") {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...filters, before })) if (v && !(k === "status" && v === "all")) q.set(k, String(v));
  const text = q.toString();
  return text ? `#/subscriptions?${text}` : "#/subscriptions";
}

export function mount(root, params) {
  const filters = {
    sub: /^\d+$/.test(params.sub || "") ? params.sub : "",
    status: STATUSES.some((s) => s.key === params.status) ? params.status : "all",
    type: TYPES.includes(params.type) ? params.type : "",
  };
  const before = /^\d+$/.test(params.before || "") ? params.before : "";
  const errors = errorSlot();
  const panel = subscriptionsPanel();
  const selected = new Set(); // delivery ids ticked on this page
  let shown = []; // the deliveries of the last answer

  const subSelect = h("select", { id: "dl-sub" }, h("option", { value: "" }, "All subscriptions"),
    filters.sub ? h("option", { value: filters.sub, selected: true }, `#${filters.sub}`) : null);
  const statusSelect = h("select", { id: "dl-status" }, STATUSES.map((s) => h("option", { value: s.key, selected: s.key === filters.status }, s.label)));
  const typeSelect = h("select", { id: "dl-type" }, h("option", { value: "" }, "Any event type"),
    TYPES.map((t) => h("option", { value: t, selected: t === filters.type }, t)));
  const form = h("form", { class: "toolbar", id: "dl-filters", "aria-label": "Delivery filters", onsubmit: (e) => {
    e.preventDefault();
    location.hash = hashFor({ sub: subSelect.value, status: statusSelect.value, type: typeSelect.value });
  } },
    h("span", { class: "control" }, h("label", { for: "dl-sub" }, "Subscription"), subSelect),
    h("span", { class: "control" }, h("label", { for: "dl-status" }, "Status"), statusSelect),
    h("span", { class: "control" }, h("label", { for: "dl-type" }, "Event type"), typeSelect),
    h("button", { type: "submit", class: "button primary small" }, "Show"),
    h("a", { class: "button small ghost", href: "#/subscriptions" }, "Clear"));

  const all = h("input", { type: "checkbox", id: "dl-all", "aria-label": "Select every delivery on this page" });
  const tbody = h("tbody", { id: "dl-rows" });
  const table = h("table", { class: "table deliveries-table dl-table", hidden: true },
    h("caption", { class: "sr-only" }, "Webhook deliveries, newest first"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col", class: "dl-check" }, all),
      ["Delivery", "Subscription", "Event", "Type", "Status", "Attempts", "Last answer", "Queued"].map((t) =>
        h("th", { scope: "col", class: t === "Attempts" ? "num" : "" }, t)))),
    tbody);
  const empty = h("p", { class: "empty", hidden: true }, "No delivery matches.");
  const loading = h("p", { class: "loading", id: "dl-loading" }, "Loading deliveries…");
  const picked = h("span", { class: "muted small", id: "dl-picked", "aria-live": "polite" }, "None selected");
  const replaySelected = h("button", { type: "button", class: "button small danger", id: "dl-replay-selected", disabled: true, dataset: { needs: "operator" } }, "Replay selected…");
  const replayMatching = h("button", { type: "button", class: "button small ghost", id: "dl-replay-matching", dataset: { needs: "operator" } }, "Replay dead matching…");
  const newer = h("a", { class: "button small ghost", id: "dl-newest", href: hashFor(filters), hidden: !before }, "← Newest");
  const older = h("a", { class: "button small ghost", id: "dl-older", hidden: true }, "Older →");

  const matching = () => [filters.sub ? `subscription #${filters.sub}` : "every subscription", filters.type || null].filter(Boolean).join(", ");
  replaySelected.addEventListener("click", () => {
    const ids = [...selected].sort((a, b) => a - b);
    openReplay({ what: `${plural(ids.length, "selected delivery", "selected deliveries")}`, body: { delivery_ids: ids }, kind: DELIVERIES }, () => {
      selected.clear();
      refresh();
    });
  });
  replayMatching.addEventListener("click", () => {
    const body = { all_dead: true };
    if (filters.sub) body.subscription_id = Number(filters.sub);
    if (filters.type) body.event_type = filters.type;
    openReplay({ what: `dead deliveries of ${matching()}`, body, kind: DELIVERIES }, () => refresh());
  });
  all.addEventListener("change", () => {
    for (const d of shown) {
      if (all.checked) selected.add(d.id);
      else selected.delete(d.id);
    }
    for (const box of tbody.querySelectorAll(".dl-pick")) box.checked = all.checked;
    renderSelection();
  });

  fill(root,
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Webhooks"),
      h("p", { class: "muted" }, "Subscriptions and their deliveries. Pause a subscription while its receiver is down for maintenance: its deliveries are kept and sent once it is resumed. Replay dead deliveries once the receiver is fixed; a dry run shows what would be sent.")),
    errors.el,
    panel.el,
    h("section", { class: "card", "aria-labelledby": "dl-title" },
      h("div", { class: "card-head" }, h("h2", { id: "dl-title" }, before ? `Deliveries before #${before}` : "Deliveries"), newer, older),
      form,
      h("div", { class: "toolbar dl-actions" }, picked, replaySelected, replayMatching),
      h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "dl-title" }, table, empty), loading));

  function renderSelection() {
    const n = selected.size;
    setText(picked, n ? `${plural(n, "delivery", "deliveries")} selected` : "None selected");
    replaySelected.disabled = n === 0;
    setText(replaySelected, n ? `Replay ${count(n)} selected…` : "Replay selected…");
    all.checked = shown.length > 0 && shown.every((d) => selected.has(d.id));
  }

  function createRow() {
    const box = h("input", { type: "checkbox", class: "dl-pick" });
    const tr = h("tr", {},
      h("td", { class: "dl-check" }, box), h("td", { class: "mono d-id" }), h("td", { class: "mono d-sub" }, h("a", {})),
      h("td", { class: "mono d-ev" }), h("td", { class: "mono d-type" }), h("td", { class: "d-status" }),
      h("td", { class: "num d-att" }), h("td", { class: "d-err" }, h("code", { class: "error-text" })), h("td", { class: "d-when" }));
    box.addEventListener("change", () => {
      const id = Number(tr.dataset.key);
      if (box.checked) selected.add(id);
      else selected.delete(id);
      renderSelection();
    });
    return tr;
  }

  function updateRow(tr, d) {
    const box = tr.querySelector(".dl-pick");
    box.checked = selected.has(d.id);
    box.setAttribute("aria-label", `Select delivery ${d.id}`);
    setText(tr.querySelector(".d-id"), `#${d.id}`);
    const link = tr.querySelector(".d-sub a");
    link.href = hashFor({ ...filters, sub: String(d.subscription_id) });
    setText(link, `#${d.subscription_id}`);
    setText(tr.querySelector(".d-ev"), `#${d.event_id}`);
    setText(tr.querySelector(".d-type"), d.event_type);
    const st = tr.querySelector(".d-status");
    if (st.dataset.status !== d.status) {
      st.dataset.status = d.status;
      fill(st, badge(d.status, STATUS_TONE[d.status] || "neutral"));
    }
    setText(tr.querySelector(".d-att"), count(d.attempts));
    const code = tr.querySelector(".d-err code");
    setText(code, d.last_error || d.last_status_code ? answer(d.last_status_code, d.last_error) : "—");
    code.classList.toggle("muted", !d.last_error);
    const when = tr.querySelector(".d-when");
    setText(when, ago(since(d.created_at)));
    when.title = utc(d.created_at);
  }

  async function refresh() {
    await panel.refresh();
    const subs = panel.items();
    if (subs && subSelect.dataset.known !== subs.map((s) => s.id).join(",")) {
      subSelect.dataset.known = subs.map((s) => s.id).join(",");
      fill(subSelect, h("option", { value: "" }, "All subscriptions"),
        subs.map((s) => h("option", { value: String(s.id), selected: String(s.id) === filters.sub }, `#${s.id} · ${s.description || s.url}`)),
        filters.sub && !subs.some((s) => String(s.id) === filters.sub) ? h("option", { value: filters.sub, selected: true }, `#${filters.sub}`) : null);
    }
    const q = new URLSearchParams({ limit: String(PAGE), status: filters.status });
    if (filters.sub) q.set("subscription_id", filters.sub);
    if (filters.type) q.set("event_type", filters.type);
    if (before) q.set("before", before);
    try {
      const page = await get(`/v1/ops/deliveries?${q}`);
      shown = page.items;
      reconcile(tbody, page.items, (d) => d.id, createRow, updateRow);
      table.hidden = page.items.length === 0;
      empty.hidden = page.items.length > 0;
      older.hidden = page.next_before === null;
      if (page.next_before !== null) older.href = hashFor(filters, page.next_before);
      renderSelection();
      loading.remove();
      errors.clear();
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      errors.show("Could not load the deliveries", err);
    }
  }

  return { title: "Webhooks", refresh };
}
