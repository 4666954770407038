#!/usr/bin/env node
// npm run generate [-- --out DIR]: regenerates gen/ from proto/ with buf and
// the local plugins (protoc-gen-es from node_modules; protoc-gen-go and
// protoc-gen-go-grpc from PATH or `go env GOPATH`/bin). Stale generated files
// are removed first; gen/go/go.mod and go.sum are kept.
import { execFileSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { goBinDirectory } from "./go-tools.js";

const outIndex = process.argv.indexOf("--out");
const out = outIndex > 0 ? process.argv[outIndex + 1] : ".";
const gen = join(out, "gen");

rmSync(join(gen, "ts"), { recursive: true, force: true });
for (const entry of safeReaddir(join(gen, "go"))) {
  if (entry !== "go.mod" && entry !== "go.sum") rmSync(join(gen, "go", entry), { recursive: true, force: true });
}

const goBin = goBinDirectory();
const env = { ...process.env, PATH: goBin ? `${goBin}:${process.env.PATH}` : process.env.PATH };
execFileSync("npx", ["buf", "generate", ...(out === "." ? [] : ["--output", out])], { stdio: "inherit", env });

function safeReaddir(path) {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
