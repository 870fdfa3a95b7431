// Workflows: the registry's list, and one workflow: its versions, a drawing of its DAG, and
// its input schema as a form that starts a run and shows it, live, until it ends.

import { useState } from "preact/hooks";
import { api } from "./api.js";
import { Dag } from "./dag.js";
import { Gantt } from "./gantt.js";
import { useRunLive } from "./live.js";
import { OutputView } from "./outputs.js";
import { href, route } from "./router.js";
import { SchemaForm, initialValue } from "./schemaform.js";
import {
  ErrorNote,
  JsonBlock,
  Loading,
  StatusBadge,
  formatDuration,
  formatTime,
  html,
  isLive,
  relativeTime,
  runDuration,
  useLoad,
  useNow,
} from "./util.js";

export function WorkflowsPage() {
  const list = useLoad(() => api("/v1/workflows"), "workflows");
  const items = [...(list.data?.items || [])].sort((a, b) => a.workflowId.localeCompare(b.workflowId));
  return html`<section aria-labelledby="wf-title">
    <div class="page-head"><h1 id="wf-title">Workflows</h1></div>
    <${ErrorNote} error=${list.error} retry=${() => list.reload()} />
    ${list.loading && !list.data
      ? html`<${Loading} label="Loading workflows…" />`
      : html`<div class="table-wrap"><table class="workflows">
          <caption class="sr-only">Workflows, latest version of each</caption>
          <thead><tr><th scope="col">Workflow</th><th scope="col">Name</th><th scope="col">Latest</th>
            <th scope="col">Nodes</th><th scope="col">Registered</th><th scope="col"><span class="sr-only">Runs</span></th></tr></thead>
          <tbody>${items.map(
            (w) => html`<tr data-workflow-id=${w.workflowId}>
              <td data-label="Workflow"><a href=${href(`/workflows/${w.workflowId}`)} class="mono">${w.workflowId}</a></td>
              <td data-label="Name">${w.name}${w.description ? html`<br /><span class="muted small">${w.description}</span>` : null}</td>
              <td data-label="Latest">v${w.version}</td>
              <td data-label="Nodes">${(w.definition?.nodes || []).length}</td>
              <td data-label="Registered"><time datetime=${w.createdAt} title=${formatTime(w.createdAt)}>${relativeTime(w.createdAt)}</time></td>
              <td><a href=${href("/runs", { workflowId: w.workflowId })}>Runs<span class="sr-only"> of ${w.workflowId}</span></a></td>
            </tr>`,
          )}</tbody>
        </table>
        ${items.length === 0 ? html`<p class="empty-note">No workflow is registered yet (PUT /v1/workflows/{id}).</p>` : null}
        </div>`}
  </section>`;
}

function RunResult({ runId }) {
  const state = useRunLive(runId);
  const run = state.data;
  const live = isLive(run);
  const now = useNow(live);
  if (!run) return state.error ? html`<${ErrorNote} error=${state.error} />` : html`<${Loading} label="Starting…" />`;
  return html`<div class="run-result" data-run-id=${run.runId} data-status=${run.status}>
    <p role="status">
      <${StatusBadge} status=${run.status} />
      ${" "}<a href=${href(`/runs/${run.runId}`)} class="mono">${run.runId}</a>
      ${" "}<span class="muted">${formatDuration(runDuration(run, now))}${live ? "…" : ""}</span>
    </p>
    ${run.error ? html`<div class="note error"><code>${run.error.code}</code> ${run.error.message}</div>` : null}
    ${run.steps?.length ? html`<${Gantt} run=${run} now=${now} failingNode=${run.error?.nodeId} compact=${true}
          onSelect=${() => route(href(`/runs/${run.runId}`))} />` : null}
    ${run.outputs?.length ? html`<div class="outputs">${run.outputs.map((o) => html`<${OutputView} output=${o} />`)}</div>` : null}
  </div>`;
}

