#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so a clone needs no build
// step: `npm install && npm start`.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/main.ts");
const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
