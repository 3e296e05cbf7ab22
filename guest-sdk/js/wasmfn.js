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
//
// Handlers read the manifest's `config` values with `config.get(key)` and
// the secrets it lists in `secrets` with `secret.get(name)`
// (`import { config, secret } from "wasmfn"`), and keep state in the
// key-value stores it lists in `key_value_stores` with `kv.open(name)`.

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
    return this.toAnswer().toResponse();
  }

  toAnswer() {
    const error = { code: this.code, message: this.message };
    if (this.details !== undefined) error.details = this.details;
    return jsonAnswer({ error }, this.status, this.headers);
  }
}

/** The configuration store failed (`wasi:config/store`'s `error`, which the
 * wasmfn host never answers), or there is none. Uncaught in a handler, it
 * answers 500 and its message goes to the function's log. */
export class ConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = "ConfigError";
  }
}

// The store `config` and `secret` read. The generated entry module imports
// `wasi:config/store@0.2.0-rc.1` and gives it here (`config.useStore`):
// this module imports no WIT, so that it runs in plain Node.js as well.
let configStore;

/** A plain object or `Map` of values seen as a store. */
function valuesStore(values) {
  const map = new Map(values instanceof Map ? values : Object.entries(values));
  return {
    get: (key) => (map.has(key) ? String(map.get(key)) : undefined),
    getAll: () => [...map].map(([k, v]) => [k, String(v)]),
  };
}

function readStore(what, call) {
  if (configStore === undefined) {
    throw new ConfigError(
      `cannot read ${what}: there is no configuration store yet; read it inside a handler ` +
        "(`wasmfn build` evaluates index.js while it builds the component), or, in a unit test, " +
        "give values with `config.useStore({...})`",
    );
  }
  try {
    return call(configStore);
  } catch (e) {
    // The store's `error` variant, as the generated bindings throw it.
    const p = e?.payload;
    if (p?.tag === "upstream" || p?.tag === "io") {
      throw new ConfigError(`cannot read ${what}: wasi:config/store failed: ${p.tag}: ${p.val}`);
    }
    throw e;
  }
}

/** The function's configuration: the `config` values of its manifest
 * (merged through the policy overlays above it) and the values of the
 * secrets it lists, read through `wasi:config/store`. Read them inside
 * handlers; a changed value loads the function again. */
export const config = Object.freeze({
  /** The value of `key` (a string), or `fallback` (default `undefined`)
   * when the function has no such key. */
  get(key, fallback = undefined) {
    return readStore(`config \`${key}\``, (store) => store.get(key)) ?? fallback;
  },

  /** Every key and value the function may read, its listed secrets
   * included, as a plain object. */
  getAll() {
    return Object.fromEntries(readStore("the config", (store) => store.getAll()));
  },

  /** Reads from `store` from now on: `wasi:config/store` (`{get, getAll}`,
   * what the generated entry module gives), or, in a unit test, a plain
   * object or `Map` of values; `null` forgets it. */
  useStore(store) {
    const wit = typeof store?.get === "function" && typeof store?.getAll === "function";
    configStore = store == null ? undefined : wit ? store : valuesStore(store);
  },
});

/** The function's secrets: values the operator sets (admin API,
 * `--secrets-dir`, `WASMFN_SECRET_<NAME>`), never its manifest. A function
 * reads only those its manifest lists in `secrets`; any other name is
 * absent, even when set. Do not log one or answer with it. */
export const secret = Object.freeze({
  /** The value of secret `name`, or `fallback` (default `undefined`) when
   * the manifest's `secrets` does not list it. */
  get(name, fallback = undefined) {
    return readStore(`secret \`${name}\``, (store) => store.get(name)) ?? fallback;
  },
});

/** A key-value operation failed. `store` is the store's name; `kind` is
 * `"access-denied"` (the manifest does not list the store in
 * `key_value_stores`), `"no-such-store"`, `"other"` (the host's reason: a
 * tenant quota, a value that is not a counter, a backend that is down) or
 * `"json"` (`getJson` of a value that is not JSON). Uncaught in a handler,
 * it answers 500 and its message goes to the function's log. */
export class KvError extends Error {
  constructor(store, kind, message) {
    super(message);
    this.name = "KvError";
    this.store = store;
    this.kind = kind;
  }
}

const I64_MAX = 2n ** 63n - 1n;

// The stores `kv` opens: `wasi:keyvalue` as the generated entry module
// gives it (`{open, increment, getMany, setMany, deleteMany}`), or, in a
// unit test, stores kept in `Map`s (`kv.useStores`).
let kvBackend;

