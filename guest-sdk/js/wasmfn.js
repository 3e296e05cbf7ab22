// wasmfn: HTTP functions in JavaScript for the wasmfn host.
//
// One declaration per operation gives the host its route, the request
// validation (422 before your code runs) and the entry in the unified
// OpenAPI document:
//
//   import { App, HTTPError } from "wasmfn";
//
//   const app = new App({ title: "Greeter" });
//   const Greeting = app.schema("Greeting", {
//     type: "object",
//     properties: { message: { type: "string" } },
//     required: ["message"],
//   });
//
//   app.get("/{name}", {
//     summary: "Greets someone by name.",
//     params: { name: { type: "string", minLength: 1, maxLength: 40 } },
//     response: Greeting,
//   }, (req) => ({ message: `Hello, ${req.params.name}!` }));
//
//   export default app;
//
// `wasmfn build` turns the folder's `index.js` into a component: it serves
// the default export for `wasmfn:function/handler` (each request in one
// call, its response whole), for `wasi:http/incoming-handler` (through the
// engine's fetch event), and exports its `describe`. The app is built once
// per instance: when the host reuses instances (`instance_reuse`), its
// module state lives on between requests, as in a Node.js server.

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const PARAM = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

const ERROR_SCHEMA = {
  type: "object",
  properties: {
    error: {
      type: "object",
      properties: { code: { type: "string" }, message: { type: "string" }, details: {} },
      required: ["code", "message"],
    },
  },
  required: ["error"],
};

const CODES = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  422: "validation_error",
  429: "too_many_requests",
  500: "internal",
  503: "service_unavailable",
};

/** Throw to answer with an error: `{"error": {"code", "message"}}`. */
export class HTTPError extends Error {
  constructor(status, message, { code, details, headers } = {}) {
    super(message);
    this.status = status;
    this.code = code ?? CODES[status] ?? `http_${status}`;
    this.details = details;
    this.headers = headers ?? {};
  }

  toResponse() {
    const error = { code: this.code, message: this.message };
    if (this.details !== undefined) error.details = this.details;
    return json({ error }, { status: this.status, headers: this.headers });
  }
}

/** A JSON response. */
export function json(value, { status = 200, headers = {} } = {}) {
  const h = new Headers(headers);
  if (!h.has("content-type")) h.set("content-type", "application/json");
  return new Response(JSON.stringify(value), { status, headers: h });
}

/** A plain-text response. */
export function text(value, { status = 200, headers = {} } = {}) {
  const h = new Headers(headers);
  if (!h.has("content-type")) h.set("content-type", "text/plain; charset=utf-8");
  return new Response(String(value), { status, headers: h });
}

function coerce(schema, raw, loc) {
  const type = Array.isArray(schema?.type) ? schema.type.find((t) => t !== "null") : schema?.type;
  if (type === "integer" || type === "number") {
    const n = Number(raw);
    if (raw.trim() === "" || Number.isNaN(n) || (type === "integer" && !Number.isInteger(n))) {
      throw new ValidationError(loc, `\`${raw}\` is not a valid ${type}`);
    }
    return n;
  }
  if (type === "boolean") {
    if (raw === "true" || raw === "1") return true;
    if (raw === "false" || raw === "0") return false;
    throw new ValidationError(loc, `\`${raw}\` is not a valid boolean`);
  }
  return raw;
}

class ValidationError extends Error {
  constructor(loc, msg) {
    super(msg);
    this.loc = loc;
  }
}

/** One request: the web `Request` plus what the host matched. */
export class FnRequest {
  constructor(request) {
    this.raw = request;
    this.method = request.method.toUpperCase();
    const url = new URL(request.url, "http://localhost");
    this.path = url.pathname;
    this.url = url;
    this.headers = request.headers;
    this.params = {};
    for (const [k, v] of request.headers.entries()) {
      if (k.startsWith("x-fn-param-")) this.params[k.slice("x-fn-param-".length)] = v;
    }
    this.rawParams = { ...this.params };
    this.query = {};
    for (const [k, v] of url.searchParams.entries()) {
      if (!(k in this.query)) this.query[k] = v;
    }
    this.data = undefined;
  }

  /** The route pattern the host matched, e.g. `/users/{id}`. */
  get route() {
    return this.headers.get("x-fn-route");
  }

  /** The operation path as this function declared it, e.g. `/{id}`. */
  get declaredPath() {
    return this.headers.get("x-fn-path");
  }

  get requestId() {
    return this.headers.get("x-request-id");
  }

  /** Every value of a repeated query parameter. */
  queryAll(name) {
    return this.url.searchParams.getAll(name);
  }

