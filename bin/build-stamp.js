// Whether dist/ (npm run build, scripts/build.js) is up to date with the
// sources it is compiled from. dist/build-stamp is written last by a build and
// dated when the build began reading its sources; any file under src/ or
// gen/ts dated later (an edit, a checkout, a new file) makes dist/ stale.
// Folders' dates are not compared: unpacking a package dates its folders now
// and its files as they were packed. A deleted or renamed file shows through
// the files that imported it, which change too. About a hundred stat calls:
// cheap enough for every start.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const DIST = join(ROOT, "dist");
export const STAMP = join(DIST, "build-stamp");
/** What dist/ is compiled from, relative to the root. */
const SOURCES = ["src", join("gen", "ts")];

/** The first file under `dir` modified after `since` (ms), if any. */
function newerThan(dir, since) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const found = entry.isDirectory() ? newerThan(path, since) : statSync(path).mtimeMs > since ? path : undefined;
    if (found) return found;
  }
  return undefined;
}

/**
 * `{ fresh: true }` when dist/ holds a build at least as new as every source;
 * otherwise `{ fresh: false, why }`, `why` naming what is missing or newer.
 */
export function distState() {
  let built;
  try {
    built = statSync(STAMP).mtimeMs;
  } catch {
    return { fresh: false, why: "dist/ holds no build" };
  }
  for (const source of SOURCES) {
    const newer = newerThan(join(ROOT, source), built);
    if (newer) return { fresh: false, why: `${newer.slice(ROOT.length)} is newer than dist/` };
  }
  return { fresh: true };
}
