// The operator's token: asked for when needed, kept in memory for this page, and in
// sessionStorage (this tab only, gone when it closes) when the operator ticks "remember";
// with it, who it names (GET /v1/me: name and role, never the secret).

import { ApiError, Unreachable, request } from "./api.js";
import { h, setText } from "./dom.js";

const KEY = "emissions.adminToken";
const WHO = "emissions.tokenIdentity";
export const ROLES = ["viewer", "operator", "admin"]; // each may do what those before it may
let memory = null;
let who = null; // { name, role } of the token in use, when known
const listeners = new Set();

export function adminToken() {
  if (memory) return memory;
  try {
    return sessionStorage.getItem(KEY) || "";
  } catch {
    return "";
  }
}

export function isRemembered() {
  try {
    return Boolean(sessionStorage.getItem(KEY));
  } catch {
    return false;
  }
}

/** { name, role } of the token in use, or null while unknown (no token, or not asked yet). */
export function identity() {
  if (who) return who;
  try {
    return JSON.parse(sessionStorage.getItem(WHO) || "null");
  } catch {
    return null;
  }
}

/** Whether a token of `role` may do what needs `needed`. */
export function allows(role, needed) {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

/** Run `fn(identity)` whenever the token in use, or what we know of it, changes. */
export function onIdentityChange(fn) {
  listeners.add(fn);
}

export function saveToken(token, remember, whom = null) {
  memory = token || null;
  who = token ? whom : null;
  try {
    if (remember && token) {
      sessionStorage.setItem(KEY, token);
      if (whom) sessionStorage.setItem(WHO, JSON.stringify(whom));
      else sessionStorage.removeItem(WHO);
    } else {
      sessionStorage.removeItem(KEY);
      sessionStorage.removeItem(WHO);
    }
  } catch {
    // storage disabled: memory only
  }
  for (const fn of listeners) fn(identity());
}

export function forgetToken() {
  saveToken("", false);
}

/** Who a token names: GET /v1/me with it. Throws ApiError (401: not a token) or Unreachable. */
export async function whoami(token) {
  const { data } = await request("GET", "/v1/me", { headers: { Authorization: `Bearer ${token}` } });
  return { name: data.name, role: data.role };
}

/** Learn who the token in use names, if nobody asked yet (a tab that remembered only the token). */
export async function refreshIdentity() {
  const token = adminToken();
  if (!token || identity()) return;
  try {
    saveToken(token, isRemembered(), await whoami(token));
  } catch (err) {
    if (!(err instanceof ApiError || err instanceof Unreachable)) throw err;
  }
}

/** "‘wall’ has the viewer role", for dialogs and the header. */
export function describeIdentity(whom) {
  return `‘${whom.name}’ has the ${whom.role} role`;
}

/**
 * Ask for a token in a modal dialog; resolves to the token, or null if cancelled. The token is
 * checked with GET /v1/me and the dialog says which role it has; one whose role is below
 * `needs` is refused there. With `confirm`, the dialog stays open on the role until Done.
 */
export function askToken({ title, reason, needs = "viewer", confirm = false }) {
  return new Promise((resolve) => {
    const known = identity();
    const input = h("input", { id: "token-input", type: "password", autocomplete: "off", required: true, spellcheck: "false", value: adminToken() });
    const remember = h("input", { id: "token-remember", type: "checkbox", checked: isRemembered() });
    const roleLine = h("p", { id: "token-role", class: "notice", role: "status", "aria-live": "polite", hidden: true });
    const ok = h("button", { type: "submit", class: "button primary", value: "ok", id: "token-ok" }, "Continue");
    let accepted = null; // the token checked good enough, once confirm shows its role
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": "token-title" },
      h("form", { method: "dialog", onsubmit: (e) => { e.preventDefault(); check(); } },
        h("h2", { id: "token-title" }, title),
        h("p", { class: "muted" }, reason),
        known ? h("p", { class: "muted small", id: "token-current" }, `This tab's token: ${describeIdentity(known)}.`) : null,
        h("div", { class: "field" }, h("label", { for: "token-input" }, "Token"), input,
          h("span", { class: "hint" }, "Sent as Authorization: Bearer. Roles: viewer (reads), operator (+ replays, acknowledgements), admin (everything). The development default is dev-admin-token (admin).")),
        h("label", { class: "check" }, remember, " Remember for this browser tab"),
        roleLine,
        h("div", { class: "actions" },
          h("button", { type: "button", class: "button", value: "cancel", onclick: () => dialog.close("cancel") }, "Cancel"),
          ok)));

    function say(text, tone) {
      roleLine.hidden = false;
      roleLine.className = `notice notice-${tone}`;
      setText(roleLine, text);
    }

    async function check() {
      const value = input.value.trim();
      if (accepted !== null && accepted === value) {
        dialog.close("ok");
        return;
      }
      if (!value) return;
      ok.disabled = true;
      try {
        const whom = await whoami(value);
        if (!allows(whom.role, needs)) {
          say(`${describeIdentity(whom)}: this needs the ${needs} role or above. Enter another token.`, "danger");
          input.select();
          return;
        }
        saveToken(value, remember.checked, whom);
        if (!confirm) {
          accepted = value;
          dialog.close("ok");
          return;
        }
        say(`${describeIdentity(whom)}.`, "ok");
        accepted = value;
        setText(ok, "Done");
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) say("This token is not valid: unknown or revoked.", "danger");
        else if (err instanceof ApiError && err.status === 429) say("Too many wrong tokens from here: wait a moment, then try again.", "danger");
        else say(`Could not check the token: ${err.message}`, "danger");
        input.select();
      } finally {
        ok.disabled = false;
      }
    }

    input.addEventListener("input", () => {
      accepted = null;
      setText(ok, "Continue");
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "ok" && accepted ? accepted : null);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}