  text() {
    return this.raw.text();
  }

  arrayBuffer() {
    return this.raw.arrayBuffer();
  }

  /** The body parsed as JSON; invalid JSON is a 400. */
  async json() {
    const body = await this.raw.text();
    try {
      return JSON.parse(body === "" ? "null" : body);
    } catch (e) {
      throw new HTTPError(400, `the body is not valid JSON: ${e.message}`, { code: "invalid_json" });
    }
  }
}

function responseDoc(spec, error) {
  let description;
  let schema = spec;
  if (typeof spec === "string") {
    description = spec;
    schema = undefined;
  } else if (spec && typeof spec === "object" && "description" in spec && ("schema" in spec || !("type" in spec || "$ref" in spec))) {
    description = spec.description;
    schema = spec.schema;
  }
  const doc = { description: description ?? (error ? "Error." : "Success.") };
  if (schema === undefined && error) {
    doc.content = { "application/json": { schema: { $ref: "#/components/schemas/Error" } } };
  } else if (schema !== undefined) {
    doc.content = { "application/json": { schema } };
  }
  return doc;
}

class Operation {
  constructor(method, path, options, handler) {
    if (!METHODS.includes(method)) {
      throw new Error(`unknown HTTP method \`${method}\`; use one of ${METHODS.join(", ")}`);
    }
    if (!path.startsWith("/")) throw new Error(`operation path \`${path}\` must start with \`/\``);
    if (typeof handler !== "function") throw new Error(`\`${method.toUpperCase()} ${path}\` needs a handler function`);
    this.method = method;
    this.path = path;
    this.options = options;
    this.handler = handler;
    this.pathParams = [...path.matchAll(PARAM)].map((m) => m[1]);
    const pattern = path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(PARAM, "[^/]+");
    this.regex = new RegExp(`^${pattern}$`);
  }

  describe(app) {
    const o = this.options;
    const op = {};
    const operationId = o.operationId ?? (this.handler.name || undefined);
    if (operationId) op.operationId = operationId;
    if (o.summary) op.summary = o.summary;
    if (o.description) op.description = o.description;
    if (o.tags) op.tags = o.tags;
    if (o.deprecated) op.deprecated = true;
    const parameters = [];
    for (const name of this.pathParams) {
      parameters.push({ name, in: "path", required: true, schema: o.params?.[name] ?? { type: "string" } });
    }
    for (const [name, schema] of Object.entries(o.query ?? {})) {
      const required = schema.required === true;
      const { required: _, ...rest } = schema;
      parameters.push({ name, in: "query", required, schema: rest });
    }
    if (parameters.length) op.parameters = parameters;
    if (o.body !== undefined) {
      op.requestBody = { required: true, content: { [o.contentType ?? "application/json"]: { schema: o.body } } };
    }
    const responses = {};
    if (o.response !== undefined) responses[String(o.status ?? 200)] = responseDoc(o.response, false);
    for (const [status, spec] of Object.entries(o.responses ?? {})) {
      const error = Number(status) >= 400;
      if (error && (typeof spec === "string" || spec?.schema === undefined)) app._schemas.Error ??= ERROR_SCHEMA;
      responses[status] = responseDoc(spec, error);
    }
    if (Object.keys(responses).length === 0) responses.default = { description: "Response." };
    op.responses = responses;
    return op;
  }
}

async function toResponse(result, op) {
  const status = op.options.status ?? 200;
  if (result instanceof Response) return result;
  if (result === undefined || result === null) return new Response(null, { status: op.options.status ?? 204 });
  if (typeof result === "string") return text(result, { status });
  if (result instanceof Uint8Array || result instanceof ArrayBuffer) {
    return new Response(result, { status, headers: { "content-type": "application/octet-stream" } });
  }
  return json(result, { status });
}

/** A function's operations; paths are relative to where it is mounted. */
export class App {
  constructor({ title, description, version } = {}) {
    this.info = Object.fromEntries(Object.entries({ title, description, version }).filter(([, v]) => v));
    this.operations = [];
    this._schemas = {};
  }

