// The unit the dashboard shows emissions in: kg CH₄ (as measured) or t CO₂e (the API's
// t_co2e fields, computed with a stated GWP100 factor). The choice persists in localStorage.

import { mass } from "./format.js";

const KEY = "emissions.unit";
const listeners = new Set();

function load() {
  try {
    return localStorage.getItem(KEY) === "co2e";
  } catch {
    return false;
  }
}

let co2e = load();

export function co2eOn() {
  return co2e;
}

export function setCo2e(on) {
  co2e = Boolean(on);
  try {
    localStorage.setItem(KEY, co2e ? "co2e" : "kg");
  } catch {
    // storage disabled: this page only
  }
  for (const fn of listeners) fn(co2e);
}

export function onUnitChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

const nf = (digits) => new Intl.NumberFormat("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
const T3 = nf(3);
const T2 = nf(2);
const T1 = nf(1);
const T0 = nf(0);

/** Tonnes CO₂e: "0.298 t CO₂e", "1,234.5 t CO₂e". */
export function tonnes(t, { suffix = true } = {}) {
  if (t === null || t === undefined || Number.isNaN(t)) return "—";
  const a = Math.abs(t);
  const text = (a < 10 ? T3 : a < 100 ? T2 : a < 1000 ? T1 : T0).format(t);
  return suffix ? `${text} t CO₂e` : `${text} t`;
}

/** Short tonnes for chart axes. */
export function tonnesAxis(t) {
  const a = Math.abs(t);
  return `${(a < 1 ? T2 : a < 10 ? T1 : T0).format(t)} t`;
}

/** kg CH₄ as t CO₂e with the site's factor (for figures the API gives in kg only, e.g. limits). */
export function toCo2e(kg, gwp) {
  return gwp ? (kg * gwp.factor) / 1000 : null;
}

/** "GWP100 AR6 fossil = 29.8": the factor, stated wherever CO₂e figures are shown. */
export function gwpLabel(gwp) {
  if (!gwp) return "";
  return `GWP100 ${String(gwp.version).replace(/-/g, " ")} = ${gwp.factor}`;
}

/**
 * An emission figure in the chosen unit: kg CH₄ from `kg`, or t CO₂e from `t` (the API's own
 * figure when it has one; otherwise computed from kg with `gwp`).
 */
export function amount(kg, { t, gwp } = {}) {
  if (!co2e) return ch4(kg);
  const value = t ?? toCo2e(kg, gwp);
  return value === null ? mass(kg) : tonnes(value);
}

/** kg CH₄ that cannot be read as CO₂e: "850 kg CH₄", "12.5 t CH₄". */
export function ch4(kg) {
  const text = mass(kg);
  return text === "—" ? text : `${text} CH₄`;
}

/** Unit name for notes and headings. */
export function unitName() {
  return co2e ? "t CO₂e" : "kg CH₄";
}
