"""Unit tests of the helper in plain CPython (no component needed):
`python3 -m unittest discover -s tests` in guest-sdk/python."""

import io
import json
import sys
import types
import unittest
from contextlib import redirect_stderr
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Literal, Optional

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0])

from wasmfn import App, Field, HTTPError, Request, Response, config, kv, schema_of, secret  # noqa: E402


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Tag:
    label: Annotated[str, Field(min_length=1)]


@dataclass
class Item:
    """Something for sale."""

    id: int
    name: Annotated[str, Field(min_length=1, max_length=40)]
    price: float
    colour: Colour = Colour.RED
    tags: list[Tag] = field(default_factory=list)
    note: Optional[str] = None


def make_app():
    app = App(title="Items", version="1.0")

    @app.get("/", query={"limit": Annotated[int, Field(ge=1, default=10)], "q": Optional[str]})
    def list_items(req) -> list[Item]:
        """Lists items.

        Newest first."""
        return [Item(id=1, name=f"{req.query['q']}-{req.query['limit']}", price=1.5)]

    @app.get("/{id}", params={"id": Annotated[int, Field(ge=1)]}, responses={404: "No such item"})
    def show(req) -> Item:
        if req.params["id"] != 1:
            raise HTTPError(404, f"no item {req.params['id']}")
        return Item(id=1, name="Lamp", price=9.5, tags=[Tag("new")])

    @app.post("/", body=Item, status=201)
    def create(req) -> Item:
        return req.data

    @app.delete("/{id}")
    def remove(req):
        return None

    @app.get("/boom")
    def boom(req):
        raise RuntimeError("kaput")

    return app


def request(method, path, params=None, declared=None, body=b"", headers=()):
    h = [(f"x-fn-param-{k}", v.encode()) for k, v in (params or {}).items()]
    if declared:
        h.append(("x-fn-path", declared.encode()))
    h.extend(headers)
    return Request(method, path, h, body=body)


class Describe(unittest.TestCase):
    def test_operations_parameters_schemas(self):
        doc = make_app().openapi()
        self.assertEqual(doc["info"], {"title": "Items", "version": "1.0"})
        show = doc["paths"]["/{id}"]["get"]
        self.assertEqual(show["operationId"], "show")
        self.assertEqual(show["parameters"][0]["schema"], {"type": "integer", "minimum": 1})
        self.assertEqual(show["responses"]["200"]["content"]["application/json"]["schema"],
                         {"$ref": "#/components/schemas/Item"})
        self.assertEqual(show["responses"]["404"]["description"], "No such item")
        listing = doc["paths"]["/"]["get"]
        self.assertEqual(listing["summary"], "Lists items.")
        self.assertEqual(listing["description"], "Newest first.")
        limit, q = listing["parameters"]
        self.assertEqual((limit["required"], limit["schema"]), (False, {"type": "integer", "minimum": 1, "default": 10}))
        self.assertEqual((q["required"], q["schema"]), (False, {"type": ["string", "null"]}))
        item = doc["components"]["schemas"]["Item"]
        self.assertEqual(item["required"], ["id", "name", "price"])
        self.assertEqual(item["description"], "Something for sale.")
        self.assertEqual(item["properties"]["name"], {"type": "string", "minLength": 1, "maxLength": 40})
        self.assertEqual(item["properties"]["colour"], {"enum": ["red", "blue"], "default": "red"})
        self.assertEqual(item["properties"]["tags"]["items"], {"$ref": "#/components/schemas/Tag"})
        self.assertEqual(item["properties"]["note"], {"type": ["string", "null"], "default": None})
        self.assertFalse(item["additionalProperties"])
        self.assertEqual(doc["paths"]["/"]["post"]["responses"]["201"]["content"]["application/json"]["schema"],
                         {"$ref": "#/components/schemas/Item"})
        self.assertEqual(json.loads(make_app().describe()), json.loads(json.dumps(doc)))

    def test_types(self):
        c = {}
        self.assertEqual(schema_of(Literal["a", "b"], c), {"enum": ["a", "b"]})
        self.assertEqual(schema_of(dict[str, int], c), {"type": "object", "additionalProperties": {"type": "integer"}})
        self.assertEqual(schema_of({"type": "string", "format": "email"}, c), {"type": "string", "format": "email"})

        @dataclass
        class Range:
            low: int
            high: int
            json_schema_extra = {"dependentRequired": {"high": ["low"]}}

        self.assertEqual(schema_of(Range, c), {"$ref": "#/components/schemas/Range"})
        self.assertEqual(c["Range"]["dependentRequired"], {"high": ["low"]})
        self.assertEqual(set(c["Range"]["properties"]), {"low", "high"})
        with self.assertRaisesRegex(TypeError, "cannot describe the type"):
            schema_of(complex, c)
        with self.assertRaisesRegex(TypeError, "unknown constraint"):
            Field(minimum=1)


