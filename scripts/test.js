#!/usr/bin/env node
// npm test [-- FILE|DIR...]: every test/**/*.test.ts (or the files given, and
// every test file under the folders given, e.g. test/unit) under
// node's test runner with tsx. The glob is expanded here, not by the shell, so
// it behaves the same everywhere.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { goBinDirectory } from "./go-tools.js";

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return findTests(path);
    return entry.name.endsWith(".test.ts") ? [path] : [];
  });
}

const given = process.argv.length > 2 ? process.argv.slice(2) : ["test"];
const files = given.flatMap((path) => (statSync(path).isDirectory() ? findTests(path).sort() : [path]));
const goBin = goBinDirectory();
const env = { ...process.env, PATH: goBin ? `${goBin}:${process.env.PATH}` : process.env.PATH };
// --test-force-exit: a file is done when its tests are; a socket some library
// still holds open must not keep it running into the file's timeout.
const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-timeout=120000", "--test-force-exit", ...files],
  {
    stdio: "inherit",
    env,
  },
);
process.exit(result.status ?? 1);