/** The error of `wasi:keyvalue`, as the generated bindings throw it. */
function refusal(store, e) {
  const p = e?.payload ?? e;
  if (p?.tag === "access-denied") {
    return new KvError(store, p.tag, `key-value store \`${store}\`: access denied; list it in \`key_value_stores\` of fn.config.json`);
  }
  if (p?.tag === "no-such-store") return new KvError(store, p.tag, `key-value store \`${store}\`: no such store`);
  if (p?.tag === "other") return new KvError(store, p.tag, `key-value store \`${store}\`: ${p.val}`);
  return e;
}

/** `Map`s seen as `wasi:keyvalue`, with the host's semantics. */
function memoryBackend(stores) {
  const fail = (tag, val) => {
    throw { payload: { tag, val } };
  };
  const maps = new Map(stores instanceof Map ? stores : Object.entries(stores));
  const bucket = (map) => ({
    get: (key) => map.get(key),
    set: (key, value) => void map.set(key, value),
    delete: (key) => void map.delete(key),
    exists: (key) => map.has(key),
    listKeys: (cursor) => {
      const keys = [...map.keys()].sort();
      const start = Number(cursor ?? 0n);
      const end = start + 1000;
      return { keys: keys.slice(start, end), cursor: end < keys.length ? BigInt(end) : undefined };
    },
  });
  return {
    open(name) {
      const map = maps.get(name);
      if (!(map instanceof Map)) fail("access-denied");
      return { map, ...bucket(map) };
    },
    increment(b, key, delta) {
      if (delta > I64_MAX) fail("other", `the delta ${delta} is more than ${I64_MAX}`);
      const text = b.map.has(key) ? UTF8.decode(b.map.get(key)) : "0";
      if (!/^(0|[1-9][0-9]{0,18})$/.test(text) || BigInt(text) > I64_MAX) {
        fail("other", `\`${key}\` is not a counter (a decimal number from 0 to ${I64_MAX})`);
      }
      const n = BigInt(text) + delta;
      if (n > I64_MAX) fail("other", `incrementing \`${key}\` by ${delta} would pass ${I64_MAX}`);
      b.map.set(key, UTF8_OUT.encode(String(n)));
      return n;
    },
    getMany: (b, keys) => keys.map((k) => (b.map.has(k) ? [k, b.map.get(k)] : undefined)),
    setMany: (b, pairs) => pairs.forEach(([k, v]) => b.map.set(k, v)),
    deleteMany: (b, keys) => keys.forEach((k) => b.map.delete(k)),
  };
}

/** A value as bytes: a string (written as UTF-8), bytes or a buffer. */
function valueBytes(value) {
  if (typeof value === "string") return UTF8_OUT.encode(value);
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`a value is a string or bytes, not ${value === null ? "null" : typeof value}`);
}

/** One open key-value store (`wasi:keyvalue`'s `bucket`): `kv.open(name)`. */
export class Store {
  constructor(name, backend, bucket) {
    this.name = name;
    this._backend = backend;
    this._bucket = bucket;
  }

  /** Opens store `name` (1–64 of `a-z 0-9 _ -`); the manifest must list
   * it in `key_value_stores`, or this throws a `KvError` of kind
   * `"access-denied"`. */
  static open(name) {
    if (kvBackend === undefined) {
      throw new KvError(
        name,
        "other",
        `cannot open key-value store \`${name}\`: there are no key-value stores yet; open it inside a handler ` +
          "(`wasmfn build` evaluates index.js while it builds the component), or, in a unit test, " +
          "keep stores in memory with `kv.useStores({ default: new Map() })`",
      );
    }
    try {
      return new Store(name, kvBackend, kvBackend.open(name));
    } catch (e) {
      throw refusal(name, e);
    }
  }

  _do(call) {
    try {
      return call(this._bucket);
    } catch (e) {
      throw refusal(this.name, e);
    }
  }

  /** The value of `key` as bytes (`Uint8Array`), or `undefined` when it is
   * not set. An empty value is a value. */
  get(key) {
    return this._do((b) => b.get(key)) ?? undefined;
  }

  /** The value of `key` read as UTF-8 text, or `undefined`. */
  getText(key) {
    const bytes = this.get(key);
    return bytes === undefined ? undefined : UTF8.decode(bytes);
  }