function RunForm({ workflow }) {
  const schema = workflow.definition.inputSchema || { type: "object" };
  const [inputs, setInputs] = useState(() => initialValue(schema) || {});
  const [state, setState] = useState({ busy: false, error: null, runId: null });
  const errors = Object.fromEntries((state.error?.problem?.errors || []).map((e) => [e.path, e.message]));

  async function start(event) {
    event.preventDefault();
    setState({ busy: true, error: null, runId: null });
    try {
      // 202 at once: the run is then followed live here rather than by a held request.
      const run = await api(`/v1/workflows/${workflow.workflowId}/run`, {
        method: "POST",
        body: { inputs, version: workflow.version },
        headers: { Prefer: "respond-async" },
      });
      setState({ busy: false, error: null, runId: run.runId });
    } catch (error) {
      setState({ busy: false, error, runId: null });
    }
  }

  return html`<form class="run-form" onSubmit=${start} aria-labelledby="run-form-title" novalidate>
    <h2 id="run-form-title">Run it</h2>
    <${SchemaForm} schema=${schema} value=${inputs} onChange=${setInputs} errors=${errors} />
    <${ErrorNote} error=${state.error} />
    <button type="submit" class="primary" disabled=${state.busy}>${state.busy ? "Starting…" : `Run v${workflow.version}`}</button>
    ${state.runId ? html`<${RunResult} key=${state.runId} runId=${state.runId} />` : null}
  </form>`;
}

export function WorkflowPage({ workflowId, version }) {
  const latest = useLoad(() => api(`/v1/workflows/${encodeURIComponent(workflowId)}`), workflowId);
  const wanted = version && latest.data && Number(version) !== latest.data.version ? Number(version) : null;
  const pinned = useLoad(
    () => (wanted ? api(`/v1/workflows/${encodeURIComponent(workflowId)}/versions/${wanted}`) : Promise.resolve(null)),
    `${workflowId}@${wanted}`,
  );
  const workflow = wanted ? pinned.data : latest.data;
  const error = latest.error || pinned.error;
  if (error && !workflow) return html`<${ErrorNote} error=${error} retry=${() => latest.reload()} />`;
  if (!workflow) return html`<${Loading} label="Loading the workflow…" />`;
  const versions = Array.from({ length: latest.data.version }, (_, i) => latest.data.version - i);

  return html`<article class="workflow" aria-labelledby="workflow-title">
    <nav class="crumbs" aria-label="Breadcrumb"><a href="#/workflows">Workflows</a> / <span class="mono">${workflowId}</span></nav>
    <header class="run-head">
      <div>
        <h1 id="workflow-title">${workflow.name} <span class="muted mono small">${workflow.workflowId}</span></h1>
        ${workflow.description ? html`<p>${workflow.description}</p>` : null}
      </div>
      <div class="actions">
        <label class="inline">Version
          <select value=${String(workflow.version)}
            onChange=${(e) => route(href(`/workflows/${workflowId}`, { version: e.currentTarget.value }))}>
            ${versions.map((v) => html`<option value=${String(v)}>v${v}${v === latest.data.version ? " (latest)" : ""}</option>`)}
          </select>
        </label>
        <a class="button" href=${href("/runs", { workflowId })}>Runs</a>
      </div>
    </header>
    <p class="muted small">v${workflow.version} registered ${formatTime(workflow.createdAt)}</p>
    <section aria-labelledby="dag-title">
      <h2 id="dag-title">Graph</h2>
      <${Dag} definition=${workflow.definition} />
    </section>
    <div class="workflow-grid">
      <${RunForm} key=${`${workflow.workflowId}@${workflow.version}`} workflow=${workflow} />
      <section aria-labelledby="def-title">
        <h2 id="def-title">Definition</h2>
        <details class="definition"><summary>Input schema (JSON)</summary>
          <${JsonBlock} value=${workflow.definition.inputSchema || {}} label="Input schema" /></details>
        <details class="definition"><summary>Whole definition (JSON)</summary>
          <${JsonBlock} value=${workflow.definition} label="Definition" /></details>
      </section>
    </div>
  </article>`;
}
