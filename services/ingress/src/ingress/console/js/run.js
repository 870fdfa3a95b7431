// One run: what happened (status, timings, the timeline), why it failed (at the top, with its
// step marked on the timeline), what it made (outputs, large), and what can be done with it
// (cancel, rerun, rerun from a step, redeliver a webhook).

import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError } from "./api.js";
import { Gantt } from "./gantt.js";
import { ItemGrid } from "./items.js";
import { useRunLive } from "./live.js";
import { OutputView } from "./outputs.js";
import { href, route } from "./router.js";
import {
  ErrorNote,
  JsonBlock,
  Loading,
  StatusBadge,
  formatDuration,
  formatTime,
  html,
  isLive,
  ms,
  pretty,
  runDuration,
  useLoad,
  useNow,
} from "./util.js";

function RerunDialog({ run, fromNode, onClose }) {
  const dialog = useRef(null);
  const original = run.inputs !== undefined ? pretty(run.inputs) : "";
  const [from, setFrom] = useState(fromNode || "");
  const [text, setText] = useState(original);
  const [state, setState] = useState({ busy: false, error: null });
  useEffect(() => {
    dialog.current?.showModal();
  }, []);

  async function submit(event) {
    event.preventDefault();
    const body = {};
    if (from) body.fromNode = from;
    if (text.trim() && text !== original) {
      try {
        body.inputs = JSON.parse(text);
      } catch (e) {
        setState({ busy: false, error: new ApiError(0, { title: "The inputs are not valid JSON", detail: e.message }) });
        return;
      }
    }
    setState({ busy: true, error: null });
    try {
      const created = await api(`/v1/runs/${run.runId}/rerun`, {
        method: "POST",
        body,
        headers: { Prefer: "respond-async" },
      });
      dialog.current?.close();
      onClose();
      route(href(`/runs/${created.runId}`));
    } catch (error) {
      setState({ busy: false, error });
    }
  }

  return html`<dialog ref=${dialog} class="dialog" aria-labelledby="rerun-title" onClose=${onClose}>
    <form method="dialog" onSubmit=${submit}>
      <h2 id="rerun-title">Rerun ${run.runId}</h2>
      <p class="muted">A new run of ${run.workflowId} v${run.workflowVersion}. From a step, the
        steps before it are not run again: their outputs are reused.</p>
      <label for="rerun-from">Start from</label>
      <select id="rerun-from" value=${from} onChange=${(e) => setFrom(e.currentTarget.value)}>
        <option value="">The beginning (every step)</option>
        ${(run.steps || []).map((s) => html`<option value=${s.nodeId}>${s.nodeId} (${s.type})</option>`)}
      </select>
      <label for="rerun-inputs">Inputs (JSON)</label>
      <textarea id="rerun-inputs" rows="8" spellcheck="false" value=${text}
        placeholder=${run.inputs === undefined ? "Empty: the original inputs are used" : ""}
        onInput=${(e) => setText(e.currentTarget.value)} aria-describedby="rerun-inputs-hint"></textarea>
      <p id="rerun-inputs-hint" class="hint">Unchanged inputs are the run's own.</p>
      <${ErrorNote} error=${state.error} />
      <div class="dialog-actions">
        <button type="button" onClick=${() => dialog.current?.close()}>Close</button>
        <button type="submit" class="primary" disabled=${state.busy}>
          ${state.busy ? "Starting…" : from ? `Rerun from ${from}` : "Rerun"}
        </button>
      </div>
    </form>
  </dialog>`;
}

