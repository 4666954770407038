// Where code in the esbuild bundle (dist/bundle, what `npm start` runs) came
// from, through the source maps `npm run build` writes beside it: profiles of
// the bundle would otherwise name only its chunks, not src/ files or packages.
import { SourceMap } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const maps = new Map<string, SourceMap | undefined>();

function mapOf(path: string): SourceMap | undefined {
  if (!maps.has(path)) {
    let map: SourceMap | undefined;
    try {
      map = new SourceMap(JSON.parse(readFileSync(`${path}.map`, "utf8")));
    } catch {
      map = undefined; // no map: positions stay the bundle's
    }
    maps.set(path, map);
  }
  return maps.get(path);
}

/**
 * The original file URL and 0-based line of a 0-based position in a bundled
 * file, or the position as given when `url` is not in a bundle with a map.
 */
export function originalPosition(url: string, line: number, column: number): { url: string; line: number } {
  if (!url.startsWith("file://") || !url.includes("/dist/bundle/")) return { url, line };
  const path = fileURLToPath(url);
  const entry = mapOf(path)?.findEntry(line, column);
  if (!entry || !("originalSource" in entry) || !entry.originalSource) return { url, line };
  const source = entry.originalSource.startsWith("file://")
    ? entry.originalSource
    : pathToFileURL(resolve(dirname(path), entry.originalSource)).href;
  return { url: source, line: entry.originalLine };
}
