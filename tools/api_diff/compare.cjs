// Compares two OpenAPI documents (JSON files) with api-smart-diff and prints its classified
// changes as one JSON array on stdout: [{type, action, path, description, before, after}, ...]
// (before and after only when they are plain values, e.g. a renamed operationId).
// Called by tools/api_diff/_spec_diff.py; `type` is api-smart-diff's classification for
// clients: "breaking", "non-breaking", "annotation", "deprecated" or "unclassified".
"use strict";
const fs = require("fs");
const { apiCompare } = require("api-smart-diff");

const [before, after] = process.argv.slice(2, 4).map((file) => JSON.parse(fs.readFileSync(file)));
const { diffs } = apiCompare(before, after);
const plain = (value) => (value !== null && typeof value === "object" ? null : (value ?? null));
const out = diffs.map((d) => ({
  type: d.type,
  action: d.action,
  path: d.path,
  description: d.description ?? null,
  before: plain(d.before),
  after: plain(d.after),
}));
process.stdout.write(JSON.stringify(out));
