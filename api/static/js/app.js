// Boot, hash routing, the polling loop, the header status (and who the token is), the outage
// banner, and the role locks after every refresh.

import { ApiError, Unreachable, get } from "./api.js";
import { fill, h, setText } from "./dom.js";
import { browserZone, count, duration, onZoneChange, plural, setZoneMode, zoneMode, zonedClock } from "./format.js";
import { applyRoles } from "./roles.js";
import { adminToken, askToken, identity, onIdentityChange, refreshIdentity } from "./token.js";
import { POLL_MS, WORKER_STALE_S, recordQueue, store, workerProblem } from "./store.js";
import { co2eOn, onUnitChange, setCo2e } from "./units.js";
import * as alertsView from "./views/alerts.js";
import * as auditView from "./views/audit.js";
import * as eventView from "./views/events.js";
import * as ingestView from "./views/ingest.js";
import * as queueView from "./views/queue.js";
import * as reportView from "./views/report.js";
import * as siteView from "./views/site.js";
import * as sitesView from "./views/sites.js";
import * as subscriptionsView from "./views/subscriptions.js";

const main = document.getElementById("main");
const banner = document.getElementById("banner");
const live = document.getElementById("live");
const workerPill = document.getElementById("worker-pill");
const alertsLink = document.getElementById("alerts-link");
const alertCount = document.getElementById("alert-count");
const unitToggle = document.getElementById("unit-toggle");
const whoButton = document.getElementById("who");

let current = null; // { name, key, view }
let timer = null;
let running = false;
let again = false;
let firstRoute = true;

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/sites";
  const [path, query = ""] = raw.split("?");
  const params = Object.fromEntries(new URLSearchParams(query));
  const parts = path.split("/").filter(Boolean);
  if ((parts[0] === "sites" || parts[0] === "site") && /^\d+$/.test(parts[1] || "")) {
    const id = Number(parts[1]);
    if (parts[2] === "report") return { name: "report", module: reportView, params: { ...params, id } };
    return { name: "site", module: siteView, params: { ...params, id } };
  }
  if (parts[0] === "alerts") return { name: "alerts", module: alertsView, params };
  if (parts[0] === "queue" && parts[1] === "events" && /^\d+$/.test(parts[2] || "")) {
    return { name: "queue", module: eventView, params: { ...params, id: Number(parts[2]) } };
  }
  if (parts[0] === "queue") return { name: "queue", module: queueView, params };
  if (parts[0] === "audit") return { name: "audit", module: auditView, params };
  if (parts[0] === "subscriptions") return { name: "subscriptions", module: subscriptionsView, params };
  if (parts[0] === "ingest") return { name: "ingest", module: ingestView, params };
  return { name: "sites", module: sitesView, params };
}