class Dispatch(unittest.TestCase):
    def test_typed_params_query_body_and_statuses(self):
        app = make_app()
        r = app.handle(request("GET", "/items/1", {"id": "1"}, "/{id}"))
        self.assertEqual(r.status, 200)
        self.assertEqual(json.loads(r.body)["tags"], [{"label": "new"}])
        self.assertEqual(json.loads(r.body)["colour"], "red")
        r = app.handle(request("GET", "/items/7", {"id": "7"}, "/{id}"))
        self.assertEqual((r.status, json.loads(r.body)), (404, {"error": {"code": "not_found", "message": "no item 7"}}))
        r = app.handle(request("GET", "/items?q=x", declared="/"))
        self.assertEqual(json.loads(r.body)[0]["name"], "x-10")
        r = app.handle(request("HEAD", "/items?limit=3", declared="/"))
        self.assertEqual(json.loads(r.body)[0]["name"], "None-3")
        body = json.dumps({"id": 2, "name": "Fan", "price": 3, "colour": "blue", "tags": [{"label": "a"}]}).encode()
        r = app.handle(request("POST", "/items", declared="/", body=body))
        self.assertEqual(r.status, 201)
        self.assertEqual(json.loads(r.body), {"id": 2, "name": "Fan", "price": 3.0, "colour": "blue",
                                              "tags": [{"label": "a"}], "note": None})
        r = app.handle(request("DELETE", "/items/1", {"id": "1"}, "/{id}"))
        self.assertEqual((r.status, r.body), (204, b""))

    def test_bad_input_and_failures(self):
        app = make_app()
        r = app.handle(request("GET", "/items/x", {"id": "x"}, "/{id}"))
        self.assertEqual(r.status, 422)
        self.assertEqual(json.loads(r.body)["error"]["details"][0]["loc"], ["path", "id"])
        r = app.handle(request("POST", "/items", declared="/", body=b"{nope"))
        self.assertEqual((r.status, json.loads(r.body)["error"]["code"]), (400, "invalid_json"))
        r = app.handle(request("POST", "/items", declared="/", body=b'{"id": 1}'))
        self.assertEqual(r.status, 422)
        self.assertEqual(json.loads(r.body)["error"]["details"][0]["loc"], ["body", "name"])
        r = app.handle(request("PUT", "/items"))
        self.assertEqual(r.status, 404)
        said = io.StringIO()
        with redirect_stderr(said):
            r = app.handle(request("GET", "/items/boom", declared="/boom", headers=[("x-request-id", b"rid-1")]))
        self.assertEqual(r.status, 500)
        self.assertIn("rid-1", json.loads(r.body)["error"]["message"])
        self.assertIn("kaput", said.getvalue())

    def test_streamed_body_and_matching_without_declared_path(self):
        app = App()

        @app.get("/{name}")
        def param(req):
            return "param"

        @app.get("/all")
        def static(req):
            return Response(iter([b"st", "atic"]), content_type="text/plain")

        self.assertEqual(b"".join(app.handle(request("GET", "/all")).chunks()), b"static")
        self.assertEqual(app.handle(request("GET", "/ada")).body, b"param")
        with self.assertRaisesRegex(ValueError, "declared twice"):
            app.get("/all")(lambda req: None)


