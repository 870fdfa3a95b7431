// The run's timeline: one row per step, time left to right. Each track is an SVG stretched to
// its row (bars only, no text inside, so the stretch distorts nothing); labels, thumbnails
// and durations are HTML beside it, so the timeline reflows on a phone like the rest.
// Earlier failed attempts, the waits between attempts (backoff, Retry-After), the queue
// before a start, `wait` nodes and a map step's progress each have their own mark.

import { html, firstImage, formatDuration, isLive, ms, stableUrl, shortId } from "./util.js";
import { href } from "./router.js";

const W = 1000;

function span(scale, from, to) {
  const a = scale(from);
  const b = scale(to);
  if (!Number.isFinite(a) || !Number.isFinite(b)) return null;
  return { x: a, w: Math.max(b - a, 3) };
}

// A step's attempts so far: the list holds the earlier ones, and the current one too once a
// step has failed for good, so the count is the current attempt's number.
export const attemptCount = (step) => Math.max(step.attempt || 1, (step.attempts || []).length);

// When a step began: the executor's start, or for the steps the orchestrator carries out
// itself (`wait`, `map`, `workflow.run`: never "started" by an executor) their dispatch.
const begun = (step) => ms(step.startedAt) || ms(step.dispatchedAt);

function segments(step, scale, now, runLive) {
  const marks = [];
  if (step.reusedFrom && !begun(step)) {
    // Not run in this run at all: a short mark at its start, the output came from elsewhere.
    return [{ x: 0, w: 14, kind: "bar reused", title: `output reused from ${step.reusedFrom}` }];
  }
  const earlier = (step.attempts || []).filter((a) => a.attempt < (step.attempt || 1));
  earlier.forEach((a, i) => {
    const bar = span(scale, ms(a.startedAt), ms(a.finishedAt));
    if (bar) marks.push({ ...bar, kind: "attempt-failed", title: `attempt ${a.attempt} failed: ${a.error?.message || ""}` });
    const next = earlier[i + 1];
    const nextStart = next ? ms(next.startedAt) : ms(step.dispatchedAt) || ms(step.startedAt);
    const wait = span(scale, ms(a.finishedAt), nextStart);
    if (wait) marks.push({ ...wait, kind: "retry-wait", title: `waited ${formatDuration(nextStart - ms(a.finishedAt))} before attempt ${a.attempt + 1}` });
  });
  const started = begun(step);
  const queued = span(scale, ms(step.dispatchedAt), started);
  if (queued && started - ms(step.dispatchedAt) > 0) {
    marks.push({ ...queued, kind: "queued", title: `queued ${formatDuration(started - ms(step.dispatchedAt))}` });
  }
  const running = ["dispatched", "retrying"].includes(step.status) && runLive;
  const end = ms(step.finishedAt) || (running ? now : NaN);
  const bar = span(scale, started, end);
  if (bar) {
    const kind = step.reusedFrom ? "reused" : step.type === "wait" ? `waitnode status-${step.status}` : `status-${step.status}`;
    marks.push({ ...bar, kind: `bar ${kind}`, title: `${step.status} ${formatDuration(end - started)}` });
    if (step.itemsTotal) {
      const done = Math.min(1, (step.itemsDone || 0) / step.itemsTotal);
      marks.push({ x: bar.x, w: bar.w * done, kind: "progress", title: `${step.itemsDone || 0} of ${step.itemsTotal} items` });
    }
  }
  if (step.status === "retrying" && step.nextAttemptAt) {
    const last = earlier[earlier.length - 1] || {};
    const wait = span(scale, ms(step.finishedAt) || ms(last.finishedAt), ms(step.nextAttemptAt));
    if (wait) marks.push({ ...wait, kind: "retry-wait", title: `next attempt at ${step.nextAttemptAt}` });
  }
  return marks;
}

function stepDuration(step, now, runLive) {
  if (step.reusedFrom) return "reused";
  const start = begun(step);
  const end = ms(step.finishedAt) || (runLive && ["dispatched", "retrying"].includes(step.status) ? now : NaN);
  if (!Number.isFinite(start)) return step.status;
  return formatDuration(end - start) + (ms(step.finishedAt) ? "" : "…");
}

function ticks(span) {
  const steps = [100, 250, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000, 1800000, 3600000];
  const every = steps.find((s) => span / s <= 5) || span / 5;
  const out = [];
  for (let t = 0; t <= span; t += every) out.push(t);
  return out;
}