function route({ remount = false } = {}) {
  const next = parseHash();
  const key = `${next.name}:${JSON.stringify(next.params)}`;
  if (current && current.key === key && !remount) return;
  if (current) current.view.unmount?.();
  const section = next.name === "site" || next.name === "report" ? "sites" : next.name === "subscriptions" ? "queue" : next.name;
  for (const link of document.querySelectorAll("nav.primary a")) {
    const active = link.dataset.route === section;
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  fill(main);
  const view = next.module.mount(main, next.params);
  current = { name: next.name, key, view };
  document.title = `${view.title || "Dashboard"} · Emissions engine`;
  // Move focus to the new page's heading, as a page load would (screen readers announce it).
  const heading = main.querySelector("h1");
  if (!firstRoute && !remount) {
    window.scrollTo(0, 0);
    heading?.focus({ preventScroll: true });
  }
  firstRoute = false;
  poll();
}

/** The queue snapshot for the header and banner; false when the API did not answer. */
async function readQueue() {
  try {
    const q = await get("/v1/ops/queue");
    store.queue = q;
    store.queueError = null;
    recordQueue(q);
  } catch (err) {
    if (err instanceof Unreachable) return false;
    store.queueError = err;
  }
  return true;
}

/** The page's own reads; false when the API did not answer. */
async function refreshView() {
  if (!current?.view.refresh) return true;
  try {
    await current.view.refresh();
  } catch (err) {
    if (err instanceof Unreachable) return false;
    console.error(err); // views show their own API errors inline
  }
  return true;
}

async function tick() {
  // In parallel: one round trip per tick, not one per read (first paint waits for the slowest).
  const answers = await Promise.all([readQueue(), countAlerts(), refreshView()]);
  const reachable = answers.every(Boolean);
  if (reachable) {
    store.apiUp = true;
    store.apiDownSince = null;
    store.lastOkAt = new Date();
  } else {
    store.apiUp = false;
    store.apiDownSince = store.apiDownSince || new Date();
  }
  current?.view.afterTick?.();
  renderStatus();
  applyRoles();
}

/** The open-alert count on the nav link; false when the API did not answer. */
async function countAlerts() {
  try {
    const page = await get(`/v1/alerts?status=open&limit=1`);
    // An API without counts (older) still gets a badge from the page itself.
    const n = page.counts ? page.counts.open : page.items.length;
    const text = page.counts || page.next_before === null ? String(n) : `${n}+`;
    setText(alertCount, text);
    alertCount.hidden = n === 0;
    alertsLink.setAttribute("aria-label", n ? `Alerts, ${text} open` : "Alerts, none open");
  } catch (err) {
    if (err instanceof Unreachable) return false;
    alertCount.hidden = true; // an older API without alerts, or no token yet: no badge
    alertsLink.removeAttribute("aria-label");
  }
  return true;
}

/** Run a poll now (coalescing with one in flight), then every POLL_MS. */
export async function poll() {
  clearTimeout(timer);
  // A background tab does not poll (dashboards stay open all day); it catches up when shown.
  if (document.hidden) {
    timer = setTimeout(poll, POLL_MS);
    return;
  }
  if (running) {
    again = true;
    return;
  }
  running = true;
  try {
    await tick();
  } finally {
    running = false;
  }
  if (again) {
    again = false;
    poll();
    return;
  }
  timer = setTimeout(poll, POLL_MS);
}

function renderStatus() {
  const messages = [];
  if (!store.apiUp) {
    const since = store.apiDownSince ? zonedClock(store.apiDownSince) : "";
    const last = store.lastOkAt ? ` Showing data from ${zonedClock(store.lastOkAt)}.` : "";
    messages.push({
      tone: "danger",
      title: "API unreachable",
      text: `No answer from the API since ${since}.${last} Retrying every ${POLL_MS / 1000} s.`,
    });
  } else if (store.queueError instanceof ApiError && store.queueError.status === 401) {
    messages.push({
      tone: "warning",
      title: "Token needed",
      text: "In production mode this API shows its data only with a token (any role).",
      action: { label: "Enter a token…", run: signIn },
    });
  } else if (store.queueError instanceof ApiError) {
    const p = store.queueError.problem;
    messages.push({
      tone: "danger",
      title: p.title || "API error",
      text: `${p.detail || ""} The queue cannot be read; retrying every ${POLL_MS / 1000} s.`,
    });
  }
  const q = store.queue;
  const why = store.apiUp ? workerProblem(q) : null;
  if (why) {
    const waiting = q.pending + q.in_backoff;
    messages.push({
      tone: "warning",
      title: "Worker stale",
      text:
        `${why[0].toUpperCase()}${why.slice(1)} (threshold ${WORKER_STALE_S} s). Readings are ` +
        `still stored, but totals are not updating: ${plural(waiting, "event")} waiting.`,
    });
  }
  const key = JSON.stringify(messages.map((m) => [m.title, m.tone]));
  if (banner.dataset.key !== key) {
    banner.dataset.key = key;
    fill(
      banner,
      messages.map((m) =>
        h("div", { class: `banner banner-${m.tone}`, dataset: { kind: m.title } },
          h("strong", {}, m.title), " ", h("span", { class: "banner-text" }, m.text),
          m.action ? h("button", { type: "button", class: "button small", onclick: m.action.run }, m.action.label) : null),
      ),
    );
  } else {
    // Same alerts, fresher numbers: update the text without re-announcing the alert.
    messages.forEach((m, i) => {
      const span = banner.children[i]?.querySelector(".banner-text");
      if (span) setText(span, m.text);
    });
  }
  banner.hidden = messages.length === 0;

  if (store.apiUp) {
    live.className = "pill pill-ok";
    setText(live, `Live · ${zonedClock(store.lastOkAt)}`);
  } else {
    live.className = "pill pill-danger";
    setText(live, "Offline");
  }
  if (q && store.apiUp) {
    const beat = q.worker_heartbeat_age_s;
    workerPill.hidden = false;
    workerPill.className = `pill ${why ? "pill-warning" : "pill-ok"}`;
    setText(
      workerPill,
      `${count(q.workers_alive)} worker${q.workers_alive === 1 ? "" : "s"} · beat ${beat === null ? "never" : duration(beat)}`,
    );
  } else {
    workerPill.hidden = true;
  }
}

async function signIn() {
  const token = await askToken({
    title: "Operator sign-in",
    reason: "In production mode every read needs a token: any role may read. Its role decides which actions this page offers.",
    confirm: true,
  });
  if (token) poll();
}

/** The header's token button: who the token in use names, or an offer to enter one. */
function renderWho() {
  const whom = identity();
  setText(whoButton, whom ? `${whom.name} · ${whom.role}` : adminToken() ? "Token…" : "Sign in…");
  whoButton.title = whom
    ? `Token ‘${whom.name}’ with the ${whom.role} role is in use in this tab; click to use another`
    : "Enter a token: its role decides which actions this page offers";
}

store.pollNow = poll;
whoButton.addEventListener("click", signIn);
onIdentityChange(() => {
  renderWho();
  applyRoles();
});
renderWho();
refreshIdentity().catch((err) => console.error(err));
unitToggle.checked = co2eOn();
unitToggle.addEventListener("change", () => setCo2e(unitToggle.checked));
// Every figure of the page changes with the unit: build the page again, keeping the focus here.
onUnitChange((on) => {
  unitToggle.checked = on;
  route({ remount: true });
});
window.addEventListener("storage", (e) => {
  if (e.key === "emissions.unit") setCo2e(e.newValue === "co2e"); // another tab switched
  if (e.key === "emissions.zone") setZoneMode(e.newValue);
});
// Times in UTC, the browser's zone, or the site's own zone (where its metadata names one).
const zoneSelect = document.getElementById("zone-select");
const footerZone = document.getElementById("footer-zone");
function renderZone() {
  if (zoneSelect) {
    zoneSelect.value = zoneMode();
    const local = zoneSelect.querySelector("option[value='local']");
    if (local) local.textContent = `Local (${browserZone()})`;
  }
  if (footerZone) {
    const mode = zoneMode();
    footerZone.textContent = mode === "utc" ? "All times UTC" : mode === "local" ? `Times in ${browserZone()}` : "Times in the site's zone (UTC where it names none)";
  }
}
zoneSelect?.addEventListener("change", () => setZoneMode(zoneSelect.value));
onZoneChange(() => {
  renderZone();
  route({ remount: true });
  renderStatus();
});
renderZone();
window.addEventListener("hashchange", () => route());
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) poll();
});
if (!location.hash) history.replaceState(null, "", "#/sites");
route();
