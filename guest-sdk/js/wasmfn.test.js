// Unit tests of the helper in plain Node.js (no component needed):
// `node --test` in this folder.
import { test } from "node:test";
import assert from "node:assert/strict";
import { App, ConfigError, HTTPError, KvError, Store, config, kv, secret, serve } from "./wasmfn.js";

function request(method, path, { params = {}, declared, body, headers = {} } = {}) {
  const h = new Headers(headers);
  for (const [k, v] of Object.entries(params)) h.set(`x-fn-param-${k}`, v);
  if (declared) h.set("x-fn-path", declared);
  return new Request(`http://fn.local${path}`, { method, headers: h, body });
}

function items() {
  const app = new App({ title: "Items" });
  const Item = app.schema("Item", {
    type: "object",
    properties: { id: { type: "integer" }, name: { type: "string", minLength: 1 } },
    required: ["id", "name"],
  });
  app.get("/", { summary: "Lists items.", query: { limit: { type: "integer", default: 10 } }, response: { type: "array", items: Item } },
    function list(req) { return [{ id: 1, name: "Lamp", limit: req.query.limit }]; });
  app.get("/{id}", { params: { id: { type: "integer", minimum: 1 } }, response: Item, responses: { 404: "No such item" } },
    function show(req) {
      if (req.params.id !== 1) throw new HTTPError(404, `no item ${req.params.id}`);
      return { id: req.params.id, name: "Lamp" };
    });
  app.post("/", { body: Item, response: Item, status: 201 }, async (req) => ({ ...req.data, echoed: true }));
  app.delete("/{id}", {}, () => null);
  app.get("/boom", {}, () => { throw new Error("kaput"); });
  return app;
}

test("describe declares operations, parameters, schemas and errors", () => {
  const doc = items().openapi();
  assert.deepEqual(doc.info, { title: "Items" });
  const show = doc.paths["/{id}"].get;
  assert.equal(show.operationId, "show");
  assert.deepEqual(show.parameters, [{ name: "id", in: "path", required: true, schema: { type: "integer", minimum: 1 } }]);
  assert.equal(show.responses["200"].content["application/json"].schema.$ref, "#/components/schemas/Item");
  assert.equal(show.responses["404"].description, "No such item");
  assert.equal(show.responses["404"].content["application/json"].schema.$ref, "#/components/schemas/Error");
  assert.ok(doc.components.schemas.Error && doc.components.schemas.Item);
  const list = doc.paths["/"].get;
  assert.deepEqual(list.parameters[0], { name: "limit", in: "query", required: false, schema: { type: "integer", default: 10 } });
  assert.equal(doc.paths["/"].post.requestBody.content["application/json"].schema.$ref, "#/components/schemas/Item");
  assert.ok(doc.paths["/"].post.responses["201"]);
  assert.deepEqual(doc.paths["/{id}"].delete.responses, { default: { description: "Response." } });
  assert.equal(JSON.parse(items().describe()).paths["/{id}"].get.operationId, "show");
});

test("dispatch by declared path, typed parameters, defaults, statuses", async () => {
  const app = items();
  let r = await app.handle(request("GET", "/items/1", { params: { id: "1" }, declared: "/{id}" }));
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { id: 1, name: "Lamp" });
  r = await app.handle(request("GET", "/items/7", { params: { id: "7" }, declared: "/{id}" }));
  assert.equal(r.status, 404);
  assert.deepEqual(await r.json(), { error: { code: "not_found", message: "no item 7" } });
  r = await app.handle(request("GET", "/items", { declared: "/" }));
  assert.equal((await r.json())[0].limit, 10);
  r = await app.handle(request("GET", "/items?limit=3", { declared: "/" }));
  assert.equal((await r.json())[0].limit, 3);
  r = await app.handle(request("HEAD", "/items", { declared: "/" }));
  assert.equal(r.status, 200);
  r = await app.handle(request("POST", "/items", { declared: "/", body: JSON.stringify({ id: 2, name: "Fan" }) }));
  assert.equal(r.status, 201);
  assert.deepEqual(await r.json(), { id: 2, name: "Fan", echoed: true });
  r = await app.handle(request("DELETE", "/items/1", { params: { id: "1" }, declared: "/{id}" }));
  assert.equal(r.status, 204);
});

