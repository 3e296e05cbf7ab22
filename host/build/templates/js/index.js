// `{{name}}`: served at `/{{name}}` (its folder), described in `/_fn/openapi.json`.
import { App } from "wasmfn";

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
  (req) => ({ message: `Hello, ${req.query.name ?? "world"}!` }),
);

export default app;
