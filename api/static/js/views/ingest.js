// #/ingest: the seed's IngestForm. Compose a batch, send it with an Idempotency-Key, retry it
// with the same key (the stored answer comes back, marked Idempotent-Replayed, and the totals
// do not move) or send it again under a new key (every reading is reported as a duplicate).

import { ApiError, Unreachable, get, getAll, request } from "../api.js";
import { badge, fill, h, setText } from "../dom.js";
import { clock, count, mass, utc } from "../format.js";
import { rememberSites } from "../store.js";
import { askToken } from "../token.js";
import { errorSlot, statusBadge } from "./common.js";

const KEEP_ATTEMPTS = 8;
const WINDOW_MIN = 15;
let lastSite = null; // survives navigation
const KEYS = "emissions.demoDeviceKeys"; // {"site:device": key} created here, this tab only

function knownKeys() {
  try {
    return JSON.parse(sessionStorage.getItem(KEYS) || "{}");
  } catch {
    return {};
  }
}

function rememberKey(siteId, deviceId, key) {
  const keys = knownKeys();
  keys[`${siteId}:${deviceId}`] = key;
  try {
    sessionStorage.setItem(KEYS, JSON.stringify(keys));
  } catch {
    // memory only
  }
}

function newKey() {
  const rand = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`.replace(".", "");
  return `demo-${rand}`;
}

/** Four readings in the last four whole 15-minute windows, random but plausible kg. */
function freshReadings() {
  const step = WINDOW_MIN * 60_000;
  const end = Math.floor(Date.now() / step) * step;
  const lines = [];
  for (let i = 4; i >= 1; i -= 1) {
    const ts = new Date(end - i * step).toISOString().replace(".000Z", "Z");
    lines.push(`${ts}, ${(0.5 + Math.random() * 2.5).toFixed(3)}`);
  }
  return lines.join("\n");
}

function parseReadings(text) {
  const out = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i].trim();
    if (!line || line.startsWith("#")) continue;
    const parts = line.split(/[,;\s]+/).filter(Boolean);
    if (parts.length !== 2) throw new Error(`line ${i + 1}: expected "timestamp, kg"`);
    const kg = Number(parts[1]);
    // Anything that is not a number goes to the API as written: its 422 names the field.
    out.push({ ts: parts[0], methane_kg: Number.isFinite(kg) && parts[1] !== "" ? kg : parts[1] });
  }
  if (!out.length) throw new Error("add at least one reading");
  return out;
}

/** append() without the nulls of conditional children (the DOM would print "null"). */
const add = (el, ...children) => el.append(...children.filter((c) => c !== null && c !== undefined && c !== false));

const STATUS_TEXT = { 202: "Accepted", 400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 409: "Conflict", 413: "Too large", 422: "Unprocessable", 429: "Too many requests", 503: "Unavailable" };

export function mount(root, params) {
  const errors = errorSlot();
  let sites = [];
  let last = null; // { siteId, body, key, deviceKey }
  let seq = 0;
  const attempts = [];

  const siteSelect = h("select", { id: "ingest-site", required: true, onchange: () => { lastSite = Number(siteSelect.value); renderTotals(); recallKey(); } });
  const device = h("input", { id: "ingest-device", type: "text", value: "demo-sensor-1", required: true, autocomplete: "off", spellcheck: "false", onchange: () => recallKey() });
  const deviceKey = h("input", { id: "ingest-device-key", type: "password", autocomplete: "off", spellcheck: "false" });
  const keyNote = h("span", { class: "hint", id: "device-key-note", "aria-live": "polite" }, "Sent as Authorization: Bearer. Paste a key from `emissions devices create`, or create one here.");
  const createKeyBtn = h("button", { type: "button", class: "button small ghost", id: "create-device-key", dataset: { needs: "admin" }, onclick: () => createKey() }, "Create a demo key for this site…");
  const readings = h("textarea", { id: "ingest-readings", rows: "6", spellcheck: "false", class: "mono" });
  readings.value = freshReadings();
  const key = h("input", { id: "ingest-key", type: "text", value: newKey(), required: true, class: "mono", spellcheck: "false" });
  const sendBtn = h("button", { type: "submit", class: "button primary", id: "send" }, "Send batch");
  const retryBtn = h("button", { type: "button", class: "button", id: "retry-same", disabled: true }, "Retry with the same key");
  const newKeyBtn = h("button", { type: "button", class: "button", id: "send-new-key", disabled: true }, "Send with a new key");
  const formError = h("p", { class: "notice notice-danger", role: "alert", hidden: true });
  const totals = h("div", { class: "totals", id: "ingest-totals" });
  const log = h("ol", { class: "attempts", id: "attempts", "aria-live": "polite", "aria-label": "Responses, newest first" });

  const form = h("form", { class: "card form", "aria-labelledby": "compose-title", onsubmit: (e) => { e.preventDefault(); sendFromForm(); } },
    h("h2", { id: "compose-title" }, "Compose a batch"),
    h("div", { class: "field" }, h("label", { for: "ingest-site" }, "Site"), siteSelect),
    h("div", { class: "field-row" },
      h("div", { class: "field" }, h("label", { for: "ingest-device" }, "Device id"), device),
      h("div", { class: "field" }, h("label", { for: "ingest-device-key" }, "Device key"), deviceKey)),
    h("div", { class: "field key-help" }, keyNote, createKeyBtn),
    h("div", { class: "field" },
      h("label", { for: "ingest-readings" }, "Readings"),
      readings,
      h("span", { class: "hint", id: "readings-hint" }, "One per line: window start (RFC 3339 with offset), kg CH₄. "),
      h("button", { type: "button", class: "button small ghost", onclick: () => { readings.value = freshReadings(); } }, "Fill with the last hour's windows")),
    h("div", { class: "field" },
      h("label", { for: "ingest-key" }, "Idempotency-Key"),
      h("div", { class: "inline" }, key, h("button", { type: "button", class: "button small ghost", onclick: () => { key.value = newKey(); } }, "New key"))),
    formError,
    h("div", { class: "actions" }, sendBtn, retryBtn, newKeyBtn));

  fill(root,
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Ingest demo"),
      h("p", { class: "muted" }, "Devices retry whenever they miss an answer. Send a batch, then retry it: the same key gets the stored answer back (Idempotent-Replayed: true) and stores nothing; a new key stores nothing either, because every reading is already there (duplicates).")),
    errors.el,
    h("div", { class: "split" },
      form,
      h("div", { class: "stack" },
        h("section", { class: "card", "aria-labelledby": "totals-title" },
          h("div", { class: "card-head" }, h("h2", { id: "totals-title" }, "Site totals, live")), totals),
        h("section", { class: "card", "aria-labelledby": "log-title" },
          h("div", { class: "card-head" }, h("h2", { id: "log-title" }, "Responses")), log,
          h("p", { class: "empty", id: "attempts-empty" }, "Nothing sent yet.")))));

  retryBtn.addEventListener("click", () => last && send({ ...last }, "Retry with the same key"));
  newKeyBtn.addEventListener("click", () => {
    if (!last) return;
    const k = newKey();
    key.value = k;
    send({ ...last, key: k }, "Same readings, new key");
  });

  /** Fill in a key this tab created earlier for the chosen site and device. */
  function recallKey() {
    const known = knownKeys()[`${siteSelect.value}:${device.value.trim()}`];
    if (known) deviceKey.value = known;
  }

  /** POST /v1/devices (admin): a key for the chosen device, bound to the chosen site. */
  async function createKey() {
    const siteId = Number(siteSelect.value);
    const deviceId = device.value.trim();
    if (!siteId || !deviceId) return;
    const token = await askToken({
      title: "Create a device key",
      reason: `A key for device ${deviceId}, allowed to post to ${currentSite()?.name || `site #${siteId}`}. Creating keys needs an admin token and is audited.`,
      needs: "admin",
    });
    if (!token) return;
    try {
      const { data } = await request("POST", "/v1/devices", {
        body: { device_id: deviceId, site_ids: [siteId], name: "dashboard ingest demo" },
        headers: { Authorization: `Bearer ${token}` },
      });
      deviceKey.value = data.key;
      rememberKey(siteId, deviceId, data.key);
      keyNote.className = "hint ok-text";
      setText(keyNote, `Key ${data.device.key_prefix}… created for ${data.device.device_id} (key #${data.device.id}); it is shown only once, and kept in this tab.`);
    } catch (err) {
      if (err instanceof Unreachable) return;
      keyNote.className = "hint problem";
      setText(keyNote, `Could not create a key: ${err.problem?.title || err.message}${err.problem?.detail ? ` — ${err.problem.detail}` : ""}`);
    }
  }

  function currentSite() {
    return sites.find((s) => s.id === Number(siteSelect.value)) || null;
  }

  function sendFromForm() {
    formError.hidden = true;
    let measurements;
    try {
      measurements = parseReadings(readings.value);
    } catch (err) {
      formError.hidden = false;
      setText(formError, `Readings: ${err.message}`);
      readings.focus();
      return;
    }
    if (!siteSelect.value) {
      formError.hidden = false;
      setText(formError, "Choose a site first.");
      return;
    }
    const attempt = {
      siteId: Number(siteSelect.value),
      body: JSON.stringify({ device_id: device.value.trim(), measurements }),
      key: key.value.trim(),
      deviceKey: deviceKey.value.trim(),
    };
    send(attempt, "Send");
  }

  async function send(attempt, label) {
    for (const b of [sendBtn, retryBtn, newKeyBtn]) b.disabled = true;
    seq += 1;
    const entry = { n: seq, label, at: new Date(), attempt, before: null, response: null, error: null };
    try {
      entry.before = await get(`/v1/sites/${attempt.siteId}`);
      const headers = { "Idempotency-Key": attempt.key };
      if (attempt.deviceKey) headers.Authorization = `Bearer ${attempt.deviceKey}`;
      const res = await request("POST", `/v1/sites/${attempt.siteId}/measurements`, { body: attempt.body, headers });
      entry.response = { status: res.status, replayed: res.headers.get("Idempotent-Replayed") === "true", body: res.data };
      last = attempt;
    } catch (err) {
      entry.error = err;
      if (err instanceof ApiError) last = attempt; // a retry of a rejected request is still a retry
    } finally {
      sendBtn.disabled = false;
      retryBtn.disabled = newKeyBtn.disabled = last === null;
    }
    attempts.unshift(entry);
    attempts.length = Math.min(attempts.length, KEEP_ATTEMPTS);
    renderLog();
    renderTotals();
  }

  function renderLog() {
    root.querySelector("#attempts-empty").hidden = attempts.length > 0;
    fill(log, attempts.map(renderAttempt));
    updateDeltas();
  }

  function renderAttempt(e) {
    const site = sites.find((s) => s.id === e.attempt.siteId);
    const head = h("div", { class: "attempt-head" },
      h("strong", {}, `#${e.n} ${e.label}`),
      h("span", { class: "muted" }, ` · ${clock(e.at)} UTC · ${site ? site.name : `site #${e.attempt.siteId}`}`));
    const li = h("li", { class: "attempt", dataset: { n: String(e.n) } }, head);
    if (e.error) {
      if (e.error instanceof ApiError) {
        const p = e.error.problem;
        head.append(" ", badge(`${e.error.status} ${STATUS_TEXT[e.error.status] || ""}`.trim(), "danger"));
        li.dataset.status = String(e.error.status);
        add(li, 
          h("p", { class: "problem" }, h("strong", {}, p.title || "Error"), p.detail ? ` — ${p.detail}` : ""),
          p.errors?.length ? h("ul", { class: "field-errors" }, p.errors.map((fe) => h("li", {}, h("code", {}, fe.pointer || "/"), ` ${fe.detail}`))) : null);
      } else {
        head.append(" ", badge("No answer", "danger"));
        add(li, h("p", { class: "problem" }, e.error.message));
      }
      add(li, h("p", { class: "meta mono" }, `Idempotency-Key: ${e.attempt.key}`));
      return li;
    }
    const r = e.response;
    const b = r.body || {};
    li.dataset.status = String(r.status);
    li.dataset.replayed = String(r.replayed);
    head.append(" ", badge(`${r.status} ${STATUS_TEXT[r.status] || ""}`.trim(), "ok"), " ",
      r.replayed
        ? badge("Replayed", "info", "Idempotent-Replayed: true — the stored answer to the first request with this key")
        : badge("New request", "neutral", "First request with this key: processed now"));
    add(li, 
      h("dl", { class: "counts" },
        h("div", {}, h("dt", {}, "Received"), h("dd", { class: "c-received" }, count(b.received))),
        h("div", {}, h("dt", {}, "Accepted"), h("dd", { class: "c-accepted" }, count(b.accepted))),
        h("div", {}, h("dt", {}, "Duplicates"), h("dd", { class: "c-duplicates" }, count(b.duplicates))),
        h("div", {}, h("dt", {}, "Conflicts"), h("dd", { class: "c-conflicts" }, count(b.conflicts?.length ?? 0)))),
      b.conflicts?.length
        ? h("ul", { class: "field-errors" }, b.conflicts.map((c) => h("li", {}, `${utc(c.ts, { seconds: false })}: stored ${mass(c.stored_methane_kg)}, received ${mass(c.received_methane_kg)} (kept the stored value)`)))
        : null,
      h("p", { class: "delta", dataset: { state: "" } }),
      h("p", { class: "meta mono" }, `Idempotency-Key: ${e.attempt.key} · batch ${b.batch_id || "—"}`));
    if (r.replayed) {
      add(li, h("p", { class: "muted small" }, "The counts above are the stored answer to the first request with this key, returned unchanged: nothing was stored this time."));
    }
    return li;
  }

  /** Totals when the request was sent vs now: did this request move them? */
  function updateDeltas() {
    attempts.forEach((e, i) => {
      const el = log.children[i]?.querySelector(".delta");
      if (!el || !e.before) return;
      const now = sites.find((s) => s.id === e.attempt.siteId);
      if (!now) return;
      const dKg = now.lifetime_kg - e.before.lifetime_kg;
      const dN = now.reading_count - e.before.reading_count;
      const expect = !e.response.replayed && (e.response.body?.accepted || 0) > 0;
      let state;
      let text;
      const figures = `Lifetime ${mass(e.before.lifetime_kg)} → ${mass(now.lifetime_kg)}, readings ${count(e.before.reading_count)} → ${count(now.reading_count)}`;
      if (dN === 0 && Math.abs(dKg) < 1e-9) {
        state = expect ? "waiting" : "unchanged";
        text = expect ? `${figures} · waiting for the worker to apply it…` : `${figures} · unchanged`;
      } else {
        state = expect ? "applied" : "changed";
        text = `${figures} · ${dKg >= 0 ? "+" : ""}${mass(dKg)}${expect ? " (applied by the worker)" : " (other batches since)"}`;
      }
      el.dataset.state = state;
      el.className = `delta delta-${state}`;
      setText(el, text);
    });
  }

  const totalsView = {
    name: h("a", {}),
    badge: h("span", {}),
    lifetime: h("dd", { id: "total-lifetime" }),
    ytd: h("dd", { id: "total-ytd" }),
    readings: h("dd", { id: "total-readings" }),
    empty: h("p", { class: "empty" }),
  };
  const totalsBody = h("div", {},
    h("div", { class: "title-row" }, totalsView.name, totalsView.badge),
    h("dl", { class: "counts big" },
      h("div", {}, h("dt", {}, "Lifetime"), totalsView.lifetime),
      h("div", {}, h("dt", {}, "Year to date"), totalsView.ytd),
      h("div", {}, h("dt", {}, "Readings"), totalsView.readings)),
    h("p", { class: "muted small" }, "Totals change only when the worker applies a batch that stored new readings."));
  fill(totals, totalsBody, totalsView.empty);

  function renderTotals() {
    const s = currentSite();
    totalsBody.hidden = !s;
    totalsView.empty.hidden = Boolean(s);
    if (!s) {
      setText(totalsView.empty, sites.length ? "Choose a site." : "No sites yet: create one with POST /v1/sites.");
      return;
    }
    totalsView.name.href = `#/sites/${s.id}`;
    setText(totalsView.name, s.name);
    if (totalsView.badge.dataset.status !== s.status) {
      totalsView.badge.dataset.status = s.status;
      fill(totalsView.badge, statusBadge(s.status));
    }
    setText(totalsView.lifetime, mass(s.lifetime_kg));
    setText(totalsView.ytd, mass(s.year_kg));
    setText(totalsView.readings, count(s.reading_count));
  }

  async function refresh() {
    try {
      sites = await getAll("/v1/sites?limit=500", "after", "next_after");
      rememberSites(sites);
      const wanted = Number(params.site) || lastSite || Number(siteSelect.value) || sites[0]?.id;
      const existing = [...siteSelect.options].map((o) => o.value).join(",");
      if (existing !== sites.map((s) => s.id).join(",")) {
        const keep = Number(siteSelect.value) || wanted;
        fill(siteSelect, sites.map((s) => h("option", { value: s.id, selected: s.id === keep }, `${s.name} (#${s.id})`)));
        if (!siteSelect.value && sites.length) siteSelect.value = String(sites[0].id);
        lastSite = Number(siteSelect.value) || null;
        recallKey();
      }
      errors.clear();
      renderTotals();
      updateDeltas();
    } catch (err) {
      if (err instanceof Unreachable) throw err;
      errors.show("Could not load the sites", err);
    }
  }

  return { title: "Ingest demo", refresh };
}
