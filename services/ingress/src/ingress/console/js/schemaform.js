// A workflow's input schema (JSON Schema 2020-12) as a form: strings, numbers, booleans,
// enums, nested objects, and file inputs (a string or list of strings whose pattern asks for
// an `s3://` reference) uploaded through POST /v1/assets. Whatever the form cannot draw is a
// JSON field, and the whole input can be edited as JSON. The server validates either way;
// its 422 problem's paths (`/inputs/…`) are shown at their fields.

import { useState } from "preact/hooks";
import { api } from "./api.js";
import { formatBytes, html, pretty } from "./util.js";

const isAsset = (s) => s?.type === "string" && /^\^?s3:/.test(s.pattern || "");
const isAssetList = (s) => s?.type === "array" && isAsset(s.items);

function typeOf(schema) {
  if (!schema) return "json";
  if (Array.isArray(schema.enum)) return "enum";
  if (isAsset(schema)) return "asset";
  if (isAssetList(schema)) return "assets";
  const t = Array.isArray(schema.type) ? schema.type.find((x) => x !== "null") : schema.type;
  if (t === "object" && schema.properties) return "object";
  if (["string", "integer", "number", "boolean"].includes(t)) return t;
  return "json";
}

export function initialValue(schema) {
  if (!schema || typeof schema !== "object") return {};
  if (schema.default !== undefined) return structuredClone(schema.default);
  if (typeOf(schema) === "object") {
    const out = {};
    for (const [name, sub] of Object.entries(schema.properties)) {
      const v = initialValue(sub);
      if (v !== undefined && !(typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length)) out[name] = v;
    }
    return out;
  }
  return undefined;
}

// A copy of `obj` with `path` set to `value`; undefined removes it, and objects left empty
// are removed too (an optional group left blank is not sent).
function setAt(obj, path, value) {
  const [head, ...rest] = path;
  const copy = { ...(obj || {}) };
  const next = rest.length ? setAt(copy[head], rest, value) : value;
  if (next === undefined || (rest.length && !Object.keys(next).length)) delete copy[head];
  else copy[head] = next;
  return copy;
}

// Required fields first (what must be filled comes first), then the others as written.
const ordered = (schema) => {
  const required = new Set(schema.required || []);
  const entries = Object.entries(schema.properties || {});
  return [...entries.filter(([n]) => required.has(n)), ...entries.filter(([n]) => !required.has(n))];
};

const getAt = (obj, path) => path.reduce((o, k) => (o == null ? undefined : o[k]), obj);

async function upload(file) {
  return api("/v1/assets", {
    method: "POST",
    raw: file,
    headers: { "Content-Type": file.type || "application/octet-stream" },
  });
}

function AssetInput({ id, multiple, value, onChange, describedBy }) {
  const [state, setState] = useState({ busy: false, error: null, uploaded: [] });
  const refs = multiple ? value || [] : value ? [value] : [];
  async function chosen(event) {
    const files = [...event.currentTarget.files];
    if (!files.length) return;
    setState({ ...state, busy: true, error: null });
    try {
      const done = [];
      for (const file of files) done.push(await upload(file));
      const newRefs = done.map((d) => d.ref);
      onChange(multiple ? [...refs, ...newRefs] : newRefs[0]);
      setState({ busy: false, error: null, uploaded: [...state.uploaded, ...done] });
    } catch (error) {
      setState({ ...state, busy: false, error });
    }
  }
  return html`<div class="asset-input">
    <input id=${id} type="file" multiple=${multiple} onChange=${chosen} aria-describedby=${describedBy}
      disabled=${state.busy} />
    ${state.busy ? html`<p class="loading" role="status"><span class="spinner" aria-hidden="true"></span>Uploading…</p>` : null}
    ${state.error ? html`<p class="field-error" role="alert">${state.error.message}</p>` : null}
    ${refs.length
      ? html`<ul class="refs">${refs.map((ref) => {
          const u = state.uploaded.find((d) => d.ref === ref);
          return html`<li>
            ${u && u.contentType.startsWith("image/") ? html`<img src=${u.url} alt="" width="32" height="32" class="thumb" />` : null}
            <code>${ref}</code>${u ? html` <span class="muted">${formatBytes(u.bytes)}</span>` : null}
            <button type="button" class="quiet" aria-label=${`Remove ${ref}`}
              onClick=${() => onChange(multiple ? refs.filter((r) => r !== ref) : undefined)}>Remove</button>
          </li>`;
        })}</ul>`
      : null}
  </div>`;
}

function JsonInput({ id, value, onChange, describedBy }) {
  const [text, setText] = useState(value === undefined ? "" : pretty(value));
  const [bad, setBad] = useState(false);
  return html`<textarea id=${id} rows="3" spellcheck="false" value=${text} aria-describedby=${describedBy}
    aria-invalid=${bad ? "true" : undefined}
    onInput=${(e) => {
      const t = e.currentTarget.value;
      setText(t);
      if (!t.trim()) {
        setBad(false);
        onChange(undefined);
        return;
      }
      try {
        onChange(JSON.parse(t));
        setBad(false);
      } catch {
        setBad(true);
      }
    }}></textarea>${bad ? html`<p class="field-error">Not valid JSON yet.</p>` : null}`;
}

