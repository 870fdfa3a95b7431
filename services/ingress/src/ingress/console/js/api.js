// The console speaks the public HTTP API with the user's own key, like any client. The key
// lives in sessionStorage only (gone when the tab closes) and travels in the Authorization
// header, never in a URL: URLs end up in logs, history and Referer headers.

import { sseParser } from "./sse.js";

const KEY = "workflow-console.api-key";

// The API is served by the same ingress, one level above /console/ (so a path prefix in
// front of the ingress keeps working).
export const API_BASE = new URL("..", document.baseURI);

export function apiUrl(path) {
  return new URL(path.replace(/^\//, ""), API_BASE).toString();
}

const listeners = new Set();

export const auth = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set(key) {
    sessionStorage.setItem(KEY, key);
    listeners.forEach((f) => f(key));
  },
  // `refused`: the API answered 401, so the form says so; otherwise the user signed out.
  clear(refused = false) {
    sessionStorage.removeItem(KEY);
    listeners.forEach((f) => f(null, refused));
  },
  subscribe(f) {
    listeners.add(f);
    return () => listeners.delete(f);
  },
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

async function problemOf(res) {
  try {
    return await res.json();
  } catch {
    return { title: res.statusText || `HTTP ${res.status}`, status: res.status };
  }
}

function authorized(headers = {}) {
  const key = auth.key;
  if (!key) throw new ApiError(401, { title: "No API key", status: 401 });
  return { ...headers, Authorization: `Bearer ${key}` };
}

// One request: JSON in and out; a problem document (RFC 9457) becomes an ApiError. A 401
// forgets the key, which brings back the key form.
export async function api(path, { method = "GET", body, raw, headers = {}, signal } = {}) {
  const init = { method, headers: authorized(headers), signal };
  if (raw !== undefined) {
    init.body = raw;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(apiUrl(path), init);
  if (res.status === 401) {
    auth.clear(true);
    throw new ApiError(401, await problemOf(res));
  }
  if (!res.ok) throw new ApiError(res.status, await problemOf(res));
  if (res.status === 204) return null;
  return res.json();
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// The run with everything the run page shows: resolved params, each step's outputs and a
// map step's items. Servers that do not know the parameter ignore it.
export const RUN_DETAIL = { detail: "full" };

export const getRun = (runId, signal) =>
  api(`/v1/runs/${encodeURIComponent(runId)}${query(RUN_DETAIL)}`, { signal });

// EventSource cannot send an Authorization header, so the stream is read with fetch() and
// parsed here. Resolves when the server closes the stream (the run ended); rejects on
// network errors and on a non-2xx answer.
export async function streamRunEvents(runId, onEvent, signal) {
  const res = await fetch(apiUrl(`/v1/runs/${encodeURIComponent(runId)}/events`), {
    headers: authorized({ Accept: "text/event-stream" }),
    signal,
    cache: "no-store",
  });
  if (res.status === 401) {
    auth.clear(true);
    throw new ApiError(401, await problemOf(res));
  }
  if (!res.ok) throw new ApiError(res.status, await problemOf(res));
  const parser = sseParser(onEvent);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.push(value);
  }
  parser.end();
}
