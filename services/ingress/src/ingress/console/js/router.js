// Hash routing (`/console/#/runs/run_…`): the server serves one page, and a link to any view
// can be shared. Query parameters after the route hold filters, never the key.

import { useEffect, useState } from "preact/hooks";

export function parse(hash) {
  const [path, search = ""] = hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const query = Object.fromEntries(new URLSearchParams(search));
  if (parts[0] === "runs" && parts[1]) return { page: "run", id: parts[1], query };
  if (parts[0] === "workflows" && parts[1]) return { page: "workflow", id: parts[1], query };
  if (parts[0] === "workflows") return { page: "workflows", query };
  return { page: "runs", query };
}

export function href(path, query = {}) {
  const q = new URLSearchParams(
    Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== ""),
  ).toString();
  return `#${path}${q ? `?${q}` : ""}`;
}

export function route(hash, replace = false) {
  if (replace) {
    history.replaceState(null, "", hash);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = hash;
  }
}

export function useRoute() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return parse(hash);
}