function Field({ name, schema, path, required, value, onChange, errors }) {
  const id = `in-${path.join("-")}`;
  const kind = typeOf(schema);
  const pointer = `/inputs/${path.join("/")}`;
  const error = errors?.[pointer];
  const hintId = schema?.description ? `${id}-hint` : undefined;
  const errorId = error ? `${id}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ") || undefined;
  const set = (v) => onChange(path, v);
  const title = schema?.title || name;

  if (kind === "object") {
    return html`<fieldset class="group">
      <legend>${title}${required ? html`<span class="req" aria-hidden="true"> *</span>` : null}</legend>
      ${schema.description ? html`<p class="hint" id=${hintId}>${schema.description}</p>` : null}
      ${ordered(schema).map(
        ([sub, s]) => html`<${Field} name=${sub} schema=${s} path=${[...path, sub]}
          required=${(schema.required || []).includes(sub)} value=${value?.[sub]} onChange=${onChange} errors=${errors} />`,
      )}
    </fieldset>`;
  }
  let control;
  if (kind === "boolean") {
    return html`<div class="field check">
      <input id=${id} type="checkbox" checked=${Boolean(value)} onChange=${(e) => set(e.currentTarget.checked)}
        aria-describedby=${describedBy} />
      <label for=${id}>${title}</label>
      ${hintId ? html`<p class="hint" id=${hintId}>${schema.description}</p>` : null}
      ${error ? html`<p class="field-error" id=${errorId}>${error}</p>` : null}
    </div>`;
  }
  if (kind === "enum") {
    control = html`<select id=${id} value=${value === undefined ? "" : JSON.stringify(value)}
      onChange=${(e) => set(e.currentTarget.value === "" ? undefined : JSON.parse(e.currentTarget.value))}
      aria-describedby=${describedBy} required=${required}>
      ${required && value !== undefined ? null : html`<option value="">–</option>`}
      ${schema.enum.map((v) => html`<option value=${JSON.stringify(v)}>${String(v)}</option>`)}
    </select>`;
  } else if (kind === "asset" || kind === "assets") {
    control = html`<${AssetInput} id=${id} multiple=${kind === "assets"} value=${value} onChange=${set} describedBy=${describedBy} />`;
  } else if (kind === "integer" || kind === "number") {
    control = html`<input id=${id} type="number" step=${kind === "integer" ? 1 : "any"}
      min=${schema.minimum} max=${schema.maximum} value=${value ?? ""} required=${required}
      aria-describedby=${describedBy} aria-invalid=${error ? "true" : undefined}
      onInput=${(e) => set(e.currentTarget.value === "" ? undefined : Number(e.currentTarget.value))} />`;
  } else if (kind === "string") {
    const long = !schema.maxLength || schema.maxLength > 120;
    const common = {
      id,
      value: value ?? "",
      required,
      minlength: schema.minLength,
      maxlength: schema.maxLength,
      "aria-describedby": describedBy,
      "aria-invalid": error ? "true" : undefined,
      onInput: (e) => set(e.currentTarget.value === "" ? undefined : e.currentTarget.value),
    };
    control = long ? html`<textarea rows="3" ...${common}></textarea>` : html`<input type="text" ...${common} />`;
  } else {
    control = html`<${JsonInput} id=${id} value=${value} onChange=${set} describedBy=${describedBy} />`;
  }
  return html`<div class="field">
    <label for=${id}>${title}${required ? html`<span class="req" aria-hidden="true"> *</span><span class="sr-only"> (required)</span>` : null}
      ${kind === "json" ? html` <span class="muted">(JSON)</span>` : null}</label>
    ${control}
    ${hintId ? html`<p class="hint" id=${hintId}>${schema.description}</p>` : null}
    ${error ? html`<p class="field-error" id=${errorId}>${error}</p>` : null}
  </div>`;
}

export function SchemaForm({ schema, value, onChange, errors }) {
  const drawable = typeOf(schema) === "object";
  const [asJson, setAsJson] = useState(false);
  const [text, setText] = useState(() => (drawable ? "" : pretty(value)));
  const [bad, setBad] = useState(null);

  function toggle() {
    if (!asJson) {
      setText(pretty(value));
      setAsJson(true);
      return;
    }
    try {
      onChange(JSON.parse(text || "{}"));
      setBad(null);
      setAsJson(false);
    } catch (e) {
      setBad(e.message);
    }
  }
  const editJson = (e) => {
    const t = e.currentTarget.value;
    setText(t);
    try {
      onChange(JSON.parse(t || "{}"));
      setBad(null);
    } catch (err) {
      setBad(err.message);
    }
  };

  return html`<div class="schema-form">
    ${drawable
      ? html`<button type="button" class="quiet small" onClick=${toggle} aria-pressed=${asJson ? "true" : "false"}>
          ${asJson ? "Edit as a form" : "Edit as JSON"}</button>`
      : null}
    ${asJson || !drawable
      ? html`<label for="inputs-json">Inputs (JSON)</label>
          <textarea id="inputs-json" rows="10" spellcheck="false" value=${text}
            onInput=${editJson} aria-invalid=${bad ? "true" : undefined}></textarea>
          ${bad ? html`<p class="field-error">${bad}</p>` : null}`
      : ordered(schema).map(
          ([name, s]) => html`<${Field} key=${name} name=${name} schema=${s} path=${[name]}
            required=${(schema.required || []).includes(name)} value=${getAt(value, [name])}
            onChange=${(path, v) => onChange(setAt(value, path, v))} errors=${errors} />`,
        )}
  </div>`;
}
