// Validates Kubernetes objects (custom resources above all) with the kubernetes-models packages:
// each object goes through its model's own validate() (the JSON schema generated from the
// CRD/OpenAPI: types, enums, required fields) and through the TypeScript compiler against the
// model's interface, whose excess-property check rejects fields the schema does not know (the
// generated validators let unknown fields through).
//
//   node validate.mjs <objects.json> <scratch dir>
//
// objects.json: [{"id": "...", "object": {...}}, ...]. Prints one JSON line per object:
// {"id", "ok", "errors": [...]}; exits 0 when every object passed, 1 otherwise. An object of
// a kind this script has no model for is an error, never a pass. Run it from a folder whose
// node_modules holds the packages of package.json (helm_check.py links one into its scratch
// dir).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

// API group -> package whose `<group>/<version>/<Kind>` modules hold the models.
const PACKAGES = {
  "keda.sh": "@kubernetes-models/keda",
  "serving.knative.dev": "@kubernetes-models/knative",
  "eventing.knative.dev": "@kubernetes-models/knative",
  "sources.knative.dev": "@kubernetes-models/knative",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "gateway.networking.k8s.io": "@kubernetes-models/gateway-api",
};

const require = createRequire(import.meta.url);

function modulePath(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Za-z0-9]+$/.test(kind)) {
    return { error: `no apiVersion/kind (${apiVersion}/${kind})` };
  }
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  let spec;
  if (group in PACKAGES) {
    spec = `${PACKAGES[group]}/${group}/${version}/${kind}`;
  } else if (group === "" || group.endsWith(".k8s.io") || !group.includes(".")) {
    // Kubernetes' own kinds: kubernetes-models/<group>/<version>/<Kind> (core: v1/<Kind>).
    spec = group === "" ? `kubernetes-models/${version}/${kind}` : `kubernetes-models/${group}/${version}/${kind}`;
  } else {
    return { error: `no model package for API group ${group} (kind ${kind}): not validated` };
  }
  try {
    require.resolve(spec);
  } catch {
    return { error: `no model for ${apiVersion} ${kind} (looked for ${spec})` };
  }
  return { spec };
}

const [, , input, scratch] = process.argv;
if (!input || !scratch) {
  console.error("usage: node validate.mjs <objects.json> <scratch dir>");
  process.exit(2);
}
const items = JSON.parse(fs.readFileSync(input, "utf8"));
const results = new Map(items.map((it) => [it.id, { id: it.id, ok: true, errors: [] }]));
const fail = (id, message) => {
  const r = results.get(id);
  r.ok = false;
  r.errors.push(message);
};

// 1. The model's own validate().
const typed = [];
for (const it of items) {
  const { apiVersion, kind } = it.object ?? {};
  const found = modulePath(apiVersion, kind);
  if (found.error) {
    fail(it.id, found.error);
    continue;
  }
  const mod = await import(found.spec);
  const Model = mod[kind];
  if (typeof Model !== "function") {
    fail(it.id, `${found.spec} exports no ${kind}`);
    continue;
  }
  try {
    new Model(it.object).validate();
  } catch (e) {
    fail(it.id, `validate(): ${String(e?.message ?? e)}`);
  }
  typed.push({ it, spec: found.spec, kind });
}

// 2. TypeScript: the object as a literal of the model's interface (unknown fields are errors).
if (typed.length > 0) {
  const ts = require("typescript");
  fs.mkdirSync(scratch, { recursive: true });
  const file = path.join(scratch, "objects.ts");
  const lines = [];
  const lineOf = [];
  typed.forEach(({ it, spec, kind }, i) => {
    lines.push(`import type { I${kind} as T${i} } from ${JSON.stringify(spec)};`);
  });
  typed.forEach(({ it }, i) => {
    lineOf.push([lines.length, it.id]);
    lines.push(`export const o${i}: T${i} = ${JSON.stringify(it.object)};`);
  });
  fs.writeFileSync(file, lines.join("\n") + "\n");
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  });
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const text = ts.flattenDiagnosticMessageText(d.messageText, "\n").slice(0, 600);
    if (d.file && path.resolve(d.file.fileName) === path.resolve(file) && d.start !== undefined) {
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      const hit = lineOf.find(([l]) => l === line);
      if (hit) {
        fail(hit[1], `typescript: ${text}`);
        continue;
      }
    }
    // A diagnostic we cannot attribute (a missing package, a broken .d.ts) fails everything.
    for (const r of results.values()) {
      if (typed.some(({ it }) => it.id === r.id)) fail(r.id, `typescript (unattributed): ${text}`);
    }
  }
}

let allOk = true;
for (const r of results.values()) {
  allOk &&= r.ok;
  console.log(JSON.stringify(r));
}
process.exit(allOk ? 0 : 1);