test("bad input and failures answer in the error shape", async () => {
  const app = items();
  let r = await app.handle(request("GET", "/items/x", { params: { id: "x" }, declared: "/{id}" }));
  assert.equal(r.status, 422);
  assert.deepEqual((await r.json()).error.details[0].loc, ["path", "id"]);
  r = await app.handle(request("POST", "/items", { declared: "/", body: "{not json" }));
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.code, "invalid_json");
  r = await app.handle(request("PUT", "/items", {}));
  assert.equal(r.status, 404);
  const said = [];
  const error = console.error;
  console.error = (m) => said.push(m);
  try {
    r = await app.handle(request("GET", "/items/boom", { declared: "/boom", headers: { "x-request-id": "rid-1" } }));
  } finally {
    console.error = error;
  }
  assert.equal(r.status, 500);
  assert.match((await r.json()).error.message, /rid-1/);
  assert.match(said.join("\n"), /kaput/);
});

test("without x-fn-path, static paths win over parameters", async () => {
  const app = new App();
  app.get("/{name}", {}, () => "param");
  app.get("/all", {}, () => "static");
  assert.equal(await (await app.handle(request("GET", "/all"))).text(), "static");
  assert.equal(await (await app.handle(request("GET", "/ada"))).text(), "param");
});

test("declaration mistakes are refused at once", () => {
  const app = new App();
  app.get("/", {}, () => 1);
  assert.throws(() => app.get("/", {}, () => 2), /declared twice/);
  assert.throws(() => app.route("fetch", "/", {}, () => 1), /unknown HTTP method/);
  assert.throws(() => app.get("x", {}, () => 1), /must start with/);
  assert.throws(() => app.schema("A B", {}), /must match/);
});

test("the whole-request export answers without web Request or Response objects", async () => {
  globalThis.addEventListener ??= () => {};
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const handler = serve(items());
  const call = async (method, url, headers, body = "") => {
    const list = Object.entries(headers).map(([k, v]) => [k, enc.encode(v)]);
    const r = await handler.handle(method, url, list, enc.encode(body));
    return { status: r.status, headers: r.headers.map(([k, v]) => [k, dec.decode(v)]), body: dec.decode(r.body) };
  };
  const created = await call("POST", "/items", { "x-fn-path": "/" }, '{"id": 2, "name": "Desk"}');
  assert.equal(created.status, 201);
  assert.deepEqual(created.headers, [["content-type", "application/json"]]);
  assert.deepEqual(JSON.parse(created.body), { id: 2, name: "Desk", echoed: true });
  const missing = await call("GET", "/items/7", { "x-fn-path": "/{id}", "x-fn-param-id": "7" });
  assert.equal(missing.status, 404);
  assert.equal(JSON.parse(missing.body).error.message, "no item 7");
  assert.equal((await call("POST", "/items", { "x-fn-path": "/" }, "{")).status, 400);
  const listed = await call("GET", "/items?limit=3", { "x-fn-path": "/" });
  assert.deepEqual(JSON.parse(listed.body), [{ id: 1, name: "Lamp", limit: 3 }]);
  // Headers read as from a web `Headers`; the web Request is there for a
  // handler that asks for it.
  const app = new App();
  app.post("/", {}, async (req) =>
    `${req.headers.get("X-Thing")} ${req.headers.has("x-thing")} ${[...req.headers.keys()].length} ${req.raw.method} ${await req.raw.text()}`);
  const raw = await serve(app).handle("POST", "/", [["x-thing", enc.encode("a")], ["x-thing", enc.encode("b")]], enc.encode("hi"));
  assert.equal(dec.decode(raw.body), "a, b true 1 POST hi");
});