function StepPanel({ step, defined, open, onToggle, onRerunFrom, live }) {
  const params = step.params ?? defined?.params;
  const id = `step-${step.nodeId}`;
  return html`<details id=${id} class=${`step step-${step.status}`} open=${open}
    data-node-id=${step.nodeId} onToggle=${(e) => onToggle(step.nodeId, e.currentTarget.open)}>
    <summary>
      <${StatusBadge} status=${step.status} />
      <strong class="mono">${step.nodeId}</strong>
      <span class="muted">${step.type}</span>
      <span class="muted">${step.startedAt && step.finishedAt ? formatDuration(ms(step.finishedAt) - ms(step.startedAt)) : ""}</span>
    </summary>
    ${open
      ? html`<div class="step-body">
          ${step.error
            ? html`<div class="note error"><strong>${step.error.code}</strong><p>${step.error.message}</p></div>`
            : null}
          ${step.reusedFrom
            ? html`<p>Not run again: its outputs were reused from
                <a href=${href(`/runs/${step.reusedFrom}`)} class="mono">${step.reusedFrom}</a>.</p>`
            : null}
          ${step.childRunId
            ? html`<p>Child run: <a href=${href(`/runs/${step.childRunId}`)} class="mono">${step.childRunId}</a></p>`
            : null}
          <dl class="facts">
            <dt>Attempt</dt><dd>${step.attempt}</dd>
            ${step.dispatchedAt ? html`<dt>Dispatched</dt><dd>${formatTime(step.dispatchedAt)}</dd>` : null}
            ${step.startedAt ? html`<dt>Started</dt><dd>${formatTime(step.startedAt)}</dd>` : null}
            ${step.finishedAt ? html`<dt>Finished</dt><dd>${formatTime(step.finishedAt)}</dd>` : null}
            ${step.nextAttemptAt ? html`<dt>Next attempt</dt><dd>${formatTime(step.nextAttemptAt)}</dd>` : null}
            ${step.provider
              ? html`<dt>Drawn by</dt><dd>${step.provider.name} · ${step.provider.model}
                  ${step.provider.requestId ? html` · <span class="mono">${step.provider.requestId}</span>` : null}</dd>`
              : null}
          </dl>
          ${step.outputs?.length
            ? html`<h4>Outputs</h4><div class="outputs">${step.outputs.map((o) => html`<${OutputView} output=${o} />`)}</div>`
            : null}
          ${step.items ? html`<h4>Items</h4><${ItemGrid} items=${step.items} />` : null}
          ${params !== undefined
            ? html`<h4>Params${step.params === undefined ? html` <span class="muted">(as defined; references unresolved)</span>` : ""}</h4>
                <${JsonBlock} value=${params} label=${`Params of ${step.nodeId}`} />`
            : null}
          ${step.attempts?.length
            ? html`<h4>Attempts</h4>
                <table class="compact"><thead><tr><th scope="col">#</th><th scope="col">Error</th><th scope="col">Took</th></tr></thead>
                <tbody>${step.attempts.map((a) => html`<tr><td>${a.attempt}</td>
                  <td>${a.error ? html`<code>${a.error.code}</code> ${a.error.message}` : "–"}</td>
                  <td>${formatDuration(ms(a.finishedAt) - ms(a.startedAt))}</td></tr>`)}</tbody></table>`
            : null}
          ${!live
            ? html`<button type="button" onClick=${() => onRerunFrom(step.nodeId)}>Rerun from ${step.nodeId}</button>`
            : null}
        </div>`
      : null}
  </details>`;
}

