// The one place that talks to the API: JSON in and out, problem+json errors, timeouts, and
// whether the API is reachable at all (a network failure is not an HTTP error).

import { adminToken } from "./token.js";

const TIMEOUT_MS = 6000;

export class ApiError extends Error {
  /** An HTTP error answer; `problem` is the RFC 9457 body when there is one. */
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem || { title: `HTTP ${status}`, detail: "", status };
  }
}

export class Unreachable extends Error {
  /** No HTTP answer at all: the API process is down, or the network between us is. */
  constructor(message) {
    super(message);
    this.name = "Unreachable";
  }
}

export async function request(method, path, { body, headers = {}, timeoutMs = TIMEOUT_MS } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { Accept: "application/json", ...(body ? { "Content-Type": "application/json" } : {}), ...headers },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
      signal: controller.signal,
      cache: "no-store",
    });
  } catch (err) {
    throw new Unreachable(err?.name === "AbortError" ? "the API did not answer in time" : "the API is unreachable");
  } finally {
    clearTimeout(timer);
  }
  const type = response.headers.get("content-type") || "";
  let data = null;
  if (type.includes("json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok && response.status !== 304) {
    const problem = type.includes("problem+json") || (data && data.title) ? data : null;
    throw new ApiError(response.status, problem);
  }
  return { status: response.status, headers: response.headers, data };
}

// Polled reads with an ETag (the sites list, a site): the last body and its tag by path, sent
// back as If-None-Match so an unchanged answer is an empty 304 instead of the whole body again.
const validated = new Map(); // path -> { etag, data }
const receivedAt = new WeakMap(); // body -> Date.now() of the 200 that brought it

/**
 * A read. Reads are open in development; in production they need the operator's token.
 * `revalidate: true` keeps the body and its ETag and answers an unchanged 304 with it.
 */
export async function get(path, { revalidate = false } = {}) {
  const token = adminToken();
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const kept = revalidate ? validated.get(path) : undefined;
  if (kept) headers["If-None-Match"] = kept.etag;
  const res = await request("GET", path, { headers });
  if (res.status === 304 && kept) return kept.data;
  if (res.data && typeof res.data === "object") receivedAt.set(res.data, Date.now());
  const etag = res.headers.get("etag");
  if (revalidate && etag) validated.set(path, { etag, data: res.data });
  return res.data;
}

/** Seconds since the 200 that brought this body (0 when unknown): what to add to its clock fields. */
export function ageOf(data) {
  const at = data && typeof data === "object" ? receivedAt.get(data) : undefined;
  return at === undefined ? 0 : Math.max(0, (Date.now() - at) / 1000);
}

/** Every page of a keyset-paged list (`items` + a cursor field), up to `maxPages`. */
export async function getAll(path, cursorParam, cursorField, maxPages = 20, { revalidate = false } = {}) {
  const items = [];
  let url = path;
  let oldest = Infinity;
  for (let i = 0; i < maxPages; i += 1) {
    const page = await get(url, { revalidate });
    oldest = Math.min(oldest, receivedAt.get(page) ?? Date.now());
    items.push(...page.items);
    const next = page[cursorField];
    if (next === null || next === undefined) break;
    url = `${path}${path.includes("?") ? "&" : "?"}${cursorParam}=${next}`;
  }
  receivedAt.set(items, Number.isFinite(oldest) ? oldest : Date.now());
  return items;
}

/** "Title: detail" of any error, for inline messages. */
export function describe(err) {
  if (err instanceof ApiError) {
    const { title, detail } = err.problem;
    return detail && detail !== title ? `${title}: ${detail}` : title;
  }
  return err?.message || String(err);
}
