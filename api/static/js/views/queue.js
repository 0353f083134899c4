// #/queue: outbox depth, lag, throughput and workers; the queue's history (charts, range in the
// URL) and the workers table; dead letters and retrying events, with replay (one, a site's dead,
// all dead).

import { Unreachable, get, getAll } from "../api.js";
import { fill, h, reconcile, setText } from "../dom.js";
import { age, ago, bytes, count, duration, utc, window as span } from "../format.js";
import { openReplay } from "../replay.js";
import { WORKER_STALE_S, rememberSites, store, workerProblem } from "../store.js";
import { errorSlot, tile } from "./common.js";
import { historyPanel, workersPanel } from "./queue_history.js";
import { subscriptionsPanel } from "./subscriptions.js";

const LIST_LIMIT = 100;

function siteLabel(siteId) {
  const name = store.siteNames.get(siteId);
  return name ? `${name} (#${siteId})` : `site #${siteId}`;
}

function eventTable(kind) {
  const tbody = h("tbody");
  const table = h("table", { class: `table events-table ${kind}-table` },
    h("caption", { class: "sr-only" }, kind === "dead" ? "Dead-lettered events" : "Events waiting to retry"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Event"), h("th", { scope: "col" }, "Site"),
      h("th", { scope: "col", class: "col-opt" }, "Batch"), h("th", { scope: "col", class: "num" }, "Attempts"),
      h("th", { scope: "col" }, "Last error"),
      h("th", { scope: "col" }, kind === "dead" ? "Dead since" : "Next try"),
      kind === "dead" ? h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")) : null)),
    tbody);
  return { table, tbody };
}

export function mount(root, params = {}) {
  const errors = errorSlot();
  const tiles = {
    pending: tile("Pending", { id: "pending", hint: "due now" }),
    backoff: tile("In backoff", { id: "backoff", hint: "failed, retrying later" }),
    dead: tile("Dead", { id: "dead", hint: "needs a replay" }),
    lag: tile("Lag", { id: "lag", hint: "oldest pending event" }),
    rate: tile("Processed / min", { id: "rate" }),
    workers: tile("Workers", { id: "workers" }),
    // The NATS JetStream relay: applied events not yet acknowledged by the stream. The API says
    // 0 both when NATS_URL is unset and when the relay is caught up, so the tile says no more.
    stream: tile("Stream backlog", { id: "stream", hint: "events awaiting JetStream's ack" }),
  };
  const hist = historyPanel(params);
  const workerList = workersPanel();
  const dead = eventTable("dead");
  const backoff = eventTable("backoff");
  const deadEmpty = h("p", { class: "empty ok-text" }, "No dead events.");
  const backoffEmpty = h("p", { class: "empty" }, "No event is waiting to retry.");
  const deadMore = h("p", { class: "muted small", hidden: true });
  const replayAll = h("button", { type: "button", class: "button danger", id: "replay-all", disabled: true, dataset: { needs: "operator" },
    onclick: () => openReplay({ what: "all dead events", body: { all_dead: true } }, () => refresh()) }, "Replay all dead…");
  const sizes = h("dl", { class: "sizes" });
  const subs = subscriptionsPanel();

  fill(root,
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Queue"),
      h("p", { class: "muted" }, "The transactional outbox: every accepted batch is one event, applied to the site totals by the workers.")),
    errors.el,
    h("section", { class: "tiles", "aria-label": "Queue figures" }, Object.values(tiles).map((t) => t.el)),
    hist.el,
    workerList.el,
    h("section", { class: "card", "aria-labelledby": "dead-title" },
      h("div", { class: "card-head" }, h("h2", { id: "dead-title" }, "Dead letters"), replayAll),
      h("p", { class: "muted small" }, "Events that failed every attempt. Fix the cause first (the last error says what failed), then replay: a dry run shows what would be replayed."),
      h("div", { class: "table-wrap" }, dead.table, deadEmpty), deadMore),
    subs.el,
    h("div", { class: "split split-wide" },
      h("section", { class: "card", "aria-labelledby": "backoff-title" },
        h("div", { class: "card-head" }, h("h2", { id: "backoff-title" }, "Retrying")),
        h("p", { class: "muted small" }, "Failed events waiting for their next attempt (exponential backoff); only their own site is held up."),
        h("div", { class: "table-wrap" }, backoff.table, backoffEmpty)),
      h("section", { class: "card", "aria-labelledby": "sizes-title" },
        h("div", { class: "card-head" }, h("h2", { id: "sizes-title" }, "Table sizes")), sizes)));

  function createEvent(kind) {
    return () => {
      const row = h("tr", {},
        h("td", { class: "mono ev" }), h("td", { class: "site" }, h("a", {})),
        h("td", { class: "col-opt batch" }), h("td", { class: "num attempts" }),
        h("td", { class: "err" }, h("code", { class: "error-text" })), h("td", { class: "when" }));
      if (kind === "dead") {
        const one = h("button", { type: "button", class: "button small replay-one", dataset: { needs: "operator" } }, "Replay");
        const site = h("button", { type: "button", class: "button small ghost replay-site", dataset: { needs: "operator" } }, "All of site");
        row.append(h("td", { class: "row-actions" }, one, site));
      }
      return row;
    };
  }

  function updateEvent(kind) {
    return (row, e) => {
      const p = e.payload || {};
      setText(row.querySelector(".ev"), `#${e.id}`);
      const link = row.querySelector(".site a");
      link.href = `#/sites/${e.site_id}`;
      setText(link, siteLabel(e.site_id));
      const batch = row.querySelector(".batch");
      const isBatch = !e.event_type || e.event_type === "measurements.accepted";
      // Notices (alerts raised, restatements) only travel to subscribers: name their type.
      setText(batch, isBatch ? `${p.device_id || "?"} · ${count(p.accepted)} readings · ${span(p.first_ts, p.last_ts)}` : e.event_type);
      batch.title = `batch ${p.batch_id || "?"} · request ${p.request_id || "?"}`;
      setText(row.querySelector(".attempts"), count(e.attempts));
      const err = row.querySelector(".error-text");
      setText(err, e.last_error || "—");
      err.title = e.last_error || "";
      const when = row.querySelector(".when");
      if (kind === "dead") {
        setText(when, ago((Date.now() - Date.parse(e.dead_at)) / 1000));
        when.title = utc(e.dead_at);
        const one = row.querySelector(".replay-one");
        one.setAttribute("aria-label", `Replay event ${e.id}`);
        one.onclick = () => openReplay({ what: `event #${e.id}`, body: { event_ids: [e.id] } }, () => refresh());
        const site = row.querySelector(".replay-site");
        site.setAttribute("aria-label", `Replay all dead events of ${siteLabel(e.site_id)}`);
        site.onclick = () => openReplay({ what: `all dead events of ${siteLabel(e.site_id)}`, body: { all_dead: true, site_id: e.site_id } }, () => refresh());
      } else {
        const due = (Date.parse(e.available_at) - Date.now()) / 1000;
        setText(when, due > 0 ? `in ${duration(due)}` : "now");
        when.title = utc(e.available_at);
      }
    };
  }

  function renderQueue() {
    const q = store.queue;
    if (!q) return;
    setText(tiles.pending.value, count(q.pending));
    setText(tiles.backoff.value, count(q.in_backoff));
    setText(tiles.dead.value, count(q.dead));
    setText(tiles.lag.value, q.pending + q.in_backoff === 0 ? "0 s" : duration(q.oldest_pending_age_s));
    setText(tiles.rate.value, count(q.processed_last_minute));
    setText(tiles.rate.sub, `${count(q.processed_last_hour)} in the last hour`);
    const why = workerProblem(q);
    setText(tiles.workers.value, count(q.workers_alive));
    setText(tiles.workers.sub, `${why ? "stale: " : ""}heartbeat ${q.worker_heartbeat_age_s === null ? "never" : ago(q.worker_heartbeat_age_s)}` +
      `${q.arq_queue_depth === null ? " · Redis unreachable" : ` · arq queue ${count(q.arq_queue_depth)}`}`);
    tiles.dead.el.classList.toggle("tile-danger", q.dead > 0);
    tiles.backoff.el.classList.toggle("tile-warning", q.in_backoff > 0);
    tiles.workers.el.classList.toggle("tile-warning", Boolean(why));
    tiles.lag.el.classList.toggle("tile-warning", q.oldest_pending_age_s > WORKER_STALE_S && q.pending + q.in_backoff > 0);
    const relayed = q.stream_backlog ?? 0;
    const behind = relayed > 0 && (q.stream_backlog_age_s ?? 0) > WORKER_STALE_S;
    setText(tiles.stream.value, count(relayed));
    setText(tiles.stream.sub, relayed > 0
      ? `pending · ${behind ? "behind: " : ""}oldest ${age(q.stream_backlog_age_s)}`
      : "pending · none awaiting JetStream's ack");
    tiles.stream.el.classList.toggle("tile-warning", behind);
    replayAll.disabled = q.dead === 0;
    setText(replayAll, q.dead ? `Replay all ${count(q.dead)} dead…` : "Replay all dead…");
    fill(sizes, Object.entries(q.table_bytes || {}).flatMap(([name, n]) => [h("dt", {}, name), h("dd", {}, bytes(n))]));
  }

  async function refresh() {
    await Promise.all([hist.refresh(), workerList.refresh()]);
    await subs.refresh();
    try {
      const [deadPage, backoffPage] = await Promise.all([
        get(`/v1/ops/outbox?status=dead&limit=${LIST_LIMIT}`),
        get(`/v1/ops/outbox?status=backoff&limit=${LIST_LIMIT}`),
      ]);
      const unknown = [...deadPage.items, ...backoffPage.items].some((e) => !store.siteNames.has(e.site_id));
      if (unknown) rememberSites(await getAll("/v1/sites?limit=500", "after", "next_after"));
      reconcile(dead.tbody, deadPage.items, (e) => e.id, createEvent("dead"), updateEvent("dead"));
      reconcile(backoff.tbody, backoffPage.items, (e) => e.id, createEvent("backoff"), updateEvent("backoff"));
      dead.table.hidden = deadPage.items.length === 0;
      deadEmpty.hidden = deadPage.items.length > 0;
      backoff.table.hidden = backoffPage.items.length === 0;
      backoffEmpty.hidden = backoffPage.items.length > 0;
      deadMore.hidden = deadPage.next_before === null;
      setText(deadMore, `Showing the newest ${LIST_LIMIT}; replaying “all dead” covers the rest too.`);
      errors.clear();
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      errors.show("Could not load the outbox", err);
    }
  }

  return {
    title: "Queue",
    refresh,
    afterTick: renderQueue,
    unmount: () => hist.destroy(),
  };
}
