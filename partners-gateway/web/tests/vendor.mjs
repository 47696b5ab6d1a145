// The browser libraries the gateway serves, copied from the npm packages `package-lock.json`
// pins. `node tests/vendor.mjs` writes them; `node tests/vendor.mjs --check` fails when a
// committed copy differs from what the pinned package gives (CI runs the check).
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const files = [["node_modules/chart.js/dist/chart.umd.min.js", "assets/vendor/chart.umd.min.js"]];
const check = process.argv.includes("--check");
let stale = 0;
for (const [from, to] of files) {
  const want = readFileSync(join(web, from));
  if (check) {
    const have = readFileSync(join(web, to));
    if (!want.equals(have)) {
      console.error(`${to} differs from ${from}: run node tests/vendor.mjs`);
      stale++;
    }
  } else {
    writeFileSync(join(web, to), want);
  }
}
if (stale) process.exit(1);
console.log(check ? "vendored assets match the pinned packages" : "vendored assets written");
