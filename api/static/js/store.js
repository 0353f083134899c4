// State shared by the views: the latest queue snapshot (polled on every page, so the header,
// the banner and the backlog chart are always current) and site names for cross-links.

export const POLL_MS = 2000;
// Workers beat every second; the API counts a worker alive for 10 s after its last beat.
export const WORKER_STALE_S = 10;
// A site is stale when its newest reading window started more than this long ago.
export const SITE_STALE_S = 3600;
// How much backlog/lag history the queue chart keeps (client-side, from polling).
export const HISTORY_S = 15 * 60;

const HISTORY_KEY = "emissions.queueHistory";

export const store = {
  queue: null, // last GET /v1/ops/queue body
  queueError: null, // ApiError of the last queue poll (e.g. 503 database unavailable)
  apiUp: true,
  apiDownSince: null, // Date of the first failed poll in a row
  lastOkAt: null, // Date of the last answer
  history: loadHistory(), // [{t (s), backlog, pending, backoff, dead, lag}]
  siteNames: new Map(),
};

function loadHistory() {
  try {
    const raw = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]");
    const cutoff = Date.now() / 1000 - HISTORY_S;
    return Array.isArray(raw) ? raw.filter((p) => p.t >= cutoff) : [];
  } catch {
    return [];
  }
}

export function recordQueue(q) {
  const t = Date.now() / 1000;
  store.history.push({
    t,
    backlog: q.pending + q.in_backoff,
    pending: q.pending,
    backoff: q.in_backoff,
    dead: q.dead,
    lag: q.oldest_pending_age_s,
  });
  const cutoff = t - HISTORY_S;
  while (store.history.length && store.history[0].t < cutoff) store.history.shift();
  try {
    sessionStorage.setItem(HISTORY_KEY, JSON.stringify(store.history));
  } catch {
    // storage full or disabled: the chart still works for this page's lifetime
  }
}

export function rememberSites(sites) {
  for (const s of sites) store.siteNames.set(s.id, s.name);
}

/** Why the worker looks stale, or null when it is fine (or when we cannot tell). */
export function workerProblem(q) {
  if (!q) return null;
  if (q.worker_heartbeat_age_s === null) return "no worker has reported a heartbeat yet";
  if (q.workers_alive === 0 || q.worker_heartbeat_age_s > WORKER_STALE_S) {
    return `no worker heartbeat for ${Math.round(q.worker_heartbeat_age_s)} s`;
  }
  return null;
}
