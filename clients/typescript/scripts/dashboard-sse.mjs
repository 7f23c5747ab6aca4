// The operator dashboard (src/picloud/dashboard, served by the Python package with no
// build step) reads its live tail with this client's event-stream parser. This script
// writes src/sse.ts, transpiled to a plain ES module, to src/picloud/dashboard/sse.js,
// which is committed so that the Python package needs no Node.js; `--check` (run by
// `npm run lint`) fails when the committed file is not what src/sse.ts gives.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const root = join(pkg, "..", "..");
const source = join(pkg, "src", "sse.ts");
const target = join(root, "src", "picloud", "dashboard", "sse.js");

const { outputText, diagnostics } = ts.transpileModule(readFileSync(source, "utf8"), {
  compilerOptions: {
    target: ts.ScriptTarget.ES2020,
    module: ts.ModuleKind.ESNext,
    removeComments: false,
    verbatimModuleSyntax: true,
  },
  reportDiagnostics: true,
  fileName: "sse.ts",
});
if (diagnostics && diagnostics.length > 0) {
  console.error(ts.formatDiagnostics(diagnostics, ts.createCompilerHost({})));
  process.exit(1);
}
if (/^\s*import\b/m.test(outputText)) {
  console.error("src/sse.ts must import nothing: the dashboard loads it on its own");
  process.exit(1);
}
const header =
  "// Generated from clients/typescript/src/sse.ts by `npm run dashboard-sse` in\n" +
  "// clients/typescript: do not edit here, edit that file and run it again.\n";
const wanted = header + outputText;
const shown = relative(root, target);

if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(target, "utf8");
  } catch {
    // missing: reported below
  }
  if (current !== wanted) {
    console.error(`${shown} is not what src/sse.ts gives: run \`npm run dashboard-sse\``);
    process.exit(1);
  }
} else {
  writeFileSync(target, wanted);
  console.log(`wrote ${shown}`);
}
