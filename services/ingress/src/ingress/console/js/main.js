import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, auth, apiUrl } from "./api.js";
import { html } from "./util.js";
import { route, useRoute } from "./router.js";
import { RunsPage } from "./runs.js";
import { RunPage } from "./run.js";
import { WorkflowsPage, WorkflowPage } from "./workflows.js";

function KeyForm({ refused }) {
  const [key, setKey] = useState("");
  const [state, setState] = useState({ busy: false, error: refused ? "refused" : null });
  const input = useRef(null);
  useEffect(() => input.current?.focus(), []);

  async function submit(event) {
    event.preventDefault();
    const value = key.trim();
    if (!value) return;
    setState({ busy: true, error: null });
    // Checked before it is kept, so a typo is said at once rather than on the next page.
    const res = await fetch(apiUrl("/v1/workflows"), {
      headers: { Authorization: `Bearer ${value}` },
    }).catch(() => null);
    if (res?.ok) {
      auth.set(value);
    } else {
      setState({ busy: false, error: res ? (res.status === 401 ? "refused" : "other") : "down" });
    }
  }

  const messages = {
    refused: "That key was refused. Check it and enter it again.",
    other: "The API answered with an error; try again.",
    down: "The API cannot be reached.",
  };
  return html`<main id="main" class="key-gate">
    <form class="card" onSubmit=${submit} aria-labelledby="key-title">
      <h1 id="key-title">Workflow console</h1>
      <p>Enter your API key. It is kept in this browser tab only (session storage) and sent
        in the <code>Authorization</code> header.</p>
      <label for="api-key">API key</label>
      <input id="api-key" ref=${input} type="password" autocomplete="off" spellcheck="false"
        placeholder="wfk_…" value=${key} onInput=${(e) => setKey(e.currentTarget.value)}
        aria-invalid=${state.error === "refused" ? "true" : undefined}
        aria-describedby=${state.error ? "key-error" : undefined} required />
      ${state.error ? html`<p id="key-error" class="field-error" role="alert">${messages[state.error]}</p>` : null}
      <button type="submit" class="primary" disabled=${state.busy}>
        ${state.busy ? "Checking…" : "Open the console"}
      </button>
    </form>
  </main>`;
}

function Shell({ children, current }) {
  const link = (href, label, name) =>
    html`<a href=${href} aria-current=${current === name ? "page" : undefined}>${label}</a>`;
  return html`
    <a class="skip" href="#main" onClick=${(e) => {
      e.preventDefault();
      document.getElementById("main")?.focus();
    }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/runs">Workflow console</a>
      <nav aria-label="Main">
        ${link("#/runs", "Runs", "runs")}
        ${link("#/workflows", "Workflows", "workflows")}
        <a href=${apiUrl("/docs")} target="_blank" rel="noopener">API reference</a>
      </nav>
      <button type="button" class="quiet" onClick=${() => auth.clear()}>Forget key</button>
    </header>
    <main id="main" tabindex="-1">${children}</main>`;
}

function App() {
  const [key, setKey] = useState(auth.key);
  const [refused, setRefused] = useState(false);
  const r = useRoute();
  useEffect(
    () =>
      auth.subscribe((k, wasRefused) => {
        setRefused(Boolean(wasRefused));
        setKey(k);
      }),
    [],
  );
  useEffect(() => {
    if (!location.hash || location.hash === "#" || location.hash === "#/") route("#/runs", true);
  }, []);
  useEffect(() => {
    const titles = { runs: "Runs", run: r.id, workflows: "Workflows", workflow: r.id };
    document.title = `${titles[r.page] || "Console"} · Workflow console`;
  }, [r.page, r.id]);

  if (!key) return html`<${KeyForm} refused=${refused} />`;
  let page;
  if (r.page === "run") page = html`<${RunPage} key=${r.id} runId=${r.id} />`;
  else if (r.page === "workflows") page = html`<${WorkflowsPage} />`;
  else if (r.page === "workflow")
    page = html`<${WorkflowPage} key=${`${r.id}@${r.query.version || ""}`} workflowId=${r.id}
      version=${r.query.version} />`;
  else page = html`<${RunsPage} query=${r.query} />`;
  const current = r.page === "run" || r.page === "runs" ? "runs" : "workflows";
  return html`<${Shell} current=${current}>${page}<//>`;
}

// Keep `api` reachable from the devtools console for a person debugging the page.
window.workflowConsole = { api };
const root = document.getElementById("app");
root.textContent = ""; // the "Loading the console…" shown until the modules arrived
render(html`<${App} />`, root);