class Err(Exception):
    """componentize-py's `Err`: a WIT `result`'s error, raised."""

    def __init__(self, value):
        super().__init__(value)
        self.value = value


def fake_component_store(values, error=None):
    """The modules componentize-py generates for `wasi:config/store`, as
    `sys.modules` entries: `get`/`get_all` answer `values`, or raise
    `Err(error)` when `error` is given. The world imports two `store`
    interfaces, so this one is named in full."""

    store = types.ModuleType("wit_world.imports.wasi_config_store")
    store.Error_Upstream = type("Error_Upstream", (), {"__init__": lambda self, v: setattr(self, "value", v)})
    store.Error_Io = type("Error_Io", (), {"__init__": lambda self, v: setattr(self, "value", v)})

    def answer(value):
        if error is not None:
            raise Err(error(store))
        return value

    store.get = lambda key: answer(values.get(key))
    store.get_all = lambda: answer(list(values.items()))
    imports = types.ModuleType("wit_world.imports")
    imports.wasi_config_store = store
    return {
        "componentize_py_types": types.SimpleNamespace(Err=Err),
        "wit_world": types.ModuleType("wit_world"),
        "wit_world.imports": imports,
        "wit_world.imports.wasi_config_store": store,
    }


class Config(unittest.TestCase):
    def tearDown(self):
        config.use_store(None)

    def test_values_given_for_a_unit_test(self):
        app = App()

        @app.get("/")
        def greet(req):
            return {"message": f"{config.get('greeting', 'Hello')}, {secret.get('api_key', 'none')}"}

        config.use_store({"greeting": "Hi", "api_key": "k1"})
        self.assertEqual(json.loads(app.handle(request("GET", "/")).body), {"message": "Hi, k1"})
        self.assertEqual(config.get_all(), {"greeting": "Hi", "api_key": "k1"})
        self.assertIsNone(config.get("nothing"))
        self.assertIsNone(secret.get("unlisted"))
        config.use_store({})
        self.assertEqual(json.loads(app.handle(request("GET", "/")).body), {"message": "Hello, none"})

    def test_without_a_store_the_error_says_how_to_give_one(self):
        with self.assertRaisesRegex(config.ConfigError, r"config `greeting`.*use_store"):
            config.get("greeting")
        with self.assertRaisesRegex(config.ConfigError, r"secret `api_key`"):
            secret.get("api_key")

    def test_the_component_store(self):
        from unittest import mock

        store = fake_component_store({"greeting": "Hej", "api_key": "k2"})
        with mock.patch.dict(sys.modules, store):
            # While `wasmfn build` imports app.py, before the host calls the component.
            with self.assertRaisesRegex(config.ConfigError, r"config `greeting` while app.py is imported"):
                config.get("greeting")
        self.addCleanup(setattr, config, "_running", False)
        config._running = True
        with mock.patch.dict(sys.modules, store):
            self.assertEqual(config.get("greeting"), "Hej")
            self.assertEqual(config.get("other", "x"), "x")
            self.assertEqual(secret.get("api_key"), "k2")
            self.assertEqual(config.get_all(), {"greeting": "Hej", "api_key": "k2"})
        for error, said in [
            (lambda store: store.Error_Upstream("vault sealed"), "upstream: vault sealed"),
            (lambda store: store.Error_Io("reset"), "io: reset"),
        ]:
            with mock.patch.dict(sys.modules, fake_component_store({}, error)):
                with self.assertRaises(config.ConfigError) as e:
                    config.get("greeting")
                self.assertEqual(str(e.exception), f"cannot read config `greeting`: wasi:config/store failed: {said}")
                with self.assertRaisesRegex(config.ConfigError, f"cannot read the config: .*{said}"):
                    config.get_all()


