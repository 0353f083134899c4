// What the token in use may do, on the page: an element marked data-needs="operator" (or
// "admin") is disabled, with a tooltip saying the role it needs, while the token's role is
// known to be below it (data-needs-hide: hidden instead). With no token yet (development:
// reads are open) nothing is locked; the action asks for a token and checks its role then.

import { allows, describeIdentity, identity } from "./token.js";

const LOCKED = '[data-needs][aria-disabled="true"]';

function lockText(needed, whom) {
  return `Needs the ${needed} role or above; ${describeIdentity(whom)}.`;
}

/** Lock or unlock every role-marked element under `root` for the token in use. */
export function applyRoles(root = document) {
  const whom = identity();
  for (const el of root.querySelectorAll("[data-needs]")) {
    const needed = el.dataset.needs;
    const locked = Boolean(whom) && !allows(whom.role, needed);
    if ("needsHide" in el.dataset) {
      el.hidden = locked;
      continue;
    }
    if (locked) {
      el.setAttribute("aria-disabled", "true");
      el.title = lockText(needed, whom);
      el.dataset.lockedTitle = el.title;
    } else if (el.getAttribute("aria-disabled") === "true") {
      el.removeAttribute("aria-disabled");
      if (el.title === el.dataset.lockedTitle) el.removeAttribute("title");
      delete el.dataset.lockedTitle;
    }
  }
}

// A locked control stays focusable (its tooltip is readable) but does nothing.
document.addEventListener("click", (e) => {
  if (e.target instanceof Element && e.target.closest(LOCKED)) {
    e.preventDefault();
    e.stopImmediatePropagation();
  }
}, true);
