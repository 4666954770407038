// A worker's report of changes short of their replicas: every one counted,
// a warning the first time and then at most one per 10 s, saying how many
// there were since the last.
import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { reportShortOfReplicas } from "../../src/cluster/replica-shortfall.js";
import { metrics } from "../../src/metrics.js";
import { FakeClock } from "../support/fake-clock.js";

test("every short change is counted; warnings come at most every 10 s with the count since the last", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const clock = new FakeClock(1_000);
  const report = reportShortOfReplicas(logger, clock);
  const claims = async (): Promise<number> =>
    (await metrics.shortOfReplicas.get()).values.find((value) => value.labels.change === "claim")?.value ?? 0;
  const before = await claims();

  report("claim", 0, 1);
  clock.advance(5_000);
  report("claim", 0, 1);
  report("claim", 0, 1);
  assert.equal(lines.length, 1, "one warning within 10 s");
  assert.equal(lines[0]!.changesShortSinceLastWarning, 1);
  clock.advance(5_000);
  report("claim", 1, 2);
  assert.equal(lines.length, 2);
  assert.deepEqual(
    { change: lines[1]!.change, replicas: lines[1]!.replicas, required: lines[1]!.required },
    { change: "claim", replicas: 1, required: 2 },
  );
  assert.equal(lines[1]!.changesShortSinceLastWarning, 3, "the two held back and this one");
  assert.equal(await claims(), before + 4);
});