def fake_component_keyvalue(stores, pages=None):
    """The modules componentize-py generates for `wasi:keyvalue` (`store`,
    `atomics`, `batch`), as `sys.modules` entries, on `stores` (name →
    dict; any other name is refused with `access-denied`). `pages` splits
    `list-keys` into pages of that many keys. A key `"down"` fails every
    operation on it with `other`."""
    store = types.ModuleType("wit_world.imports.wasi_keyvalue_store")

    class Error_Other:
        def __init__(self, value):
            self.value = value

    store.Error_NoSuchStore = type("Error_NoSuchStore", (), {})
    store.Error_AccessDenied = type("Error_AccessDenied", (), {})
    store.Error_Other = Error_Other
    store.KeyResponse = lambda keys, cursor: types.SimpleNamespace(keys=keys, cursor=cursor)

    def check(key):
        if key == "down":
            raise Err(store.Error_Other("the key-value store is unavailable: Redis at 127.0.0.1: refused"))

    class Bucket:
        def __init__(self, values):
            self.values = values

        def get(self, key):
            check(key)
            return self.values.get(key)

        def set(self, key, value):
            check(key)
            assert isinstance(value, bytes), value
            self.values[key] = value

        def delete(self, key):
            check(key)
            self.values.pop(key, None)

        def exists(self, key):
            check(key)
            return key in self.values

        def list_keys(self, cursor):
            keys = sorted(self.values)
            size = pages or len(keys) or 1
            start = cursor or 0
            nxt = start + size
            return store.KeyResponse(keys[start:nxt], nxt if nxt < len(keys) else None)

    def open_(name):
        if name not in stores:
            raise Err(store.Error_AccessDenied())
        return Bucket(stores[name])

    store.open = open_
    atomics = types.ModuleType("wit_world.imports.atomics")

    def increment(bucket, key, delta):
        check(key)
        new = int(bucket.values.get(key, b"0")) + delta
        bucket.values[key] = str(new).encode()
        return new

    atomics.increment = increment
    batch = types.ModuleType("wit_world.imports.batch")
    batch.get_many = lambda bucket, keys: [(k, bucket.values[k]) if k in bucket.values else None for k in keys]
    batch.set_many = lambda bucket, pairs: bucket.values.update(pairs)

    def delete_many(bucket, keys):
        for k in keys:
            bucket.values.pop(k, None)

    batch.delete_many = delete_many
    imports = types.ModuleType("wit_world.imports")
    imports.wasi_keyvalue_store, imports.atomics, imports.batch = store, atomics, batch
    return {
        "componentize_py_types": types.SimpleNamespace(Err=Err),
        "wit_world": types.ModuleType("wit_world"),
        "wit_world.imports": imports,
        "wit_world.imports.wasi_keyvalue_store": store,
        "wit_world.imports.atomics": atomics,
        "wit_world.imports.batch": batch,
    }