test("config and secret read the store the entry module gives, and say what failed", async (t) => {
  t.after(() => config.useStore(null));
  assert.throws(() => config.get("greeting"), (e) => e instanceof ConfigError && /config `greeting`.*useStore/.test(e.message));
  // What componentize-js binds for `wasi:config/store@0.2.0-rc.1`: `option`
  // as `undefined`, `list<tuple>` as arrays, and `error` thrown with a payload.
  const values = { greeting: "Hej", api_key: "k1" };
  config.useStore({ get: (key) => values[key], getAll: () => Object.entries(values) });
  assert.equal(config.get("greeting"), "Hej");
  assert.equal(config.get("nothing"), undefined);
  assert.equal(config.get("nothing", "Hello"), "Hello");
  assert.equal(secret.get("api_key"), "k1");
  assert.equal(secret.get("unlisted"), undefined);
  assert.deepEqual(config.getAll(), { greeting: "Hej", api_key: "k1" });
  const app = new App();
  app.get("/", {}, () => ({ message: `${config.get("greeting", "Hello")}, ${secret.get("api_key")}` }));
  assert.deepEqual(await (await app.handle(request("GET", "/", { declared: "/" }))).json(), { message: "Hej, k1" });

  for (const [tag, said] of [["upstream", "upstream: vault sealed"], ["io", "io: reset"]]) {
    const fail = () => {
      const e = new Error("(see error.payload)");
      e.payload = { tag, val: said.split(": ")[1] };
      throw e;
    };
    config.useStore({ get: fail, getAll: fail });
    assert.throws(() => config.get("greeting"), { name: "ConfigError", message: `cannot read config \`greeting\`: wasi:config/store failed: ${said}` });
    assert.throws(() => secret.get("api_key"), ConfigError);
    assert.throws(() => config.getAll(), /cannot read the config: wasi:config\/store failed/);
  }
  // In a unit test of a handler: plain values.
  config.useStore({ greeting: "Hi", port: 8080 });
  assert.equal(config.get("greeting"), "Hi");
  assert.deepEqual(config.getAll(), { greeting: "Hi", port: "8080" });
});

/** Every operation on store `default`, whose values are `values`. */
function exerciseStore(values) {
  const store = kv.open("default");
  assert.ok(store instanceof Store);
  assert.equal(store.get("a"), undefined);
  store.set("a", new Uint8Array([0, 1]));
  store.set("b", "ünï");
  store.set("empty", "");
  assert.deepEqual(store.get("a"), new Uint8Array([0, 1]));
  assert.equal(store.getText("b"), "ünï");
  assert.deepEqual(store.get("empty"), new Uint8Array(0));
  assert.equal(store.exists("empty"), true);
  store.delete("empty");
  store.delete("never-set");
  assert.equal(store.exists("empty"), false);
  assert.equal(store.increment("hits"), 1);
  assert.equal(store.increment("hits", 41n), 42);
  assert.equal(store.getText("hits"), "42");
  assert.throws(() => store.increment("hits", -1), RangeError);
  assert.throws(() => store.increment("hits", 1.5), RangeError);
  store.setMany({ m1: "1", m2: new Uint8Array([50]) });
  store.setMany(new Map([["m3", "3"]]));
  assert.deepEqual(store.getMany(["m1", "gone", "m3"]).map((v) => v && new TextDecoder().decode(v)), ["1", undefined, "3"]);
  store.deleteMany(new Set(["m1", "m2", "gone"]));
  assert.deepEqual(store.getMany(["m1", "m2"]), [undefined, undefined]);
  store.setJson("cart", { items: [1, 2], owner: "Åda" });
  assert.deepEqual(store.getJson("cart"), { items: [1, 2], owner: "Åda" });
  assert.deepEqual(store.getJson("no-cart", []), []);
  assert.throws(() => store.getJson("a"), (e) => e instanceof KvError && e.kind === "json" && /the value of `a` is not JSON/.test(e.message));
  assert.throws(() => store.set("n", 5), TypeError);
  assert.deepEqual([...store.keys()].sort(), ["a", "b", "cart", "hits", "m3"]);
  assert.deepEqual([...values.keys()].sort(), ["a", "b", "cart", "hits", "m3"]);
  // Another store, not listed: the error says how to list it.
  assert.throws(() => kv.open("sessions"), {
    name: "KvError",
    store: "sessions",
    kind: "access-denied",
    message: "key-value store `sessions`: access denied; list it in `key_value_stores` of fn.config.json",
  });
}

