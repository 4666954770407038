import { Session } from "node:inspector";
import { fileURLToPath } from "node:url";

/** A script a TypeScript loader compiled or is made of: a .ts file, or tsx's and esbuild's modules. */
const TYPESCRIPT = /\.[cm]?tsx?(\?|$)|\/node_modules\/(tsx|esbuild)\//;

export interface LoadedCode {
  /** This module's file: under dist/ when compiled, under src/ (a .ts) when run through tsx. */
  readonly file: string;
  /** Node's own flags (a loader given with --import or --loader shows here). */
  readonly execArgv: readonly string[];
  /** How many scripts this thread has compiled. */
  readonly scripts: number;
  /** The URLs of those a TypeScript loader brought or compiled; empty when none runs. */
  readonly typescript: readonly string[];
}

/**
 * What code this process runs, for a debug log line: every script V8 has
 * compiled on this thread, listed by an in-process inspector session
 * (enabling the debugger reports each script already compiled), so a loader
 * shows however it was registered. A few milliseconds, once.
 */
export function loadedCode(): LoadedCode {
  const urls: string[] = [];
  const session = new Session();
  session.connect();
  try {
    session.on("Debugger.scriptParsed", (message) => urls.push(message.params.url));
    session.post("Debugger.enable");
    session.post("Debugger.disable");
  } finally {
    session.disconnect();
  }
  return {
    file: fileURLToPath(import.meta.url),
    execArgv: process.execArgv,
    scripts: urls.length,
    typescript: [...new Set(urls.filter((url) => TYPESCRIPT.test(url)))],
  };
}
