// One output (of a run, a step or a map item): a picture shown with its size and a download
// link, a file as a link, text and JSON as they are.

import { JsonBlock, formatBytes, html, stableUrl } from "./util.js";

export function OutputView({ output, large = false }) {
  const title = output.index != null ? `${output.name}[${output.index}]` : output.name;
  if (output.type === "image" && output.url) {
    const dims = output.width && output.height ? `${output.width} × ${output.height} px` : "";
    return html`<figure class=${`output-image${large ? " large" : ""}`} data-output=${title}>
      <a href=${stableUrl(output)} target="_blank" rel="noopener noreferrer">
        <img src=${stableUrl(output)} alt=${`Output ${title}${dims ? `, ${dims}` : ""}`}
          width=${output.width} height=${output.height} decoding="async"
          loading=${large ? "eager" : "lazy"} />
      </a>
      <figcaption>
        <strong>${title}</strong>
        <span>${[dims, formatBytes(output.bytes), output.contentType].filter(Boolean).join(" · ")}</span>
        <a href=${stableUrl(output)} download=${`${title}`} target="_blank" rel="noopener noreferrer">Download<span class="sr-only"> ${title}</span></a>
      </figcaption>
    </figure>`;
  }
  if (output.url) {
    return html`<p class="output-file"><strong>${title}</strong>
      <a href=${stableUrl(output)} target="_blank" rel="noopener noreferrer">Download ${output.contentType || "file"}</a>
      ${output.bytes ? html` <span class="muted">${formatBytes(output.bytes)}</span>` : null}</p>`;
  }
  return html`<div class="output-value"><strong>${title}</strong>
    ${typeof output.value === "string"
      ? html`<pre class="text-value" tabindex="0">${output.value}</pre>`
      : html`<${JsonBlock} value=${output.value} label=${`Output ${title}`} />`}
  </div>`;
}