test("kv keeps stores in memory for a unit test", async (t) => {
  t.after(() => kv.useStores(null));
  assert.throws(() => kv.open("default"), (e) => e instanceof KvError && /`default`.*useStores/.test(e.message));
  const values = new Map();
  kv.useStores({ default: values });
  exerciseStore(values);
  const app = new App();
  app.post("/visits", {}, () => ({ count: kv.open("default").increment("visits") }));
  for (const n of [1, 2]) {
    const r = await app.handle(request("POST", "/visits"));
    assert.deepEqual(await r.json(), { count: n });
  }
  values.set("text", new TextEncoder().encode("many"));
  assert.throws(() => kv.open("default").increment("text"), { kind: "other", message: /`text` is not a counter/ });
});

test("kv on the bindings the entry module gives: pages, errors", (t) => {
  t.after(() => kv.useStores(null));
  // What componentize-js binds for `wasi:keyvalue`: a `result`'s error is
  // thrown with the variant as its `payload`; `option<u64>` is a bigint or
  // `undefined`; a key `down` fails with `other`.
  const fail = (tag, val) => {
    const e = new Error(tag);
    e.payload = { tag, val };
    throw e;
  };
  const stores = { default: new Map() };
  const check = (key) => key === "down" && fail("other", "the key-value store is unavailable: Redis at 127.0.0.1: refused");
  const bindings = {
    open(name) {
      const map = stores[name] ?? fail("access-denied");
      return {
        map,
        get: (key) => (check(key), map.get(key)),
        set: (key, value) => {
          assert.ok(value instanceof Uint8Array);
          map.set(key, value);
        },
        delete: (key) => void map.delete(key),
        exists: (key) => map.has(key),
        // Pages of two keys.
        listKeys(cursor) {
          const keys = [...map.keys()].sort();
          const start = Number(cursor ?? 0n);
          return { keys: keys.slice(start, start + 2), cursor: start + 2 < keys.length ? BigInt(start + 2) : undefined };
        },
      };
    },
    increment(b, key, delta) {
      assert.equal(typeof delta, "bigint");
      const n = BigInt(b.map.has(key) ? new TextDecoder().decode(b.map.get(key)) : "0") + delta;
      b.map.set(key, new TextEncoder().encode(String(n)));
      return n;
    },
    getMany: (b, keys) => keys.map((k) => (b.map.has(k) ? [k, b.map.get(k)] : undefined)),
    setMany: (b, pairs) => pairs.forEach(([k, v]) => b.map.set(k, v)),
    deleteMany: (b, keys) => keys.forEach((k) => b.map.delete(k)),
  };
  kv.useStores(bindings);
  exerciseStore(stores.default);
  const store = kv.open("default");
  store.setMany(Array.from({ length: 5 }, (_, i) => [`k${i}`, ""]));
  assert.equal([...store.keys()].length, 10);
  assert.throws(() => store.get("down"), {
    name: "KvError",
    kind: "other",
    message: "key-value store `default`: the key-value store is unavailable: Redis at 127.0.0.1: refused",
  });
  // A counter past 2^53 stays exact.
  store.set("big", String(2n ** 60n));
  assert.equal(store.increment("big"), 2n ** 60n + 1n);
});
