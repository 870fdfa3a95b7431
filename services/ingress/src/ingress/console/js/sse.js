// A small Server-Sent Events parser (the WHATWG "event stream interpretation"): fields
// `event`, `data` (several lines joined by "\n") and `id`; comments (":") ignored; an event is
// dispatched at a blank line. Lines may end in CRLF, LF or CR, and a chunk may end between
// the CR and the LF of one line ending.

export function sseParser(onEvent) {
  let buffer = "";
  let data = [];
  let event = "";
  let id = "";

  function line(text) {
    if (text === "") {
      if (data.length) onEvent({ event: event || "message", data: data.join("\n"), id });
      data = [];
      event = "";
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
    else if (field === "id") id = value;
  }

  return {
    push(chunk) {
      buffer += chunk;
      // A trailing CR may be the first half of a CRLF: keep it for the next chunk.
      const complete = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
      const lines = buffer.slice(0, complete).split(/\r\n|\r|\n/);
      buffer = lines.pop() + buffer.slice(complete);
      lines.forEach(line);
    },
    end() {
      if (buffer) line(buffer.replace(/\r$/, ""));
      buffer = "";
    },
  };
}