function Deliveries({ runId, live }) {
  const deliveries = useLoad(() => api(`/v1/runs/${runId}/webhook-deliveries`), runId);
  const [busy, setBusy] = useState(null);
  const [error, setError] = useState(null);
  const items = deliveries.data?.items || [];
  const pending = items.some((d) => d.status === "pending");
  useEffect(() => {
    if (!pending && !live) return undefined;
    const timer = setInterval(() => deliveries.reload(true), 1500);
    return () => clearInterval(timer);
  }, [pending, live]);

  async function redeliver(delivery) {
    setBusy(delivery.deliveryId);
    setError(null);
    try {
      await api(`/v1/runs/${runId}/webhook-deliveries/${encodeURIComponent(delivery.deliveryId)}/redeliver`, { method: "POST" });
      await deliveries.reload(true);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  }

  if (deliveries.loading && !deliveries.data) return html`<${Loading} label="Loading webhook deliveries…" />`;
  if (!items.length) return html`<${ErrorNote} error=${deliveries.error} /><p class="muted">No webhook was asked for.</p>`;
  return html`<${ErrorNote} error=${error || deliveries.error} />
    <div class="table-wrap"><table class="deliveries">
      <thead><tr><th scope="col">Event</th><th scope="col">Status</th><th scope="col">Attempts</th>
        <th scope="col">URL</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
      <tbody>${items.map(
        (d) => html`<tr data-delivery-id=${d.deliveryId}>
          <td data-label="Event">${d.type}</td>
          <td data-label="Status"><span class=${`badge delivery-${d.status}`}>${d.status}</span></td>
          <td data-label="Attempts"><ol class="attempts">${d.attempts.map(
            (a) => html`<li title=${formatTime(a.at)}>
              <span class=${`code ${a.statusCode >= 200 && a.statusCode < 300 ? "ok" : "bad"}`}>${a.statusCode ?? a.error ?? "…"}</span>
              <span class="muted"> ${a.durationMs} ms</span></li>`,
          )}</ol></td>
          <td data-label="URL" class="url">${d.url}</td>
          <td><button type="button" onClick=${() => redeliver(d)}
            disabled=${d.status === "pending" || busy === d.deliveryId}
            aria-label=${`Redeliver ${d.type}`}>${busy === d.deliveryId ? "Sending…" : "Redeliver"}</button></td>
        </tr>`,
      )}</tbody>
    </table></div>`;
}

export function RunPage({ runId }) {
  const state = useRunLive(runId);
  const run = state.data;
  const live = isLive(run);
  const now = useNow(live);
  const defn = useLoad(
    () => (run ? api(`/v1/workflows/${run.workflowId}/versions/${run.workflowVersion}`) : Promise.resolve(null)),
    run ? `${run.workflowId}@${run.workflowVersion}` : "",
  );
  const failingNode = run?.status === "failed" ? run.error?.nodeId : undefined;
  const [open, setOpen] = useState(() => new Set());
  const [rerun, setRerun] = useState(null);
  const [action, setAction] = useState({ busy: false, error: null });

  // A failed run opens on its failing step.
  useEffect(() => {
    if (failingNode) setOpen((o) => new Set(o).add(failingNode));
  }, [failingNode]);

  if (state.loading && !run) return html`<${Loading} label="Loading the run…" />`;
  if (!run) return html`<${ErrorNote} error=${state.error} retry=${() => state.reload()} />`;

  const toggle = (nodeId, isOpen) =>
    setOpen((o) => {
      if (o.has(nodeId) === isOpen) return o;
      const next = new Set(o);
      isOpen ? next.add(nodeId) : next.delete(nodeId);
      return next;
    });
  const select = (nodeId) => {
    toggle(nodeId, true);
    requestAnimationFrame(() => {
      const el = document.getElementById(`step-${nodeId}`);
      el?.scrollIntoView({ behavior: "smooth", block: "start" });
      el?.querySelector("summary")?.focus({ preventScroll: true });
    });
  };
  async function cancel() {
    setAction({ busy: true, error: null });
    try {
      await api(`/v1/runs/${run.runId}/cancel`, { method: "POST" });
      await state.reload(true);
      setAction({ busy: false, error: null });
    } catch (error) {
      setAction({ busy: false, error });
    }
  }
  const failedStep = (run.steps || []).find((s) => s.nodeId === failingNode);
  const definedNodes = Object.fromEntries((defn.data?.definition?.nodes || []).map((n) => [n.id, n]));

  return html`<article class="run" aria-labelledby="run-title" data-run-id=${run.runId} data-status=${run.status}>
    <nav class="crumbs" aria-label="Breadcrumb"><a href="#/runs">Runs</a> / <span class="mono">${run.runId}</span></nav>
    <header class="run-head">
      <div>
        <h1 id="run-title"><span class="mono">${run.runId}</span> <${StatusBadge} status=${run.status} /></h1>
        <p class="muted">
          <a href=${href(`/workflows/${run.workflowId}`, { version: run.workflowVersion })}>${run.workflowId}</a>
          ${" "}v${run.workflowVersion}
          ${run.rerunOf
            ? html` · rerun of <a class="mono" href=${href(`/runs/${run.rerunOf.runId}`)}>${run.rerunOf.runId}</a>${run.rerunOf.fromNode ? html` from step <strong>${run.rerunOf.fromNode}</strong>` : null}`
            : null}
          ${run.parentRunId
            ? html` · child of <a class="mono" href=${href(`/runs/${run.parentRunId}`)}>${run.parentRunId}</a>`
            : null}
        </p>
      </div>
      <div class="actions">
        ${live
          ? html`<button type="button" class="danger" onClick=${cancel} disabled=${action.busy}>
              ${action.busy ? "Cancelling…" : "Cancel run"}</button>`
          : html`<button type="button" class="primary" onClick=${() => setRerun({ from: "" })}>Rerun…</button>`}
      </div>
    </header>
    <${ErrorNote} error=${action.error} />
    ${run.status === "failed" && run.error
      ? html`<div class="run-error" role="alert">
          <strong>Failed${failingNode ? html` at step <button type="button" class="linklike" onClick=${() => select(failingNode)}>${failingNode}</button>${failedStep ? ` (${failedStep.type})` : ""}` : ""}:</strong>
          <code>${run.error.code}</code> <span class="message">${run.error.message}</span>
        </div>`
      : null}
    <dl class="facts timings">
      <dt>Created</dt><dd><time datetime=${run.createdAt}>${formatTime(run.createdAt)}</time></dd>
      <dt>Started</dt><dd>${formatTime(run.startedAt)}</dd>
      <dt>Ended</dt><dd>${run.completedAt ? formatTime(run.completedAt) : live ? "running…" : "–"}</dd>
      <dt>Duration</dt><dd class="duration">${formatDuration(runDuration(run, now))}${live ? "…" : ""}</dd>
    </dl>
    <section aria-labelledby="timeline-title">
      <h2 id="timeline-title">Timeline</h2>
      ${run.steps?.length
        ? html`<${Gantt} run=${run} now=${now} failingNode=${failingNode} selected=${null} onSelect=${select} />`
        : html`<p class="muted">No step has started yet.</p>`}
    </section>
    ${run.outputs?.length
      ? html`<section aria-labelledby="outputs-title">
          <h2 id="outputs-title">Outputs</h2>
          <div class="outputs large">${run.outputs.map((o) => html`<${OutputView} output=${o} large=${true} />`)}</div>
        </section>`
      : null}
    <section aria-labelledby="steps-title">
      <h2 id="steps-title">Steps</h2>
      ${(run.steps || []).map(
        (s) => html`<${StepPanel} key=${s.nodeId} step=${s} defined=${definedNodes[s.nodeId]}
          open=${open.has(s.nodeId)} onToggle=${toggle} live=${live}
          onRerunFrom=${(nodeId) => setRerun({ from: nodeId })} />`,
      )}
    </section>
    <section aria-labelledby="data-title" class="two-col">
      <h2 id="data-title" class="sr-only">Inputs and metadata</h2>
      <div><h3>Inputs</h3>
        ${run.inputs !== undefined
          ? html`<${JsonBlock} value=${run.inputs} label="Inputs" />`
          : html`<p class="muted">Not shown by this server.</p>`}</div>
      <div><h3>Metadata</h3><${JsonBlock} value=${run.metadata || {}} label="Metadata" /></div>
    </section>
    <section aria-labelledby="webhooks-title">
      <h2 id="webhooks-title">Webhook deliveries</h2>
      <${Deliveries} runId=${run.runId} live=${live} />
    </section>
    ${rerun ? html`<${RerunDialog} run=${run} fromNode=${rerun.from} onClose=${() => setRerun(null)} />` : null}
  </article>`;
}
