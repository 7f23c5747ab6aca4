#!/usr/bin/env bash
# The TypeScript client (@picloud/client): install from the lock file, type-check, run the
# unit tests and the integration tests (which start this repository's server from .venv),
# build, and check that the package ships ESM, CJS and type files for every entry point.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
pkg="$root/clients/typescript"

fail() {
    echo "20-typescript-client: $*" >&2
    exit 1
}

command -v node >/dev/null || fail "node is not installed (Node.js 20 or newer is needed)"
command -v npm >/dev/null || fail "npm is not installed"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
    fail "Node.js $(node --version) is too old: the test tools need 20.19 or newer"
[ -x "$root/.venv/bin/python" ] ||
    fail "$root/.venv is missing: the integration tests run the server from it (scripts/test creates it)"

cd "$pkg"
echo "== @picloud/client: npm ci"
npm ci --no-audit --no-fund --loglevel=error
echo "== @picloud/client: lint (tsc --noEmit)"
npm run --silent lint
echo "== @picloud/client: tests"
npm test
echo "== @picloud/client: build"
npm run --silent build >/dev/null

echo "== @picloud/client: built entry points load (CommonJS and ESM)"
node -e '
for (const name of ["@picloud/client", "@picloud/client/react", "@picloud/client/svelte"]) {
  const mod = require(name);
  if (Object.keys(mod).length === 0) throw new Error(`require(${name}) exported nothing`);
}
if (typeof require("@picloud/client").createClient !== "function") throw new Error("no createClient (cjs)");
if (typeof require("@picloud/client/react").useSubscription !== "function") throw new Error("no useSubscription (cjs)");
'
node --input-type=module -e '
const root = await import("@picloud/client");
const react = await import("@picloud/client/react");
const svelte = await import("@picloud/client/svelte");
if (typeof root.createClient !== "function") throw new Error("no createClient (esm)");
if (typeof react.useSubscription !== "function") throw new Error("no useSubscription (esm)");
if (typeof svelte.subscriptionStore !== "function") throw new Error("no subscriptionStore (esm)");
'

echo "== @picloud/client: package contents"
pack_json="$(mktemp)"
trap 'rm -f "$pack_json"' EXIT
npm pack --dry-run --json --loglevel=error >"$pack_json"
node - "$pack_json" <<'JS'
const fs = require("node:fs");
const [info] = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const files = new Set(info.files.map((f) => f.path));
const missing = [];
for (const dir of ["", "react/", "svelte/"]) {
  for (const ext of ["js", "cjs", "d.ts", "d.cts"]) {
    const path = `dist/${dir}index.${ext}`;
    if (!files.has(path)) missing.push(path);
  }
}
if (missing.length > 0) {
  console.error(`npm pack is missing: ${missing.join(", ")}\npacked: ${[...files].join(", ")}`);
  process.exit(1);
}
// No `any` in the published types.
for (const path of files) {
  if (!/\.d\.c?ts$/.test(path)) continue;
  const code = fs.readFileSync(path, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  if (/\bany\b/.test(code)) {
    console.error(`${path} exports a type using 'any'`);
    process.exit(1);
  }
}
console.log(`${info.name}@${info.version}: ${info.entryCount} files, ${info.size} bytes packed, all entry points present`);
JS
