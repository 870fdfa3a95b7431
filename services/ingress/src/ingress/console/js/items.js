// A map step's items as one compact grid of squares (hundreds fit on a phone screen), with
// counts per status, a filter, and one item's details at a time. The grid is a single tab
// stop; arrow keys, Home and End move within it (a roving tabindex), so 200 items are not
// 200 presses of Tab.

import { useRef, useState } from "preact/hooks";
import { OutputView } from "./outputs.js";
import { formatDuration, formatTime, html, ms } from "./util.js";

export function ItemGrid({ items }) {
  const [chosen, setChosen] = useState(null);
  const [focus, setFocus] = useState(0);
  const [only, setOnly] = useState("");
  const grid = useRef(null);
  const counts = {};
  for (const item of items) counts[item.status] = (counts[item.status] || 0) + 1;
  const shown = only ? items.filter((i) => i.status === only) : items;

  function move(event) {
    const buttons = [...grid.current.querySelectorAll("button")];
    if (!buttons.length) return;
    const columns = buttons.filter((b) => b.offsetTop === buttons[0].offsetTop).length || 1;
    const delta = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns }[event.key];
    let next = focus;
    if (delta) next = Math.min(buttons.length - 1, Math.max(0, focus + delta));
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = buttons.length - 1;
    else return;
    event.preventDefault();
    setFocus(next);
    buttons[next].focus();
  }

  const item = chosen != null ? items.find((i) => i.index === chosen) : null;
  return html`<div class="items">
    <p class="item-counts">
      ${items.length} items:
      ${Object.entries(counts).map(([status, n]) => html` <span class=${`badge status-${status}`}>${n} ${status}</span>`)}
      <label class="inline">Show
        <select value=${only} onChange=${(e) => { setOnly(e.currentTarget.value); setFocus(0); }}>
          <option value="">all</option>
          ${Object.keys(counts).map((s) => html`<option value=${s}>${s}</option>`)}
        </select>
      </label>
    </p>
    <div class="item-grid" ref=${grid} role="group" aria-label="Items; arrow keys move" onKeyDown=${move}>
      ${shown.map(
        (it, n) => html`<button type="button" key=${it.index} class=${`item status-${it.status}${chosen === it.index ? " chosen" : ""}`}
          tabindex=${n === focus ? 0 : -1} aria-pressed=${chosen === it.index ? "true" : "false"}
          aria-label=${`Item ${it.index}, ${it.status}`} title=${`#${it.index} ${it.status}`}
          onClick=${() => { setChosen(it.index); setFocus(n); }}></button>`,
      )}
    </div>
    ${item
      ? html`<div class="item-detail" aria-live="polite">
          <h5>Item ${item.index} <span class=${`badge status-${item.status}`}>${item.status}</span></h5>
          <p class="muted">attempt ${item.attempt ?? 1}
            ${item.startedAt ? ` · started ${formatTime(item.startedAt)}` : ""}
            ${item.startedAt && item.finishedAt ? ` · took ${formatDuration(ms(item.finishedAt) - ms(item.startedAt))}` : ""}</p>
          ${item.error ? html`<p class="note error"><code>${item.error.code}</code> ${item.error.message}</p>` : null}
          ${item.outputs?.length ? html`<div class="outputs">${item.outputs.map((o) => html`<${OutputView} output=${o} />`)}</div>` : null}
        </div>`
      : null}
  </div>`;
}
