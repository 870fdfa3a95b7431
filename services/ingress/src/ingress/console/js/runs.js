// Runs: newest first, filtered by workflow, status and creation time, paged by cursor, and
// refreshed while the tab is visible (the API has no list-wide stream; one request per few
// seconds is cheaper than a stream per visible run, and browsers allow only six connections).

import { useEffect, useState } from "preact/hooks";
import { api, query } from "./api.js";
import { href, route } from "./router.js";
import {
  ErrorNote,
  Loading,
  StatusBadge,
  firstImage,
  formatDuration,
  formatTime,
  html,
  isLive,
  relativeTime,
  runDuration,
  stableUrl,
  useLoad,
  useNow,
} from "./util.js";

const STATUSES = ["queued", "running", "completed", "failed", "canceled"];
const PAGE_SIZE = 20;
const REFRESH_MS = 2500;

// `datetime-local` values are local times without a zone; the API wants RFC 3339.
const toRfc3339 = (local) => (local ? new Date(local).toISOString() : undefined);

export function Thumbnail({ asset, size = 56, alt = "" }) {
  if (!asset) return html`<span class="thumb empty" style=${{ width: `${size}px`, height: `${size}px` }}></span>`;
  return html`<img class="thumb" src=${stableUrl(asset)} alt=${alt} width=${size} height=${size}
    loading="lazy" decoding="async" />`;
}

// The parent keys this form by the applied filters, so a new address (Apply, Clear, Back) starts
// a fresh draft in the same render. Copying them in an effect instead ran after paint, and
// overwrote whatever the user had typed in between.
function Filters({ q, workflows }) {
  const [draft, setDraft] = useState(q);
  // From the latest draft, not this render's: two edits before a re-render must both stay.
  const set = (name) => (e) => {
    const value = e.currentTarget.value;
    setDraft((latest) => ({ ...latest, [name]: value }));
  };
  function apply(e) {
    e.preventDefault();
    route(href("/runs", { ...draft, cursor: undefined, back: undefined }));
  }
  return html`<form class="filters" onSubmit=${apply} aria-label="Filter runs">
    <label>Workflow
      <select name="workflowId" value=${draft.workflowId || ""} onChange=${set("workflowId")}>
        <option value="">All workflows</option>
        ${(workflows || []).map((w) => html`<option value=${w.workflowId}>${w.workflowId}</option>`)}
        ${draft.workflowId && !(workflows || []).some((w) => w.workflowId === draft.workflowId)
          ? html`<option value=${draft.workflowId}>${draft.workflowId}</option>`
          : null}
      </select>
    </label>
    <label>Status
      <select name="status" value=${draft.status || ""} onChange=${set("status")}>
        <option value="">Any status</option>
        ${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
      </select>
    </label>
    <label>Created after
      <input type="datetime-local" name="createdAfter" value=${draft.createdAfter || ""}
        onChange=${set("createdAfter")} />
    </label>
    <label>Created before
      <input type="datetime-local" name="createdBefore" value=${draft.createdBefore || ""}
        onChange=${set("createdBefore")} />
    </label>
    <div class="filter-actions">
      <button type="submit" class="primary">Apply</button>
      <a class="button quiet" href="#/runs">Clear</a>
    </div>
  </form>`;
}

function RunRow({ run, now }) {
  const image = firstImage(run.outputs);
  const live = isLive(run);
  return html`<tr class=${`run-row status-row-${run.status}`} data-run-id=${run.runId}>
    <td class="col-thumb"><${Thumbnail} asset=${image} alt=${image ? `${image.name} of ${run.runId}` : ""} /></td>
    <td class="col-run" data-label="Run">
      <a href=${href(`/runs/${run.runId}`)} class="mono run-id">${run.runId}</a>
      ${run.rerunOf ? html`<span class="tag" title=${`rerun of ${run.rerunOf.runId}`}>rerun</span>` : null}
      ${run.parentRunId ? html`<span class="tag">child</span>` : null}
    </td>
    <td data-label="Status"><${StatusBadge} status=${run.status} /></td>
    <td data-label="Workflow">
      <a href=${href(`/workflows/${run.workflowId}`)}>${run.workflowId}</a>
      <span class="muted"> v${run.workflowVersion}</span>
    </td>
    <td data-label="Duration" class=${live ? "live-duration" : ""}>
      ${formatDuration(runDuration(run, now))}${live ? "…" : ""}
    </td>
    <td data-label="Created"><time datetime=${run.createdAt} title=${formatTime(run.createdAt)}>
      ${relativeTime(run.createdAt, now)}</time></td>
  </tr>`;
}

