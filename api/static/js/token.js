// The operator's admin token: asked for when needed, kept in memory for this page, and in
// sessionStorage (this tab only, gone when it closes) when the operator ticks "remember".

import { h } from "./dom.js";

const KEY = "emissions.adminToken";
let memory = null;

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

export function saveToken(token, remember) {
  memory = token || null;
  try {
    if (remember && token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch {
    // storage disabled: memory only
  }
}

export function forgetToken() {
  saveToken("", false);
}

/** Ask for the admin token in a modal dialog; resolves to the token, or null if cancelled. */
export function askToken({ title, reason }) {
  return new Promise((resolve) => {
    const input = h("input", { id: "token-input", type: "password", autocomplete: "off", required: true, spellcheck: "false", value: adminToken() });
    const remember = h("input", { id: "token-remember", type: "checkbox", checked: isRemembered() });
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": "token-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "token-title" }, title),
        h("p", { class: "muted" }, reason),
        h("div", { class: "field" }, h("label", { for: "token-input" }, "Admin token"), input,
          h("span", { class: "hint" }, "Sent as Authorization: Bearer. The development default is dev-admin-token.")),
        h("label", { class: "check" }, remember, " Remember for this browser tab"),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "button", value: "cancel", onclick: () => dialog.close("cancel") }, "Cancel"),
          h("button", { type: "submit", class: "button primary", value: "ok", id: "token-ok" }, "Continue"))));
    dialog.addEventListener("close", () => {
      const value = input.value.trim();
      dialog.remove();
      if (dialog.returnValue === "ok" && value) {
        saveToken(value, remember.checked);
        resolve(value);
      } else resolve(null);
    });
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}