// `compact`: no axis and no legend, for the small view under a workflow's run form.
export function Gantt({ run, now, failingNode, selected, onSelect, compact = false }) {
  const steps = run.steps || [];
  const runLive = isLive(run);
  const times = [ms(run.createdAt), ms(run.startedAt), ms(run.completedAt)];
  for (const s of steps) {
    times.push(ms(s.dispatchedAt), ms(s.startedAt), ms(s.finishedAt), ms(s.nextAttemptAt));
    for (const a of s.attempts || []) times.push(ms(a.startedAt), ms(a.finishedAt));
  }
  if (runLive) times.push(now);
  const known = times.filter(Number.isFinite);
  const t0 = Math.min(...known);
  const t1 = Math.max(...known, t0 + 1);
  const scale = (t) => ((t - t0) / (t1 - t0)) * W;

  return html`<div class=${`gantt${compact ? " compact" : ""}`} role="group" aria-label="Timeline of the steps">
    ${compact ? null : html`<div class="gantt-axis" aria-hidden="true">
      <span></span>
      <div class="gantt-ticks">
        ${ticks(t1 - t0).map((t) => html`<span style=${{ left: `${(t / (t1 - t0)) * 100}%` }}>${formatDuration(t)}</span>`)}
      </div>
    </div>`}
    <ol class="gantt-rows">
      ${steps.map((step) => {
        // A map step has no outputs of its own: its first item with a picture stands for it.
        const image =
          firstImage(step.outputs) ||
          firstImage((step.items || []).find((i) => firstImage(i.outputs))?.outputs);
        const failing = step.nodeId === failingNode;
        const attempts = attemptCount(step);
        const summary = `${step.nodeId}, ${step.type}, ${step.status}, ${stepDuration(step, now, runLive)}${attempts > 1 ? `, ${attempts} attempts` : ""}`;
        return html`<li key=${step.nodeId} data-node-id=${step.nodeId} data-status=${step.status}
          class=${`gantt-row${failing ? " failing" : ""}${selected === step.nodeId ? " selected" : ""}`}>
          <button type="button" class="gantt-label" onClick=${() => onSelect(step.nodeId)}
            aria-label=${`${summary}${failing ? ", the run failed here" : ""}. Show the step.`}
            aria-pressed=${selected === step.nodeId ? "true" : "false"}>
            <span class="node-id">${failing ? html`<span class="fail-mark" aria-hidden="true">✕ </span>` : null}${step.nodeId}</span>
            <span class="node-type">${step.type}</span>
          </button>
          <span class="gantt-thumb">
            ${image
              ? html`<img src=${stableUrl(image)} alt=${`${step.nodeId} output`} width="40" height="40" loading="lazy" />`
              : null}
          </span>
          <div class="gantt-track" title=${summary}>
            <svg viewBox=${`0 0 ${W} 20`} preserveAspectRatio="none" aria-hidden="true" focusable="false">
              ${segments(step, scale, now, runLive).map(
                (m) => html`<rect class=${`seg ${m.kind}`} x=${m.x} width=${m.w}
                  y=${m.kind === "queued" || m.kind === "retry-wait" ? 8 : m.kind === "progress" ? 13 : 2}
                  height=${m.kind === "queued" || m.kind === "retry-wait" ? 4 : m.kind === "progress" ? 5 : 16}
                  vector-effect="non-scaling-stroke"><title>${m.title}</title></rect>`,
              )}
            </svg>
          </div>
          <span class="gantt-time">
            ${stepDuration(step, now, runLive)}
            ${attempts > 1 ? html`<span class="tag">${attempts} attempts</span>` : null}
            ${step.itemsTotal ? html`<span class="tag">${step.itemsDone || 0}/${step.itemsTotal}</span>` : null}
            ${step.childRunId
              ? html`<a class="tag link" href=${href(`/runs/${step.childRunId}`)} title=${step.childRunId}>child ${shortId(step.childRunId)}</a>`
              : null}
            ${step.reusedFrom
              ? html`<a class="tag link" href=${href(`/runs/${step.reusedFrom}`)} title=${`output reused from ${step.reusedFrom}`}>reused</a>`
              : null}
          </span>
        </li>`;
      })}
    </ol>
    ${compact ? null : html`<p class="gantt-legend muted">
      <span class="key bar status-succeeded"></span> ran
      <span class="key attempt-failed"></span> failed attempt
      <span class="key retry-wait"></span> wait before a retry
      <span class="key queued"></span> queued
      <span class="key waitnode"></span> wait node
      <span class="key progress"></span> map progress
    </p>`}
  </div>`;
}
