// Numbers with units, durations and times. Times are UTC by default, like the API's hour
// buckets and the calendar year that limits are counted in; the header's zone switch shows
// them in the browser's zone or the site's own (an IANA zone its metadata names) instead.

const LOCALE = "en-US";
const nf = (digits) =>
  new Intl.NumberFormat(LOCALE, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
const F0 = nf(0);
const F1 = nf(1);
const F2 = nf(2);
const F3 = nf(3);

/** Mass: kg below one tonne, then t (1 t = 1000 kg). */
export function mass(kg) {
  if (kg === null || kg === undefined || Number.isNaN(kg)) return "—";
  const abs = Math.abs(kg);
  if (abs < 1000) return `${(abs < 10 ? F3 : abs < 100 ? F2 : F1).format(kg)} kg`;
  const t = kg / 1000;
  const at = Math.abs(t);
  return `${(at < 10 ? F3 : at < 100 ? F2 : at < 1000 ? F1 : F0).format(t)} t`;
}

/** Short mass for chart axes. */
export function massAxis(kg) {
  const abs = Math.abs(kg);
  if (abs < 1000) return `${(abs < 10 ? F2 : F0).format(kg)} kg`;
  return `${(abs < 10000 ? F1 : F0).format(kg / 1000)} t`;
}

/** "1 event", "3 events", "no events". */
export function plural(n, word, words = `${word}s`) {
  if (!n) return `no ${words}`;
  return `${F0.format(n)} ${n === 1 ? word : words}`;
}

export function count(n) {
  return n === null || n === undefined ? "—" : F0.format(n);
}

export function percent(p) {
  if (p === null || p === undefined) return "—";
  return `${(p < 10 ? F1 : F0).format(p)}%`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return `${(v < 10 && i > 0 ? F1 : F0).format(v)} ${units[i]}`;
}

/** A duration in seconds: "850 ms", "42 s", "4 min 10 s", "3 h 2 min", "5 d 4 h". */
export function duration(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "—";
  if (s < 1) return `${F0.format(s * 1000)} ms`;
  if (s < 60) return `${(s < 10 ? F1 : F0).format(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.floor(s % 60)} s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h ${m % 60} min`;
  const d = Math.floor(hrs / 24);
  return `${F0.format(d)} d ${hrs % 24} h`;
}

/** A coarser duration for "how long ago": seconds only under a minute, then minutes, hours. */
export function age(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return "—";
  if (s < 60) return duration(s);
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const hrs = Math.floor(m / 60);
  if (hrs < 24) return m % 60 ? `${hrs} h ${m % 60} min` : `${hrs} h`;
  const d = Math.floor(hrs / 24);
  return hrs % 24 ? `${F0.format(d)} d ${hrs % 24} h` : `${F0.format(d)} d`;
}

export function ago(s) {
  return s === null || s === undefined ? "never" : `${age(s)} ago`;
}

const pad = (n) => String(n).padStart(2, "0");

// ---- the time zone times are shown in: "utc", "local" (the browser's) or "site" -------------
const ZONE_KEY = "emissions.zone";
const ZONE_MODES = ["utc", "local", "site"];
const zoneListeners = new Set();
let zoneModeNow = loadZoneMode();
let siteZoneNow = null; // the IANA zone of the site on screen, if it names one

function loadZoneMode() {
  try {
    const v = localStorage.getItem(ZONE_KEY);
    return ZONE_MODES.includes(v) ? v : "utc";
  } catch {
    return "utc";
  }
}

export function zoneMode() {
  return zoneModeNow;
}

export function setZoneMode(mode) {
  zoneModeNow = ZONE_MODES.includes(mode) ? mode : "utc";
  try {
    localStorage.setItem(ZONE_KEY, zoneModeNow);
  } catch {
    // storage disabled: this page only
  }
  for (const fn of zoneListeners) fn(zoneModeNow);
}

export function onZoneChange(fn) {
  zoneListeners.add(fn);
  return () => zoneListeners.delete(fn);
}

/** The browser's own IANA zone ("Europe/Berlin"). */
export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

/** A page showing one site sets its zone (null when it names none, or on leaving). */
export function setSiteZone(zone) {
  siteZoneNow = zone && validZone(zone) ? zone : null;
}

export function siteZone() {
  return siteZoneNow;
}

function validZone(zone) {
  try {
    new Intl.DateTimeFormat(LOCALE, { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** The IANA zone times are shown in now, or null for UTC ("site" without a site zone is UTC). */
export function activeZone() {
  if (zoneModeNow === "local") return browserZone();
  if (zoneModeNow === "site") return siteZoneNow;
  return null;
}

const zoneFormats = new Map();
function partsIn(d, zone) {
  let f = zoneFormats.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat(LOCALE, {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short",
    });
    zoneFormats.set(zone, f);
  }
  return Object.fromEntries(f.formatToParts(d).map((p) => [p.type, p.value]));
}

/** The calendar fields of `d` in the chosen zone (UTC by default), as numbers (month 1-12). */
export function timeParts(d) {
  const zone = activeZone();
  if (!zone) {
    return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(),
      hour: d.getUTCHours(), minute: d.getUTCMinutes(), second: d.getUTCSeconds() };
  }
  const p = partsIn(d, zone);
  return { year: Number(p.year), month: Number(p.month), day: Number(p.day),
    hour: Number(p.hour), minute: Number(p.minute), second: Number(p.second) };
}

/** The label of the zone times are shown in: "UTC", or a short name such as "CST" or "GMT+1". */
export function zoneLabel(at = new Date()) {
  const zone = activeZone();
  return zone ? partsIn(at, zone).timeZoneName : "UTC";
}


/** "2026-11-27 16:05:09 UTC" (or without seconds); in the chosen zone, with its label. */
export function utc(value, { seconds = true, zone = true } = {}) {
  if (!value) return "—";
  const d = value instanceof Date ? value : new Date(value);
  const tz = activeZone();
  if (tz) {
    const p = partsIn(d, tz);
    let time = `${p.hour}:${p.minute}`;
    if (seconds) time += `:${p.second}`;
    return `${p.year}-${p.month}-${p.day} ${time}${zone ? ` ${p.timeZoneName}` : ""}`;
  }
  const date = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  let time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  if (seconds) time += `:${pad(d.getUTCSeconds())}`;
  return `${date} ${time}${zone ? " UTC" : ""}`;
}

/** An alias of utc() for new code: the time in the chosen zone, labelled. */
export const when = utc;

/** "16:05:09", always UTC (callers append "UTC"); zonedClock() follows the zone switch. */
export function clock(value) {
  const d = value instanceof Date ? value : new Date(value);
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** "16:05:09 CET": the clock time in the chosen zone, with its label. */
export function zonedClock(value) {
  const d = value instanceof Date ? value : new Date(value);
  return utc(d).slice(11);
}

/** A window of readings: "2026-11-27 10:00 → 10:45 UTC" (the date once when it is one day). */
export function window(first, last) {
  if (!first) return "—";
  const a = utc(first, { seconds: false, zone: false });
  const b = utc(last || first, { seconds: false, zone: false });
  const label = zoneLabel(new Date(first));
  if (a === b) return `${a} ${label}`;
  return a.slice(0, 10) === b.slice(0, 10) ? `${a} → ${b.slice(11)} ${label}` : `${a} → ${b} ${label}`;
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "—";
}
