// `{{name}}`: served at `/{{name}}` (its folder), described in `/_fn/openapi.json`.
import { App, config } from "wasmfn";

const app = new App({ title: "{{name}}" });

const Greeting = app.schema("Greeting", {
  type: "object",
  description: "The answer.",
  properties: { message: { type: "string" } },
  required: ["message"],
});

app.get(
  "/",
  {
    summary: "Greets someone.",
    query: { name: { type: "string", minLength: 1, maxLength: 40 } },
    response: Greeting,
  },
  (req) => {
    // `config` in fn.config.json. A secret listed in its `secrets` reads the
    // same way: `secret.get("api_key")` (`import { secret } from "wasmfn"`).
    const greeting = config.get("greeting", "Hello");
    return { message: `${greeting}, ${req.query.name ?? "world"}!` };
  },
);

export default app;
