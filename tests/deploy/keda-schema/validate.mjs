// Validates KEDA objects against KEDA's API schema (@kubernetes-models/keda: JSON-schema validators
// generated from KEDA's Go API types, the source of its CRDs). Input: a JSON array of objects (file
// argument). Output: one line per invalid object; exit status 1 if any.
import { readFileSync } from "node:fs";
import * as keda from "@kubernetes-models/keda/keda.sh/v1alpha1";

const docs = JSON.parse(readFileSync(process.argv[2], "utf8"));
let failed = 0;
for (const doc of docs) {
  const Model = doc.apiVersion === "keda.sh/v1alpha1" ? keda[doc.kind] : undefined;
  const name = `${doc.kind}/${doc.metadata?.name}`;
  if (!Model) {
    console.log(`${name}: no KEDA schema for ${doc.apiVersion} ${doc.kind}`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
  } catch (e) {
    console.log(`${name}: ${e.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
