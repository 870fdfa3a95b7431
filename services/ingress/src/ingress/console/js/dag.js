// A drawing of a definition's DAG: edges come from the `{{ nodes.<id>… }}` references in each
// node's params (as the orchestrator reads them), `inputs` and `outputs` are drawn as the
// ends. A simple layered layout: a node's column is one past its deepest dependency, rows
// within a column ordered by the mean row of the nodes feeding it (two sweeps), which is
// enough for the tens of nodes a canvas has. `map` and `workflow.run` nodes are marked.

import { href } from "./router.js";
import { html, nodeRefs, usesInputs } from "./util.js";

const NODE_W = 150;
const NODE_H = 52;
const GAP_X = 48;
const GAP_Y = 22;
const PAD = 12;

export function graphOf(definition) {
  const nodes = definition.nodes || [];
  const known = new Set(nodes.map((n) => n.id));
  const edges = [];
  for (const node of nodes) {
    for (const from of nodeRefs(node.params)) if (known.has(from)) edges.push([from, node.id]);
    if (usesInputs(node.params)) edges.push(["inputs", node.id]);
  }
  for (const value of Object.values(definition.outputs || {})) {
    for (const from of nodeRefs(value)) if (known.has(from)) edges.push([from, "outputs"]);
  }
  const all = [
    ...(edges.some(([f]) => f === "inputs") ? [{ id: "inputs", type: "inputs", pseudo: true }] : []),
    ...nodes,
    ...(Object.keys(definition.outputs || {}).length ? [{ id: "outputs", type: "outputs", pseudo: true }] : []),
  ];
  return { nodes: all, edges };
}

export function layout({ nodes, edges }) {
  const parents = new Map(nodes.map((n) => [n.id, []]));
  for (const [from, to] of edges) parents.get(to)?.push(from);
  const layer = new Map();
  const depth = (id, seen = new Set()) => {
    if (layer.has(id)) return layer.get(id);
    if (seen.has(id)) return 0; // a cycle is refused at registration; never loop on one
    seen.add(id);
    const ps = parents.get(id) || [];
    const d = ps.length ? 1 + Math.max(...ps.map((p) => depth(p, seen))) : 0;
    layer.set(id, d);
    return d;
  };
  nodes.forEach((n) => depth(n.id));
  // Outputs in a column of their own after every node.
  if (layer.has("outputs")) {
    const others = [...layer].filter(([id]) => id !== "outputs").map(([, d]) => d);
    layer.set("outputs", Math.max(-1, ...others) + 1);
  }
  const columns = [];
  for (const n of nodes) (columns[layer.get(n.id)] ||= []).push(n.id);
  const row = new Map();
  columns.forEach((col) => col.forEach((id, i) => row.set(id, i)));
  for (let sweep = 0; sweep < 2; sweep++) {
    for (const col of columns) {
      if (!col) continue;
      const mean = (id) => {
        const ps = parents.get(id) || [];
        return ps.length ? ps.reduce((s, p) => s + row.get(p), 0) / ps.length : row.get(id);
      };
      col.sort((a, b) => mean(a) - mean(b));
      col.forEach((id, i) => row.set(id, i));
    }
  }
  const tallest = Math.max(...columns.map((c) => c?.length || 0));
  const pos = new Map();
  columns.forEach((col, c) => {
    const offset = ((tallest - col.length) * (NODE_H + GAP_Y)) / 2;
    col.forEach((id, r) => pos.set(id, { x: PAD + c * (NODE_W + GAP_X), y: PAD + offset + r * (NODE_H + GAP_Y) }));
  });
  return {
    pos,
    width: PAD * 2 + columns.length * NODE_W + (columns.length - 1) * GAP_X,
    height: PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y,
  };
}

const fit = (text, n = 19) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

function label(node) {
  if (node.pseudo) return node.id;
  if (node.type === "map") return `map × ${node.params?.node?.type || "?"}`;
  if (node.type === "workflow.run") return `→ ${node.params?.workflowId || "?"}`;
  return node.type;
}

export function Dag({ definition, statusOf }) {
  const graph = graphOf(definition);
  const { pos, width, height } = layout(graph);
  const described = graph.edges.map(([f, t]) => `${f} → ${t}`).join(", ");
  return html`<figure class="dag">
    <div class="dag-scroll">
      <svg viewBox=${`0 0 ${width} ${height}`} role="img"
        style=${{ maxWidth: `${width}px`, minWidth: `${Math.min(width, 520)}px` }}
        aria-label=${`Graph of ${graph.nodes.length} nodes: ${described}`}>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0 0 L10 5 L0 10 z" class="dag-arrow" />
          </marker>
        </defs>
        ${graph.edges.map(([from, to]) => {
          const a = pos.get(from);
          const b = pos.get(to);
          if (!a || !b) return null;
          const x1 = a.x + NODE_W;
          const y1 = a.y + NODE_H / 2;
          const x2 = b.x - 2;
          const y2 = b.y + NODE_H / 2;
          const mid = (x1 + x2) / 2;
          return html`<path class="dag-edge" d=${`M${x1} ${y1} C${mid} ${y1} ${mid} ${y2} ${x2} ${y2}`} marker-end="url(#arrow)" />`;
        })}
        ${graph.nodes.map((node) => {
          const p = pos.get(node.id);
          const kind = node.pseudo ? "pseudo" : node.type === "map" ? "map" : node.type === "workflow.run" ? "chain" : "plain";
          const status = statusOf?.(node.id);
          const box = html`<g class=${`dag-node ${kind}${status ? ` status-${status}` : ""}`} data-node-id=${node.id}
            transform=${`translate(${p.x} ${p.y})`}>
            ${kind === "map" ? html`<rect class="stack" x="6" y="-6" width=${NODE_W} height=${NODE_H} rx="8" />` : null}
            <rect width=${NODE_W} height=${NODE_H} rx="8" />
            <text x="12" y="21" class="dag-id">${fit(node.id)}</text>
            <text x="12" y="39" class="dag-type">${fit(label(node), 21)}</text>
            <title>${node.id}: ${node.type}</title>
          </g>`;
          return kind === "chain" && node.params?.workflowId
            ? html`<a href=${href(`/workflows/${node.params.workflowId}`)} aria-label=${`${node.id} runs workflow ${node.params.workflowId}`}>${box}</a>`
            : box;
        })}
      </svg>
    </div>
    <figcaption class="muted">
      <span class="key map"></span> map (one node per item)
      <span class="key chain"></span> workflow.run (a child run; click to open its workflow)
    </figcaption>
  </figure>`;
}