  /** Sets `key` to `value`: a string (written as UTF-8) or bytes. */
  set(key, value) {
    const bytes = valueBytes(value);
    this._do((b) => b.set(key, bytes));
  }

  /** Removes `key`; nothing happens when it is not set. */
  delete(key) {
    this._do((b) => b.delete(key));
  }

  /** Whether `key` is set. */
  exists(key) {
    return this._do((b) => b.exists(key));
  }

  /** Every key of the store, in no particular order, read a page at a
   * time as the iteration goes. */
  *keys() {
    let cursor;
    do {
      const page = this._do((b) => b.listKeys(cursor));
      yield* page.keys;
      cursor = page.cursor;
    } while (cursor !== undefined && cursor !== null);
  }

  /** Adds `delta` (a whole number, 0 or more; default 1) to the counter at
   * `key` (created with `delta` when not set) and answers the new value, in
   * one indivisible step: a number (a `bigint` past
   * `Number.MAX_SAFE_INTEGER`). The counter is kept as decimal text. */
  increment(key, delta = 1) {
    if (!((typeof delta === "number" && Number.isSafeInteger(delta)) || typeof delta === "bigint") || delta < 0) {
      throw new RangeError(`increment by a whole number, 0 or more, not ${delta}`);
    }
    const n = this._do((b) => this._backend.increment(b, key, BigInt(delta)));
    return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  }

  /** The values of `keys` (bytes, or `undefined` for a key that is not
   * set), in their order, in one call to the host. */
  getMany(keys) {
    const list = [...keys];
    const pairs = this._do((b) => this._backend.getMany(b, list));
    return list.map((_, i) => pairs[i]?.[1] ?? undefined);
  }

  /** Sets every pair of `entries` (an object, a `Map` or `[key, value]`
   * pairs; values strings or bytes) in one call to the host; under a quota
   * all or nothing. */
  setMany(entries) {
    const list = Symbol.iterator in Object(entries) ? [...entries] : Object.entries(entries);
    const pairs = list.map(([k, v]) => [k, valueBytes(v)]);
    this._do((b) => this._backend.setMany(b, pairs));
  }

  /** Removes every key of `keys` that is set, in one call to the host. */
  deleteMany(keys) {
    const list = [...keys];
    this._do((b) => this._backend.deleteMany(b, list));
  }

  /** The value of `key` parsed as JSON, or `fallback` (default
   * `undefined`) when it is not set. */
  getJson(key, fallback = undefined) {
    const text = this.getText(key);
    if (text === undefined) return fallback;
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new KvError(this.name, "json", `key-value store \`${this.name}\`: the value of \`${key}\` is not JSON: ${e.message}`);
    }
  }

  /** Sets `key` to `value` written as JSON. */
  setJson(key, value) {
    this.set(key, JSON.stringify(value));
  }
}

/** Key-value stores: state that outlives the request, in the stores the
 * manifest lists in `key_value_stores` (`wasi:keyvalue`). Open them inside
 * handlers. */
export const kv = Object.freeze({
  /** Opens store `name` (see `Store.open`). */
  open(name) {
    return Store.open(name);
  },

  /** Opens stores from now on through `stores`: `wasi:keyvalue`
   * (`{open, increment, getMany, setMany, deleteMany}`, what the generated
   * entry module gives), or, in a unit test, an object or `Map` of store
   * names to `Map`s of keys and values (bytes), changed in place; `null`
   * forgets them. */
  useStores(stores) {
    kvBackend = stores == null ? undefined : typeof stores.open === "function" ? stores : memoryBackend(stores);
  },
});

/** What an operation answers, before it becomes a web `Response` (for the
 * fetch event) or bytes (for a request taken whole, without building one). */
class Answer {
  /** `headers`: `[name, value]` pairs; `body`: a string, bytes or null. */
  constructor(status, headers, body) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }

  toResponse() {
    return new Response(this.body, { status: this.status, headers: this.headers });
  }
}

function withContentType(headers, type) {
  const list = headers instanceof Headers || Array.isArray(headers) ? [...headers] : Object.entries(headers);
  const pairs = list.map(([k, v]) => [k.toLowerCase(), String(v)]);
  if (!pairs.some(([k]) => k === "content-type")) pairs.push(["content-type", type]);
  return pairs;
}

