// Validates prometheus-operator objects (a JSON array, file named by argv[2]) against the operator's
// CRD schemas as @kubernetes-models/prometheus-operator ships them. Prints one line per object;
// exits 1 if any is invalid or of a kind it has no schema for.
import { readFileSync } from "node:fs";
import * as v1 from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const docs = JSON.parse(readFileSync(process.argv[2], "utf8"));
let bad = 0;
for (const doc of docs) {
  const Model = doc.apiVersion === "monitoring.coreos.com/v1" ? v1[doc.kind] : undefined;
  const name = `${doc.kind}/${doc.metadata.name}`;
  if (!Model) {
    bad++;
    console.log(`no schema: ${doc.apiVersion} ${name}`);
    continue;
  }
  try {
    new Model(doc).validate();
    console.log(`valid: ${name}`);
  } catch (e) {
    bad++;
    console.log(`invalid: ${name}: ${e.message}`);
  }
}
process.exit(bad ? 1 : 0);