export function RunsPage({ query: q }) {
  const filters = {
    workflowId: q.workflowId,
    status: q.status,
    createdAfter: toRfc3339(q.createdAfter),
    createdBefore: toRfc3339(q.createdBefore),
  };
  const key = JSON.stringify([filters, q.cursor, q.limit]);
  const page = useLoad(
    () => api(`/v1/runs${query({ ...filters, cursor: q.cursor, limit: q.limit || PAGE_SIZE })}`),
    key,
  );
  const workflows = useLoad(() => api("/v1/workflows"), "workflows");
  const [updated, setUpdated] = useState(null);
  const items = page.data?.items || [];
  const anyLive = items.some(isLive);
  const now = useNow(anyLive);

  // The first page shows new runs as they come; any page keeps its live runs current.
  useEffect(() => {
    if (!page.data || (q.cursor && !anyLive)) return undefined;
    const timer = setInterval(() => {
      if (document.visibilityState !== "visible") return;
      page.reload(true).then(() => setUpdated(new Date()));
    }, REFRESH_MS);
    return () => clearInterval(timer);
  }, [key, Boolean(page.data), anyLive]);

  const back = q.back ? q.back.split(",") : [];
  const older = page.data?.nextCursor;
  const pageLink = (cursor, stack) =>
    href("/runs", { ...q, cursor, back: stack.length ? stack.join(",") : undefined });

  return html`<section aria-labelledby="runs-title">
    <div class="page-head">
      <h1 id="runs-title">Runs</h1>
      <p class="muted live-note" aria-live="off">
        ${page.data && (!q.cursor || anyLive)
          ? html`<span class="pulse" aria-hidden="true"></span> Live${updated ? ` · updated ${updated.toLocaleTimeString()}` : ""}`
          : null}
      </p>
    </div>
    <${Filters} key=${JSON.stringify([q.workflowId, q.status, q.createdAfter, q.createdBefore])}
      q=${q} workflows=${workflows.data?.items} />
    <${ErrorNote} error=${page.error} retry=${() => page.reload()} />
    ${page.loading && !page.data
      ? html`<${Loading} label="Loading runs…" />`
      : html`<div class="table-wrap" aria-busy=${page.loading ? "true" : "false"}>
          <table class="runs">
            <caption class="sr-only">Runs, newest first</caption>
            <thead><tr>
              <th scope="col" class="col-thumb"><span class="sr-only">Picture</span></th>
              <th scope="col">Run</th><th scope="col">Status</th><th scope="col">Workflow</th>
              <th scope="col">Duration</th><th scope="col">Created</th>
            </tr></thead>
            <tbody>
              ${items.map((run) => html`<${RunRow} key=${run.runId} run=${run} now=${now} />`)}
            </tbody>
          </table>
          ${items.length === 0 && !page.loading
            ? html`<p class="empty-note">No runs match. Start one from <a href="#/workflows">a workflow</a>.</p>`
            : null}
        </div>`}
    <nav class="pager" aria-label="Pages of runs">
      ${q.cursor
        ? html`<a class="button" href=${pageLink(back[back.length - 1] || undefined, back.slice(0, -1))}>← Newer</a>`
        : html`<span></span>`}
      ${older
        ? html`<a class="button" href=${pageLink(older, q.cursor ? [...back, q.cursor] : [])}>Older →</a>`
        : null}
    </nav>
  </section>`;
}
