// #/queue: outbox depth, lag, throughput and workers; the queue's history (charts, range in the
// URL) and the workers table; the triage of dead and retrying events (views/events.js), with
// replay.

import { fill, h, setText } from "../dom.js";
import { age, ago, bytes, count, duration } from "../format.js";
import { WORKER_STALE_S, store, workerProblem } from "../store.js";
import { errorSlot, tile } from "./common.js";
import { triagePanel } from "./events.js";
import { historyPanel, workersPanel } from "./queue_history.js";
import { subscriptionsPanel } from "./subscriptions.js";

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
  const sizes = h("dl", { class: "sizes" });
  const triage = triagePanel(params);
  const subs = subscriptionsPanel();

  fill(root,
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Queue"),
      h("p", { class: "muted" }, "The transactional outbox: every accepted batch is one event, applied to the site totals by the workers.")),
    errors.el,
    h("section", { class: "tiles", "aria-label": "Queue figures" }, Object.values(tiles).map((t) => t.el)),
    hist.el,
    workerList.el,
    triage.el,
    subs.el,
    h("div", { class: "split split-wide" },
      h("section", { class: "card", "aria-labelledby": "sizes-title" },
        h("div", { class: "card-head" }, h("h2", { id: "sizes-title" }, "Table sizes")), sizes)));

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
    fill(sizes, Object.entries(q.table_bytes || {}).flatMap(([name, n]) => [h("dt", {}, name), h("dd", {}, bytes(n))]));
  }

  async function refresh() {
    await Promise.all([hist.refresh(), workerList.refresh(), subs.refresh(), triage.refresh()]);
  }

  return {
    title: "Queue",
    refresh,
    afterTick: renderQueue,
    unmount: () => hist.destroy(),
  };
}
