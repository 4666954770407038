// Whether dist/ (npm run build, scripts/build.js) is up to date with the
// sources it is compiled from. dist/build-stamp is written last by a build and
// dated when the build began reading its sources; any file or folder under
// src/ or gen/ts dated later (an edit, a checkout, a new, renamed or deleted
// file) makes dist/ stale. About a hundred stat calls: cheap enough for every
// start.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const DIST = join(ROOT, "dist");
export const STAMP = join(DIST, "build-stamp");
/** What dist/ is compiled from, relative to the root. */
const SOURCES = ["src", join("gen", "ts")];

/** The first path under `dir` (itself included) modified after `since` (ms), if any. */
function newerThan(dir, since) {
  const stat = statSync(dir);
  if (stat.mtimeMs > since) return dir;
  if (!stat.isDirectory()) return undefined;
  for (const entry of readdirSync(dir)) {
    const found = newerThan(join(dir, entry), since);
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
