import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { basename, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * The dashboard's files (src/dashboard, bundled by esbuild: preact, htm,
 * uPlot and the generated client in one script and one stylesheet, their
 * names carrying a hash of their content), and how the HTTP port serves
 * them. `npm run build` writes them to dist/dashboard; running from the
 * sources, they are bundled in memory at start.
 */

export interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  /** Named by its content's hash: cached for good. */
  readonly immutable: boolean;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

/**
 * Nothing but this origin: no inline script or style, no other host. uPlot
 * and preact set styles through the CSSOM, which the policy allows.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const SOURCE_DIR = fileURLToPath(new URL("../dashboard/", import.meta.url));
/** dist/dashboard, seen from dist/src/cluster. */
const BUILT_DIR = fileURLToPath(new URL("../../dashboard/", import.meta.url));

/** Bundles src/dashboard into { file name: content }: index.html, app-<hash>.js, app-<hash>.css. */
async function bundleDashboard(sourceDir: string = SOURCE_DIR): Promise<Map<string, Buffer>> {
  // esbuild comes with tsx, a dependency; loaded only when bundling.
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: { app: join(sourceDir, "main.ts") },
    bundle: true,
    format: "esm",
    target: "es2020",
    minify: true,
    write: false,
    outdir: "/dashboard",
    entryNames: "[name]-[hash]",
    legalComments: "linked",
    logLevel: "silent",
  });
  const files = new Map<string, Buffer>();
  for (const output of result.outputFiles) files.set(basename(output.path), Buffer.from(output.contents));
  const script = [...files.keys()].find((name) => name.endsWith(".js"));
  const style = [...files.keys()].find((name) => name.endsWith(".css"));
  if (!script || !style) throw new Error("bundling the dashboard gave no script or no stylesheet");
  const page = readFileSync(join(sourceDir, "index.html"), "utf8").replace("{{js}}", script).replace("{{css}}", style);
  files.set("index.html", Buffer.from(page));
  return files;
}

/** scripts/build.js (which imports this file by its path): writes the bundle to `outDir`. */
export async function writeDashboard(outDir: string, sourceDir: string = SOURCE_DIR): Promise<void> {
  await mkdir(outDir, { recursive: true });
  for (const [name, body] of await bundleDashboard(sourceDir)) await writeFile(join(outDir, name), body);
}

/** The dashboard's files by URL path: built ones when there are, else bundled now. */
export async function loadDashboard(): Promise<Map<string, Asset>> {
  const files = existsSync(join(BUILT_DIR, "index.html"))
    ? new Map(readdirSync(BUILT_DIR).map((name) => [name, readFileSync(join(BUILT_DIR, name))] as const))
    : await bundleDashboard();
  const assets = new Map<string, Asset>();
  for (const [name, body] of files) {
    const contentType = CONTENT_TYPES[extname(name)] ?? "text/plain; charset=utf-8";
    const asset = { body, contentType, immutable: name !== "index.html" };
    assets.set(`/${name}`, asset);
    if (name === "index.html") assets.set("/", asset);
  }
  return assets;
}

/** Serves GET/HEAD of a dashboard file; false when `path` is not one. */
export function serveAsset(
  assets: ReadonlyMap<string, Asset>,
  path: string,
  request: IncomingMessage,
  response: ServerResponse,
): boolean {
  const asset = assets.get(path);
  if (!asset || (request.method !== "GET" && request.method !== "HEAD")) return false;
  response.writeHead(200, {
    "content-type": asset.contentType,
    "content-length": asset.body.length,
    // The page is small and names the current bundle: always asked again.
    "cache-control": asset.immutable ? "public, max-age=31536000, immutable" : "no-cache",
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  });
  response.end(request.method === "HEAD" ? undefined : asset.body);
  return true;
}