  /** Names a schema for `components.schemas`; returns a `$ref` to it. */
  schema(name, schema) {
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`schema name \`${name}\` must match [A-Za-z0-9._-]+`);
    if (name in this._schemas) throw new Error(`schema \`${name}\` is declared twice`);
    this._schemas[name] = schema;
    return { $ref: `#/components/schemas/${name}` };
  }

  /**
   * Declares `handler(req)` for `method path`. Options: `summary`,
   * `description`, `tags`, `params` (path parameter schemas), `query`
   * (query parameter schemas; `required: true` makes one required), `body`
   * (JSON body schema; the parsed value is `req.data`), `response` and
   * `status` (the success response), `responses` (others:
   * `{404: "No such item"}`), `operationId`, `deprecated`.
   */
  route(method, path, options, handler) {
    if (typeof options === "function") [options, handler] = [{}, options];
    const op = new Operation(method.toLowerCase(), path, options ?? {}, handler);
    if (this.operations.some((o) => o.method === op.method && o.path === op.path)) {
      throw new Error(`\`${op.method.toUpperCase()} ${op.path}\` is declared twice`);
    }
    this.operations.push(op);
    return this;
  }

  get(path, options, handler) {
    return this.route("get", path, options, handler);
  }

  post(path, options, handler) {
    return this.route("post", path, options, handler);
  }

  put(path, options, handler) {
    return this.route("put", path, options, handler);
  }

  patch(path, options, handler) {
    return this.route("patch", path, options, handler);
  }

  delete(path, options, handler) {
    return this.route("delete", path, options, handler);
  }

  /** The OpenAPI fragment this app declares. */
  openapi() {
    const paths = {};
    for (const op of this.operations) {
      paths[op.path] ??= {};
      paths[op.path][op.method] = op.describe(this);
    }
    const fragment = { paths };
    if (Object.keys(this._schemas).length) fragment.components = { schemas: this._schemas };
    if (Object.keys(this.info).length) fragment.info = this.info;
    return fragment;
  }

  /** The fragment as the host's `describe` wants it: JSON text. */
  describe() {
    return JSON.stringify(this.openapi());
  }

  find(method, path, declaredPath) {
    let m = method.toLowerCase();
    if (m === "head") m = "get";
    const candidates = this.operations.filter((op) => op.method === m);
    if (declaredPath) return candidates.find((op) => op.path === declaredPath);
    return candidates
      .filter((op) => op.regex.test(path))
      .sort((a, b) => a.pathParams.length - b.pathParams.length)[0];
  }

  /** Runs the operation a web `Request` asks for; resolves to a `Response`. */
  async handle(request) {
    const req = new FnRequest(request);
    try {
      const op = this.find(req.method, req.path, req.declaredPath);
      if (!op) throw new HTTPError(404, `no operation for \`${req.method} ${req.path}\``);
      const o = op.options;
      for (const [name, raw] of Object.entries(req.rawParams)) {
        if (o.params?.[name]) req.params[name] = coerce(o.params[name], raw, ["path", name]);
      }
      for (const [name, schema] of Object.entries(o.query ?? {})) {
        if (name in req.query) req.query[name] = coerce(schema, req.query[name], ["query", name]);
        else if (schema.default !== undefined) req.query[name] = schema.default;
      }
      if (o.body !== undefined) {
        req.data = (o.contentType ?? "application/json") === "application/json" ? await req.json() : await req.text();
      }
      return await toResponse(await op.handler(req), op);
    } catch (e) {
      if (e instanceof HTTPError) return e.toResponse();
      if (e instanceof ValidationError) {
        return json(
          {
            error: {
              code: "validation_error",
              message: "the request is not valid",
              details: [{ loc: e.loc, msg: e.message, type: "value_error" }],
            },
          },
          { status: 422 },
        );
      }
      console.error(`${e?.stack ?? e}`);
      return json(
        { error: { code: "internal", message: `the function failed; see the log for request ${req.requestId ?? "?"}` } },
        { status: 500 },
      );
    }
  }
}

/** Header bytes as the string `Headers` holds (one character per byte). */
function byteString(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** Serves `app` for every request (what the generated entry module calls):
 * through the fetch event, and returns the `wasmfn:function/handler`
 * export, which takes each request in one call and answers whole. */
export function serve(app) {
  if (!(app instanceof App)) {
    throw new Error("the default export of index.js must be a wasmfn `App` (export default app)");
  }
  addEventListener("fetch", (event) => event.respondWith(app.handle(event.request)));
  return {
    async handle(method, pathWithQuery, headers, body) {
      const h = new Headers();
      for (const [name, value] of headers) h.append(name, byteString(value));
      const init = { method, headers: h };
      if (body.length > 0 && method !== "GET" && method !== "HEAD") init.body = body;
      const response = await app.handle(new Request(new URL(pathWithQuery, "http://localhost"), init));
      const out = [];
      for (const [name, value] of response.headers) out.push([name, Uint8Array.from(value, (c) => c.charCodeAt(0) & 0xff)]);
      return { status: response.status, headers: out, body: new Uint8Array(await response.arrayBuffer()) };
    },
  };
}
