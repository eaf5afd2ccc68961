// Validates Kubernetes objects of the Gateway API groups against the schemas shipped by
// @kubernetes-models/gateway-api, offline. Usage: node validate.mjs objects.json
// objects.json: [{"id": "...", "object": {...}}, ...]. Prints {"<id>": ["error", ...]} for the objects
// with errors ({} when all are valid). Two checks, because neither is enough alone:
// 1. the package's JSON schema validators: types, patterns (durations, names), enums, required fields;
// 2. TypeScript's excess property check on the package's types: a misspelled or unknown field, which
//    the generated schemas let through (they have no additionalProperties: false) but an API server
//    with strict field validation refuses.
import { readFileSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const HERE = dirname(fileURLToPath(import.meta.url));
const PKG = "@kubernetes-models/gateway-api";
const GROUPS = ["gateway.networking.k8s.io", "gateway.networking.x-k8s.io"];

function splitApiVersion(apiVersion) {
  const [group, version] = String(apiVersion).split("/");
  return GROUPS.includes(group) && version ? { group, version } : null;
}

async function schemaErrors(object) {
  const gv = splitApiVersion(object.apiVersion);
  if (!gv) return [`${object.apiVersion}: not a Gateway API group`];
  let models;
  try {
    models = await import(`${PKG}/${gv.group}/${gv.version}`);
  } catch {
    return [`${object.apiVersion}: no schema for this version`];
  }
  const Model = models[object.kind];
  if (typeof Model !== "function" || !Model.is) return [`${object.apiVersion} ${object.kind}: no schema`];
  try {
    new Model(object).validate();
    return [];
  } catch (err) {
    return [err.message];
  }
}

// One line per object, so a diagnostic's line says whose it is.
function unknownFieldErrors(entries) {
  const lines = [];
  entries.forEach(({ object }, i) => {
    const gv = splitApiVersion(object.apiVersion);
    if (gv) lines[i] = `import type { I${object.kind} as T${i} } from "${PKG}/${gv.group}/${gv.version}/${object.kind}";`;
  });
  const header = lines.length;
  entries.forEach(({ object }, i) => {
    if (splitApiVersion(object.apiVersion)) lines[header + i] = `export const o${i}: T${i} = ${JSON.stringify(object)};`;
  });
  const file = join(HERE, `objects-${process.pid}.check.ts`);
  writeFileSync(file, lines.map((l) => l ?? "").join("\n") + "\n");
  try {
    const program = ts.createProgram([file], {
      strict: true, noEmit: true, skipLibCheck: true, types: [],
      module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    });
    const errors = {};
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const message = ts.flattenDiagnosticMessageText(d.messageText, " ");
      const line = d.file ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
      // an import line names object `line`'s type; the objects follow the imports
      const index = line < 0 ? -1 : line >= header ? line - header : line;
      const id = index >= 0 ? entries[index].id : "(setup)";
      (errors[id] ??= []).push(message);
    }
    return errors;
  } finally {
    rmSync(file, { force: true });
  }
}

const entries = JSON.parse(readFileSync(process.argv[2], "utf8"));
const errors = unknownFieldErrors(entries);
for (const { id, object } of entries) {
  const found = await schemaErrors(object);
  if (found.length) (errors[id] ??= []).push(...found);
}
process.stdout.write(JSON.stringify(errors) + "\n");