function jsonAnswer(value, status, headers = {}) {
  return new Answer(status, withContentType(headers, "application/json"), JSON.stringify(value));
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

/** One request: the web `Request` plus what the host matched. Taken
 * whole, `request` is `{method, url, headers}` and `body` its bytes; the web
 * `Request` (`raw`) is then made only if asked for. */
export class FnRequest {
  constructor(request, body) {
    this._request = request;
    this._body = body;
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

  /** The web `Request`. */
  get raw() {
    if (this._body !== undefined) {
      const { method, url, headers } = this._request;
      const body = this._body.length > 0 && method !== "GET" && method !== "HEAD" ? this._body : undefined;
      this._request = new Request(new URL(url, "http://localhost"), { method, headers: [...headers], body });
      this._body = undefined;
    }
    return this._request;
  }

  text() {
    if (this._body !== undefined) return Promise.resolve(UTF8.decode(this._body));
    return this.raw.text();
  }

  arrayBuffer() {
    if (this._body !== undefined) {
      const b = this._body;
      return Promise.resolve(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    }
    return this.raw.arrayBuffer();
  }

  /** The body parsed as JSON; invalid JSON is a 400. */
  async json() {
    const body = await this.text();
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

/** A handler's result as an `Answer`; a web `Response` it made is kept. */
function toAnswer(result, op) {
  const status = op.options.status ?? 200;
  if (result instanceof Response) return result;
  if (result === undefined || result === null) return new Answer(op.options.status ?? 204, [], null);
  if (typeof result === "string") return new Answer(status, [["content-type", "text/plain; charset=utf-8"]], result);
  if (result instanceof Uint8Array || result instanceof ArrayBuffer) {
    return new Answer(status, [["content-type", "application/octet-stream"]], result);
  }
  return jsonAnswer(result, status);
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
    const answer = await this.answer(new FnRequest(request));
    return answer instanceof Answer ? answer.toResponse() : answer;
  }

  /** Runs the operation `req` asks for; resolves to an `Answer`, or to the
   * web `Response` the handler made. */
  async answer(req) {
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
      return toAnswer(await op.handler(req), op);
    } catch (e) {
      if (e instanceof HTTPError) return e.toAnswer();
      if (e instanceof ValidationError) {
        return jsonAnswer(
          {
            error: {
              code: "validation_error",
              message: "the request is not valid",
              details: [{ loc: e.loc, msg: e.message, type: "value_error" }],
            },
          },
          422,
        );
      }
      console.error(`${e?.stack ?? e}`);
      return jsonAnswer(
        { error: { code: "internal", message: `the function failed; see the log for request ${req.requestId ?? "?"}` } },
        500,
      );
    }
  }
}

const UTF8 = new TextDecoder();
const UTF8_OUT = new TextEncoder();

/** A header value's bytes (one byte per character, as `Headers` holds them). */
function bytesOf(value) {
  const out = new Uint8Array(value.length);
  for (let i = 0; i < value.length; i++) out[i] = value.charCodeAt(i) & 0xff;
  return out;
}

/** The request headers of a request taken whole: the read side of a web
 * `Headers` (`get`, `has`, `entries`, `keys`, `values`, `forEach`,
 * iteration), made from the host's list without the cost of building a
 * `Headers` (a third of a small request's time in the engine). */
class HeaderView {
  constructor(list) {
    this._map = new Map();
    for (const [name, value] of list) {
      const k = name.toLowerCase();
      const v = String.fromCharCode.apply(null, value);
      const had = this._map.get(k);
      this._map.set(k, had === undefined ? v : `${had}, ${v}`);
    }
  }
  get(name) {
    return this._map.get(String(name).toLowerCase()) ?? null;
  }
  has(name) {
    return this._map.has(String(name).toLowerCase());
  }
  entries() {
    return this._map.entries();
  }
  keys() {
    return this._map.keys();
  }
  values() {
    return this._map.values();
  }
  forEach(fn, self) {
    for (const [k, v] of this._map) fn.call(self, v, k, this);
  }
  [Symbol.iterator]() {
    return this._map.entries();
  }
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
      const answer = await app.answer(new FnRequest({ method, url: pathWithQuery, headers: new HeaderView(headers) }, body));
      const out = [];
      for (const [name, value] of answer.headers) out.push([name, bytesOf(value)]);
      let bytes;
      if (!(answer instanceof Answer)) bytes = new Uint8Array(await answer.arrayBuffer());
      else if (answer.body === null) bytes = new Uint8Array(0);
      else if (typeof answer.body === "string") bytes = UTF8_OUT.encode(answer.body);
      else bytes = answer.body instanceof Uint8Array ? answer.body : new Uint8Array(answer.body);
      return { status: answer.status, headers: out, body: bytes };
    },
  };
}
