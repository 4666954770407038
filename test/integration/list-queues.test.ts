// ListQueues: every user with something queued, running or dead-lettered
// (and every paused one), the largest backlog first, then by user id, with
// the counts and paused flag; pages of 2 list each user once while nothing
// changes; a user with only dead letters (no index names it) is found too,
// whatever its id holds; admins only; bad tokens refused. On a standalone
// Redis and on a 3-master Cluster (partitions on every master).
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Code, type Client } from "@connectrpc/connect";
import { createTollgateClient } from "../../src/client/client.js";
import { expectCode, pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";
import { ADMIN_KEY, ALICE_KEY, writeKeyFile } from "../support/api-keys.js";
import { TestRedisCluster } from "../support/redis-cluster.js";
import { startTestServer, type TestServer } from "../support/server.js";
import {
  Disposition,
  ListState,
  type ListQueuesResponse,
  type QueueSummary,
  type TaskService,
} from "../../gen/ts/tollgate/v1/task_service_pb.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));
/** A user with only a dead letter, its id shaped like the keys' separators and a glob. */
const AWKWARD_DEAD = "q-dead}:dl:*[x]";

const ctx = usePrivateRedis("list-queues");

type Row = [userId: string, queued: number, running: number, waitingToRetry: number, dead: number, paused: boolean];
const rows = (queues: readonly QueueSummary[]): Row[] =>
  queues.map((q) => [
    q.userId,
    Number(q.queued),
    Number(q.running),
    Number(q.waitingToRetry),
    Number(q.dead),
    q.paused,
  ]);

/** What the scenario leaves, in ListQueues' order: backlog (queued + waiting to retry) down, then user id. */
const EXPECTED: Row[] = [
  ["q-big", 3, 0, 0, 0, false],
  ["q-paused", 2, 0, 0, 0, true],
  ["q-small", 1, 0, 0, 0, false],
  ["q-dead", 0, 0, 0, 1, false],
  [AWKWARD_DEAD, 0, 0, 0, 1, false],
  ["q-idle", 0, 0, 0, 0, true],
  ["q-run", 0, 1, 0, 0, false],
];

async function serve(redisUrl: string): Promise<TestServer> {
  await writeKeyFile(ctx.dir);
  return startTestServer(redisUrl, {
    TOLLGATE_AUTH_KEYS: join(ctx.dir, "keys"),
    // One start per hour: whatever queues stays queued for the test.
    TOLLGATE_RATE_LIMITS: "1/1h",
    TOLLGATE_HANDLER: FIXTURE_HANDLERS,
    TOLLGATE_MAX_ATTEMPTS: "1",
  });
}

/** Users with different backlogs, one running, one paused with tasks and one without, two with only a dead letter. */
async function scenario(admin: Client<typeof TaskService>): Promise<void> {
  const submit = async (userId: string, count: number, kind = "", payload = "") => {
    const answers = [];
    for (let i = 0; i < count; i++)
      answers.push(await admin.submit({ userId, kind, payload: new TextEncoder().encode(payload) }));
    return answers;
  };
  // The first of each starts (and ends at once); the rest queue under 1/1h.
  await submit("q-big", 4);
  await submit("q-small", 2);
  await admin.pauseQueue({ userId: "q-paused" });
  assert.ok((await submit("q-paused", 2)).every((answer) => answer.disposition === Disposition.QUEUED));
  await admin.pauseQueue({ userId: "q-idle" });
  const [running] = await submit("q-run", 1, "slow", "60000");
  assert.equal(running!.disposition, Disposition.STARTED);
  await submit("q-dead", 1, "broken");
  await submit(AWKWARD_DEAD, 1, "broken");
  for (const userId of ["q-dead", AWKWARD_DEAD]) {
    await pollUntil(
      `${userId}'s task to be dead-lettered`,
      async () => (await admin.listTasks({ userId, state: ListState.DEAD })).tasks.length === 1,
      { timeoutMs: 10_000 },
    );
  }
  // q-big's and q-small's first tasks ended (nothing else runs there).
  await pollUntil(
    "the tasks that started at Submit to end, but q-run's",
    async () =>
      (await admin.listTasks({ userId: "q-big", state: ListState.RUNNING })).tasks.length === 0 &&
      (await admin.listTasks({ userId: "q-small", state: ListState.RUNNING })).tasks.length === 0,
    { timeoutMs: 10_000 },
  );
}

/** Every page of ListQueues at `pageSize`, in turn. */
async function allPages(admin: Client<typeof TaskService>, pageSize: number): Promise<ListQueuesResponse[]> {
  const pages: ListQueuesResponse[] = [];
  let pageToken = "";
  do {
    const page = await admin.listQueues({ pageSize, pageToken });
    pages.push(page);
    pageToken = page.nextPageToken;
    assert.ok(pages.length < 50, "the pages end");
  } while (pageToken !== "");
  return pages;
}

function listsEveryUser(tollgate: () => TestServer): void {
  const as = (key: string): Client<typeof TaskService> =>
    createTollgateClient({ baseUrl: tollgate().address, apiKey: key });

  test("users by backlog then id, with their counts and paused flag; pages of 2 list each once", async () => {
    const admin = as(ADMIN_KEY);
    await scenario(admin);
    const whole = await admin.listQueues({});
    assert.deepEqual(rows(whole.queues), EXPECTED);
    assert.equal(whole.nextPageToken, "", "one default page holds them all");

    const pages = await allPages(admin, 2);
    assert.deepEqual(
      pages.map((page) => page.queues.length),
      [2, 2, 2, 1],
    );
    assert.deepEqual(rows(pages.flatMap((page) => page.queues)), EXPECTED, "each user once, in order");
    assert.equal(pages.at(-1)!.nextPageToken, "", "the last page has no token");
  });

  test("admins only: a user's key is PERMISSION_DENIED", async () => {
    const error = await expectCode(as(ALICE_KEY).listQueues({}), Code.PermissionDenied);
    assert.match(error.rawMessage, /acts for user "alice" only; it may not list every user's queue \(admins only\)/);
  });

  test("INVALID_ARGUMENT for a malformed token and for another listing's", async () => {
    const admin = as(ADMIN_KEY);
    const { nextPageToken: listTasksToken } = await admin.listTasks({
      userId: "q-big",
      state: ListState.QUEUED,
      pageSize: 1,
    });
    assert.notEqual(listTasksToken, "");
    for (const pageToken of ["garbage!", "Z2FyYmFnZQ", listTasksToken]) {
      const error = await expectCode(admin.listQueues({ pageToken }), Code.InvalidArgument, pageToken);
      assert.match(error.rawMessage, /^page_token: is not a page token of ListQueues/);
    }
    const { nextPageToken } = await admin.listQueues({ pageSize: 1 });
    assert.notEqual(nextPageToken, "");
    const error = await expectCode(
      admin.listTasks({ userId: "q-big", state: ListState.QUEUED, pageToken: nextPageToken }),
      Code.InvalidArgument,
    );
    assert.match(error.rawMessage, /^page_token: is not a page token of ListTasks/);
  });
}

describe("ListQueues on a standalone Redis", () => {
  let tollgate: TestServer;
  before(async () => {
    tollgate = await serve(ctx.redis.url);
  });
  after(async () => {
    await tollgate?.close();
  });
  listsEveryUser(() => tollgate);
});

describe("ListQueues counts a task waiting to retry in the backlog", () => {
  let tollgate: TestServer;
  before(async () => {
    // On the same Redis, after the standalone tests: their users are still there.
    tollgate = await startTestServer(ctx.redis.url, {
      TOLLGATE_AUTH_KEYS: join(ctx.dir, "keys"),
      TOLLGATE_RATE_LIMITS: "1/1h",
      TOLLGATE_HANDLER: FIXTURE_HANDLERS,
      TOLLGATE_MAX_ATTEMPTS: "3",
      // The retry comes due 30 to 60 s after the failure: it waits for the test.
      TOLLGATE_RETRY_BACKOFF_MS: "60000",
    });
  });
  after(async () => {
    await tollgate?.close();
  });

  test("a failed attempt waiting out its backoff is waiting_to_retry, and counts in the order", async () => {
    const admin = createTollgateClient({ baseUrl: tollgate.address, apiKey: ADMIN_KEY });
    // flaky fails its first attempt; the second task queues behind it under 1/1h.
    assert.equal((await admin.submit({ userId: "q-retry", kind: "flaky" })).disposition, Disposition.STARTED);
    assert.equal((await admin.submit({ userId: "q-retry" })).disposition, Disposition.QUEUED);
    const listing = await pollUntil(
      "q-retry's first attempt to fail",
      async () => {
        const page = await admin.listQueues({});
        const retry = page.queues.find((q) => q.userId === "q-retry");
        return retry?.waitingToRetry === 1n && retry.running === 0n ? page : undefined;
      },
      { timeoutMs: 10_000 },
    );
    assert.deepEqual(
      rows(listing.queues).find(([userId]) => userId === "q-retry"),
      ["q-retry", 1, 0, 1, 0, false],
    );
    const backlog = (q: QueueSummary): number => Number(q.queued + q.waitingToRetry);
    const order = [...listing.queues].sort(
      (a, b) => backlog(b) - backlog(a) || (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0),
    );
    assert.deepEqual(
      listing.queues.map((q) => q.userId),
      order.map((q) => q.userId),
      "by backlog (queued + waiting to retry), then user id",
    );
    assert.ok(
      listing.queues.findIndex((q) => q.userId === "q-retry") < listing.queues.findIndex((q) => q.userId === "q-small"),
    );
  });
});

describe("ListQueues on a Redis Cluster (3 masters)", () => {
  let cluster: TestRedisCluster;
  let tollgate: TestServer;
  before(async () => {
    cluster = await TestRedisCluster.start({ replicasPerMaster: 0 });
    tollgate = await serve(cluster.url);
  });
  after(async () => {
    await tollgate?.close();
    await cluster?.stop();
  });
  listsEveryUser(() => tollgate);
});
