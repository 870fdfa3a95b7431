import { h } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);

export const LIVE = new Set(["queued", "running"]);
export const isLive = (run) => Boolean(run) && LIVE.has(run.status);

export const ms = (iso) => (iso ? Date.parse(iso) : NaN);

export function formatDuration(millis) {
  if (!Number.isFinite(millis) || millis < 0) return "–";
  if (millis < 1000) return `${Math.round(millis)} ms`;
  const s = millis / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  const hours = Math.floor(m / 60);
  return `${hours} h ${m % 60} min`;
}

// A run's duration: from its start (or creation) to its end, or to now while it runs.
export function runDuration(run, now = Date.now()) {
  const start = ms(run.startedAt) || ms(run.createdAt);
  const end = run.completedAt ? ms(run.completedAt) : isLive(run) ? now : NaN;
  return end - start;
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "medium",
});

export function formatTime(iso) {
  return iso ? timeFormat.format(new Date(iso)) : "–";
}

export function relativeTime(iso, now = Date.now()) {
  if (!iso) return "–";
  const seconds = Math.round((now - ms(iso)) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return formatTime(iso);
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

// Run ids are time-ordered, so runs of one hour share their first characters: the end is
// what tells two apart.
export const shortId = (id) => (id && id.length > 14 ? `…${id.slice(-10)}` : id);

// Presigned URLs differ on every answer although the object is the same: keep the first URL
// seen for an object for a while, so a re-render (live updates poll) does not download every
// picture again nor make it flicker.
const urls = new Map();
const URL_KEEP_MS = 5 * 60 * 1000;

export function stableUrl(asset) {
  if (!asset?.url) return undefined;
  const key = asset.ref || asset.url;
  const kept = urls.get(key);
  const now = Date.now();
  if (kept && now - kept.at < URL_KEEP_MS) return kept.url;
  urls.set(key, { url: asset.url, at: now });
  if (urls.size > 2000) urls.delete(urls.keys().next().value);
  return asset.url;
}

export const firstImage = (outputs) => (outputs || []).find((o) => o.type === "image" && o.url);

// Re-renders every `period` ms while `active`, for durations of live runs.
export function useNow(active, period = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!active) return undefined;
    const timer = setInterval(() => setNow(Date.now()), period);
    return () => clearInterval(timer);
  }, [active, period]);
  return active ? now : Date.now();
}

// Data that loads: {data, error, loading, reload}. `key` changes start a new load; a load
// that a newer one replaced is dropped.
export function useLoad(load, key) {
  const [state, setState] = useState({ data: undefined, error: undefined, loading: true });
  const generation = useRef(0);
  const reload = (quiet = false) => {
    const mine = ++generation.current;
    if (!quiet) setState((s) => ({ ...s, loading: true, error: undefined }));
    return load().then(
      (data) => mine === generation.current && setState({ data, error: undefined, loading: false }),
      (error) => mine === generation.current && setState((s) => ({ ...s, error, loading: false })),
    );
  };
  useEffect(() => {
    setState({ data: undefined, error: undefined, loading: true });
    reload();
    return () => {
      generation.current++;
    };
  }, [key]);
  return { ...state, reload, set: (data) => setState((s) => ({ ...s, data })) };
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

export function JsonBlock({ value, label }) {
  return html`<pre class="json" tabindex="0" aria-label=${label}>${pretty(value)}</pre>`;
}

export function StatusBadge({ status }) {
  return html`<span class=${`badge status-${status}`}>${status}</span>`;
}

export function Loading({ label = "Loading…" }) {
  return html`<p class="loading" role="status"><span class="spinner" aria-hidden="true"></span>${label}</p>`;
}

export function ErrorNote({ error, retry }) {
  if (!error) return null;
  const problem = error.problem || {};
  return html`<div class="note error" role="alert">
    <strong>${problem.title || "Something went wrong"}</strong>
    ${problem.detail || (!problem.title && error.message) ? html`<p>${problem.detail || error.message}</p>` : null}
    ${problem.errors?.length
      ? html`<ul>${problem.errors.map((e) => html`<li><code>${e.path}</code>: ${e.message}</li>`)}</ul>`
      : null}
    ${retry ? html`<button type="button" onClick=${retry}>Try again</button>` : null}
  </div>`;
}

// Every `{{ nodes.<id>… }}` reference inside a value (params nest), as node ids.
export function nodeRefs(value, found = new Set()) {
  if (typeof value === "string") {
    for (const m of value.matchAll(/\{\{[^}]*?\bnodes\.([A-Za-z0-9_-]+)/g)) found.add(m[1]);
  } else if (Array.isArray(value)) {
    value.forEach((v) => nodeRefs(v, found));
  } else if (value && typeof value === "object") {
    Object.values(value).forEach((v) => nodeRefs(v, found));
  }
  return found;
}

export function usesInputs(value) {
  if (typeof value === "string") return /\{\{[^}]*?\binputs\b/.test(value);
  if (Array.isArray(value)) return value.some(usesInputs);
  if (value && typeof value === "object") return Object.values(value).some(usesInputs);
  return false;
}