class KeyValue(unittest.TestCase):
    def tearDown(self):
        kv.use_stores(None)

    def exercise(self, values):
        """Every operation on store `default`, whose values are `values`."""
        store = kv.Store.open("default")
        self.assertIsNone(store.get("a"))
        self.assertEqual(store.get("a", b"none"), b"none")
        store.set("a", b"\x00\x01")
        store.set("b", "ünï")
        store.set("empty", b"")
        self.assertEqual(store.get("a"), b"\x00\x01")
        self.assertEqual(store.get("b"), "ünï".encode())
        self.assertEqual(store.get("empty", b"none"), b"")
        self.assertTrue(store.exists("empty"))
        store.delete("empty")
        store.delete("never-set")
        self.assertFalse(store.exists("empty"))
        self.assertEqual(store.increment("hits"), 1)
        self.assertEqual(store.increment("hits", 41), 42)
        self.assertEqual(store.get("hits"), b"42")
        with self.assertRaisesRegex(ValueError, "0 or more"):
            store.increment("hits", -1)
        store.set_many({"m1": b"1", "m2": "2"})
        store.set_many([("m3", b"3")])
        self.assertEqual(store.get_many(["m1", "gone", "m3"]), [b"1", None, b"3"])
        store.delete_many(k for k in ["m1", "m2", "gone"])
        self.assertEqual(store.get_many(["m1", "m2", "m3"]), [None, None, b"3"])
        store.set_json("cart", {"items": [1, 2], "owner": "Åda"})
        self.assertEqual(store.get_json("cart"), {"items": [1, 2], "owner": "Åda"})
        self.assertEqual(store.get_json("no-cart", []), [])
        with self.assertRaises(kv.KvError) as e:
            store.get_json("a")
        self.assertEqual((e.exception.store, e.exception.kind), ("default", "json"))
        self.assertIn("the value of `a` is not JSON", str(e.exception))
        with self.assertRaisesRegex(TypeError, "bytes or str"):
            store.set("n", 5)
        self.assertEqual(sorted(store.keys()), ["a", "b", "cart", "hits", "m3"])
        self.assertEqual(sorted(values), ["a", "b", "cart", "hits", "m3"])
        # Another store, not listed: the error says how to list it.
        with self.assertRaises(kv.KvError) as e:
            kv.Store.open("sessions")
        self.assertEqual((e.exception.store, e.exception.kind), ("sessions", "access-denied"))
        self.assertEqual(
            str(e.exception),
            "key-value store `sessions`: access denied; list it in `key_value_stores` of fn.config.json",
        )

    def test_stores_kept_in_memory_for_a_unit_test(self):
        values = {}
        kv.use_stores({"default": values})
        self.exercise(values)
        app = App()

        @app.post("/visits")
        def visit(req):
            return {"count": kv.Store.open("default").increment("visits")}

        for n in (1, 2):
            self.assertEqual(json.loads(app.handle(request("POST", "/visits")).body), {"count": n})
        values["text"] = b"many"
        with self.assertRaisesRegex(kv.KvError, "`text` is not a counter"):
            kv.Store.open("default").increment("text")
        with self.assertRaisesRegex(TypeError, "mapping"):
            kv.use_stores(["default"])

    def test_without_stores_the_error_says_how_to_give_them(self):
        with self.assertRaisesRegex(kv.KvError, r"key-value store `default`.*use_stores"):
            kv.Store.open("default")

    def test_the_component_stores(self):
        from unittest import mock

        values = {}
        modules = fake_component_keyvalue({"default": values}, pages=2)
        # What kv.py imports with itself inside a component.
        component = mock.patch.multiple(
            kv,
            _Err=modules["componentize_py_types"].Err,
            _wasi_store=modules["wit_world.imports.wasi_keyvalue_store"],
            _atomics=modules["wit_world.imports.atomics"],
            _batch=modules["wit_world.imports.batch"],
            create=True,
        )
        with component:
            with self.assertRaisesRegex(kv.KvError, r"`default` while app.py is imported"):
                kv.Store.open("default")
        self.addCleanup(setattr, config, "_running", False)
        config._running = True
        with component:
            self.exercise(values)
            # `list-keys` a page at a time until the cursor ends.
            store = kv.Store.open("default")
            store.set_many({f"k{i}": b"" for i in range(5)})
            self.assertEqual(len(list(store.keys())), 10)
            with self.assertRaises(kv.KvError) as e:
                store.get("down")
            self.assertEqual(e.exception.kind, "other")
            self.assertEqual(
                str(e.exception),
                "key-value store `default`: the key-value store is unavailable: Redis at 127.0.0.1: refused",
            )


if __name__ == "__main__":
    unittest.main()
