// Logs: JSON lines for machines, readable lines for people (TOLLGATE_LOG_FORMAT,
// auto: readable only when stdout is a terminal), secrets redacted in both.
// Each case logs from a child process, whose stdout (a pipe) the test reads.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const LOGGER = new URL("../../src/logger.ts", import.meta.url).href;

async function logOnce(format: string): Promise<string> {
  const script = `
    const { createLogger } = await import(${JSON.stringify(LOGGER)});
    createLogger("info", { role: "primary" }, ${JSON.stringify(format)}).info({ apiKey: "s3cret", users: 3 }, "hello");
  `;
  const { stdout } = await run(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    timeout: 30_000,
  });
  return stdout;
}

test("pretty: one readable line (time, level, pid, message, then the fields), the key redacted", async () => {
  const line = (await logOnce("pretty")).trim();
  assert.match(line, /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO \(\d+\): hello \{.*\}$/);
  assert.match(line, /"users":3/);
  assert.match(line, /"apiKey":"\[redacted\]"/);
  assert.doesNotMatch(line, /s3cret/);
});

test("json, and auto when stdout is not a terminal: JSON lines, the key redacted", async () => {
  for (const format of ["json", "auto"]) {
    const record = JSON.parse((await logOnce(format)).trim()) as Record<string, unknown>;
    assert.equal(record.msg, "hello", format);
    assert.equal(record.level, 30);
    assert.equal(record.role, "primary");
    assert.equal(record.apiKey, "[redacted]");
  }
});
