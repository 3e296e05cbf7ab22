// The `tally` example's handlers as a plain Node.js `http` server: the
// baseline a JavaScript author compares wasmfn with (benches/polyglot).
// The counting is the example's own module; the checks are the ones the
// host makes from the example's schemas (mode, body, text length).
//
//   node benches/native/tally_node.mjs PORT
import http from "node:http";
import { count, MODES } from "../../functions/tally/count.js";

const port = Number(process.argv[2] ?? 8080);

function send(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function invalid(res, message) {
  send(res, 422, { error: { code: "validation_error", message } });
}

const server = http.createServer((req, res) => {
  const path = req.url.split("?")[0];
  if (req.method === "GET" && (path === "/tally" || path === "/tally/")) return send(res, 200, MODES);
  const m = /^\/tally\/([^/]+)$/.exec(path);
  if (!m || req.method !== "POST") return send(res, 404, { error: { code: "not_found", message: "no route" } });
  const mode = m[1];
  if (!MODES.includes(mode)) return invalid(res, `mode must be one of ${MODES.join(", ")}`);
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size > 65536) {
      send(res, 413, { error: { code: "payload_too_large", message: "body over 65536 bytes" } });
      req.destroy();
    } else chunks.push(c);
  });
  req.on("end", () => {
    if (res.writableEnded) return;
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return invalid(res, "the body is not JSON");
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) return invalid(res, "the body must be an object");
    for (const k of Object.keys(body)) if (k !== "text" && k !== "ignore_case") return invalid(res, `unknown field ${k}`);
    const { text, ignore_case: ignoreCase = false } = body;
    if (typeof text !== "string") return invalid(res, "text must be a string");
    const length = [...text].length;
    if (length < 1 || length > 10000) return invalid(res, "text must have 1 to 10000 characters");
    if (typeof ignoreCase !== "boolean") return invalid(res, "ignore_case must be a boolean");
    send(res, 200, count(mode, text, ignoreCase));
  });
});

server.listen(port, "127.0.0.1");
