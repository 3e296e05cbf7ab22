// `tally`: counts words, characters or lines of a text, in JavaScript.
//
// Served at `/tally` (its folder). `POST /tally/{mode}` takes `{"text": ...}`
// and answers the count; the host checks the mode, the body and its length
// before this code runs.
import { App } from "wasmfn";
import { count, MODES } from "./count.js";

const app = new App({
  title: "Tally",
  description: "Counts words, characters or lines of a text.",
});

const Text = app.schema("Text", {
  type: "object",
  description: "The text to count in.",
  properties: {
    text: { type: "string", minLength: 1, maxLength: 10000 },
    ignore_case: { type: "boolean", default: false, description: "Count `Word` and `word` as one word (top)." },
  },
  required: ["text"],
  additionalProperties: false,
});

const Tally = app.schema("Tally", {
  type: "object",
  properties: {
    mode: { type: "string", enum: MODES },
    count: { type: "integer", minimum: 0 },
    top: {
      type: "array",
      description: "The most frequent words (mode `words` only).",
      items: { type: "object", properties: { word: { type: "string" }, n: { type: "integer" } }, required: ["word", "n"] },
    },
  },
  required: ["mode", "count"],
});

app.get("/", { summary: "Lists the counting modes.", tags: ["tally"], response: { type: "array", items: { type: "string", enum: MODES } } }, () => MODES);

app.post(
  "/{mode}",
  {
    summary: "Counts in a text.",
    description: "`words` also lists the three most frequent words.",
    tags: ["tally"],
    params: { mode: { type: "string", enum: MODES } },
    body: Text,
    response: Tally,
  },
  (req) => count(req.params.mode, req.data.text, req.data.ignore_case ?? false),
);

export default app;
