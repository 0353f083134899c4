// The replay dialog: asks for an operator token, offers a dry run first, then replays, and shows
// the result and the audit entry the API recorded (POST /v1/ops/outbox/replay, or
// POST /v1/ops/deliveries/replay for webhook deliveries: same request pattern, same answer).

import { request, describe } from "./api.js";
import { fill, h, setText } from "./dom.js";
import { count, plural, utc } from "./format.js";
import { adminToken, describeIdentity, identity, isRemembered, saveToken } from "./token.js";

const OUTBOX = {
  endpoint: "/v1/ops/outbox/replay",
  idsField: "event_ids",
  noun: "event",
  explain: "Replaying makes the events due again with fresh attempts. The worker recomputes the affected hours from the raw readings, so a replay never counts anything twice. Every call, dry runs included, is audited.",
  after: "Totals update as the worker applies them.",
};

export const DELIVERIES = {
  endpoint: "/v1/ops/deliveries/replay",
  idsField: "delivery_ids",
  noun: "delivery",
  nouns: "deliveries",
  explain: "Replaying makes the dead deliveries due again with fresh attempts: the receiver gets each event again, under the same webhook-id, so it can drop one it already has. Every call, dry runs included, is audited.",
  after: "The worker sends them as the receiver answers.",
};

const FIRST_IDS = 10;

/** "#1, #2, #3" or, for many, the first ten and how many more (a bulk dry run stays short). */
function idList(found) {
  if (!found.length) return "none";
  const first = found.slice(0, FIRST_IDS).map((i) => `#${i}`).join(", ");
  return found.length > FIRST_IDS ? `${first}, … and ${count(found.length - FIRST_IDS)} more` : first;
}

function auditLine(audit, kind) {
  return `Audit #${audit.id} · ${audit.action} by ${audit.actor} at ${utc(audit.at)} · ` +
    `${plural(audit.affected, kind.noun, kind.nouns)}${audit.dry_run ? " · dry run" : ""}`;
}

/**
 * Open the dialog for a selection: { what (human text), body (replay request without dry_run),
 * kind (OUTBOX by default, or DELIVERIES) }. `onDone` runs after a real replay succeeded.
 */
export function openReplay({ what, body, kind = OUTBOX }, onDone) {
  const noun = (n) => (n === 1 ? kind.noun : kind.nouns || `${kind.noun}s`);
  const remembered = adminToken();
  const known = remembered ? identity() : null;
  const token = h("input", { id: "replay-token", type: "password", autocomplete: "off", required: true, value: remembered, spellcheck: "false" });
  const remember = h("input", { id: "replay-remember", type: "checkbox", checked: isRemembered() });
  const result = h("div", { class: "replay-result", role: "status", "aria-live": "polite" });
  const dryBtn = h("button", { type: "button", class: "button primary", id: "replay-dry" }, "Dry run");
  const goBtn = h("button", { type: "button", class: "button danger", id: "replay-go", disabled: true }, "Replay");
  const closeBtn = h("button", { type: "button", class: "button", id: "replay-close" }, "Close");
  let checked = null; // the token the dry run succeeded with
  let expected = null; // how many the dry run found

  const dialog = h("dialog", { class: "dialog", "aria-labelledby": "replay-title" },
    h("form", { method: "dialog", onsubmit: (e) => { e.preventDefault(); run(true); } },
      h("h2", { id: "replay-title" }, `Replay ${what}`),
      h("p", { class: "muted" }, kind.explain),
      h("div", { class: "field" },
        h("label", { for: "replay-token" }, "Token"),
        token,
        h("span", { class: "hint", id: "replay-token-hint" },
          known ? `This tab's token: ${describeIdentity(known)}. ` : "",
          "Needs the operator role or above; the name and role of the token are recorded in the audit.")),
      h("label", { class: "check" }, remember, " Remember for this browser tab"),
      result,
      h("div", { class: "actions" }, closeBtn, dryBtn, goBtn)));

  async function run(dryRun) {
    const value = token.value.trim();
    if (!value) {
      fill(result, h("p", { class: "notice notice-danger" }, "Enter a token first."));
      token.focus();
      return;
    }
    dryBtn.disabled = true;
    goBtn.disabled = true;
    fill(result, h("p", { class: "muted" }, dryRun ? "Dry run…" : "Replaying…"));
    try {
      const { data } = await request("POST", kind.endpoint, {
        body: { ...body, dry_run: dryRun },
        headers: { Authorization: `Bearer ${value}` },
      });
      // The audit entry names who the token is: the page now knows its role too.
      saveToken(value, remember.checked, { name: data.audit.actor, role: data.audit.role });
      const found = data[kind.idsField];
      const ids = idList(found);
      const n = found.length;
      if (dryRun) {
        checked = n > 0 ? value : null;
        expected = n;
        fill(result,
          h("p", { class: "notice notice-info", dataset: { outcome: "dry-run" } },
            h("strong", {}, "Dry run: "), n ? `${plural(n, kind.noun, kind.nouns)} would be replayed (${ids}). Nothing changed yet.` : `no ${kind.noun} matches: nothing to replay.`),
          h("p", { class: "audit mono" }, auditLine(data.audit, kind)));
        goBtn.disabled = n === 0;
        setText(goBtn, n ? `Replay ${count(n)} ${noun(n)}` : "Nothing to replay");
        if (n) goBtn.focus();
      } else {
        fill(result,
          h("p", { class: "notice notice-ok", dataset: { outcome: "replayed" } },
            h("strong", {}, "Replayed: "), `${plural(data.replayed, kind.noun, kind.nouns)} due again (${ids}). ${kind.after}`,
            // A filter is read again at the replay: events may have died (or been replayed)
            // since the dry run.
            expected !== null && expected !== data.replayed ? ` The dry run found ${count(expected)}: the selection changed in between.` : ""),
          h("p", { class: "audit mono" }, auditLine(data.audit, kind)));
        setText(goBtn, "Done");
        checked = null;
        closeBtn.focus();
        onDone?.(data);
      }
    } catch (err) {
      checked = null;
      const p = err.problem;
      fill(result, h("p", { class: "notice notice-danger", dataset: { outcome: "error" } },
        h("strong", {}, p?.title || "Failed"), p?.detail ? ` — ${p.detail}` : ` — ${describe(err)}`));
      if (err.status === 401 || err.status === 403) token.select();
    } finally {
      dryBtn.disabled = false;
      if (checked !== null && dryRun) goBtn.disabled = false;
    }
  }

  dryBtn.addEventListener("click", () => run(true));
  goBtn.addEventListener("click", () => {
    // The replay itself only after a dry run with this very token.
    if (checked !== null && checked === token.value.trim()) run(false);
  });
  token.addEventListener("input", () => {
    goBtn.disabled = true;
    setText(goBtn, "Replay");
  });
  closeBtn.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  (remembered ? dryBtn : token).focus();
  return dialog;
}
