// The dashboard in a real browser (Debian's chromium, headless, driven by
// puppeteer-core) against `tollgate serve` with auth on: it asks for a key,
// counts a queue of 25 down to drained, pauses and resumes a queue from the
// page, requeues a dead letter, shows a user's key only its own user, and
// leaves screenshots in test-artifacts/.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { createPolicyClient, createTollgateClient } from "../../src/client/client.js";
import { ADMIN_KEY, ALICE_KEY, WORKER_KEY, writeKeyFile } from "../support/api-keys.js";
import { RawWorker } from "../support/raw-worker.js";
import { pollUntil } from "../support/expect.js";
import { usePrivateRedis } from "../support/fixture.js";
import { type ServeProcess, serveSettings, startServeWithHttpPort } from "../support/serve-process.js";
import { firstSnapshot } from "../support/watch.js";

const FIXTURE_HANDLERS = fileURLToPath(new URL("../fixtures/handlers.ts", import.meta.url));
const ARTIFACTS = fileURLToPath(new URL("../../test-artifacts/", import.meta.url));
/** Debian's chromium unless CHROME_PATH names another; .ci/run installs it. */
const CHROME = process.env.CHROME_PATH ?? "/usr/bin/chromium";
const TIMEOUT_MS = 30_000;

const ctx = usePrivateRedis("dashboard");

describe("the dashboard in a real browser", { skip: existsSync(CHROME) ? false : `no browser at ${CHROME}` }, () => {
  let serve: ServeProcess;
  let browser: Browser;
  let base: string;
  let log: string;

  before(async () => {
    const keys = await writeKeyFile(ctx.dir);
    log = join(ctx.dir, "fixture.log");
    const started = await startServeWithHttpPort({
      ...serveSettings(ctx.redis.url, ctx.dir),
      TOLLGATE_AUTH_KEYS: keys,
      TOLLGATE_RATE_LIMITS: "5/1s",
      TOLLGATE_HANDLER: FIXTURE_HANDLERS,
      TOLLGATE_FIXTURE_LOG: log,
      TOLLGATE_MAX_ATTEMPTS: "1",
    });
    serve = started.serve;
    base = `http://127.0.0.1:${started.httpPort}`;
    browser = await puppeteer.launch({
      executablePath: CHROME,
      headless: true,
      // As root (CI) chromium needs --no-sandbox; /dev/shm may be small.
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
  });
  after(async () => {
    await browser?.close();
    serve?.child.kill("SIGTERM");
    await serve?.exited;
  });

  const admin = () => createTollgateClient({ baseUrl: `http://127.0.0.1:${serve.port}`, apiKey: ADMIN_KEY });

  const problemsOf = new WeakMap<Page, string[]>();

  /** A page of its own (its own session storage), signed in with `key`, at `hash`. */
  async function openWith(key: string, hash: string): Promise<Page> {
    // One page at a time: an earlier test's page, still polling, only loads the machine.
    for (const context of browser.browserContexts())
      if (context !== browser.defaultBrowserContext()) await context.close();
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    const problems: string[] = [];
    problemsOf.set(page, problems);
    page.on("requestfailed", (request) =>
      problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`),
    );
    page.on("pageerror", (error) => problems.push(String(error)));
    page.on("error", (error) => problems.push(`the page crashed: ${String(error)}`));
    page.on("console", (message) => {
      if (message.type() === "error" && !/status of 40[13]/.test(message.text())) problems.push(message.text());
    });
    await page.goto(`${base}/#/`);
    // No key yet: the page asks for one.
    await shown(page, "input[name=api-key]");
    await page.type("input[name=api-key]", key);
    await Promise.all([page.waitForNavigation(), page.click(".key-form button[type=submit]")]);
    await page.goto(`${base}/${hash}`);
    assert.deepEqual(problems, [], "no script errors");
    return page;
  }

  /** waitForSelector, saying on failure what the page showed. */
  async function shown(page: Page, selector: string): Promise<void> {
    try {
      await page.waitForSelector(selector);
    } catch (error) {
      const where = page.url();
      const main = await page.$eval("body", (element) => element.textContent).catch(() => "?");
      await mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, "failure.png") }).catch(() => {});
      const problems = (problemsOf.get(page) ?? []).join("; ");
      throw new Error(`${selector} never appeared at ${where}; the page showed: ${main}; problems: ${problems}`, {
        cause: error,
      });
    }
  }

  const text = (page: Page, selector: string): Promise<string> =>
    page.$eval(selector, (element) => element.textContent ?? "");

  test("serves the page with a content security policy, caching and content types", async () => {
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    assert.equal(page.headers.get("cache-control"), "no-cache");
    const script = /src="\/(app-[A-Z0-9]+\.js)"/.exec(await page.text())?.[1];
    assert.ok(script, "the page names its script");
    const asset = await fetch(`${base}/${script}`);
    assert.match(asset.headers.get("content-type") ?? "", /^text\/javascript/);
    assert.match(asset.headers.get("cache-control") ?? "", /immutable/);
  });

  test("25 tasks counted down to drained, live", async () => {
    const page = await openWith(ADMIN_KEY, "#/user/web-drain");
    await shown(page, ".counts .queued");
    await admin().submit({ userId: "web-drain" }); // opens the window: the next 24 mostly queue
    const submits = Array.from({ length: 24 }, () => admin().submit({ userId: "web-drain" }));
    await Promise.all(submits);
    const seen = new Set<number>();
    await mkdir(ARTIFACTS, { recursive: true });
    await page.setViewport({ width: 1100, height: 900 });
    let shot = false;
    let listed = 0;
    await pollUntil(
      "the page to say drained",
      async () => {
        const queued = Number(await text(page, ".counts .queued"));
        seen.add(queued);
        listed = Math.max(listed, (await page.$$("table.queued-tasks tr[data-task]")).length);
        if (!shot && queued > 0 && queued < 20) {
          // Mid-drain: the test's artifact.
          shot = true;
          await page.screenshot({ path: join(ARTIFACTS, "dashboard-user.png") });
        }
        return (await text(page, ".counts .eta")) === "drained" && (await text(page, ".counts .done")) === "25";
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const counted = [...seen].filter((queued) => queued > 0);
    assert.ok(counted.length >= 2, `the page showed the queue shrink, saw queued = ${[...seen].join(", ")}`);
    assert.ok(listed > 0, "the page listed the queued tasks");
    await page.goto(`${base}/#/`);
    await shown(page, ".chart canvas");
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-queues.png") });
  });

  test("pause and resume from the page", async () => {
    for (let i = 0; i < 10; i++)
      await admin().submit({ userId: "web-pause", kind: "slow", payload: new TextEncoder().encode("50") });
    const page = await openWith(ADMIN_KEY, "#/user/web-pause");
    await shown(page, "button[name=pause]");
    await page.click("button[name=pause]");
    await shown(page, "h1 .badge.paused");
    assert.equal((await firstSnapshot(admin(), "web-pause")).paused, true, "paused in Tollgate, not just on the page");
    await page.click("button[name=resume]");
    await shown(page, "button[name=pause]");
    assert.equal((await firstSnapshot(admin(), "web-pause")).paused, false);
  });

  test("a dead letter requeued from the page runs again", async () => {
    const dead = await admin().submit({ userId: "web-dead", kind: "broken" });
    const page = await openWith(ADMIN_KEY, "#/user/web-dead");
    const row = `tr[data-task="${dead.taskId}"] button[name=requeue]`;
    await shown(page, row);
    await page.click(row);
    await pollUntil("the requeued task's second run", async () => {
      const runs = (await readFile(log, "utf8")).split("\n").filter((line) => line.includes(dead.taskId));
      return runs.length >= 2;
    });
  });

  test("a user's policy previewed and changed from the page; a plan saved on the plans page", async () => {
    const page = await openWith(ADMIN_KEY, "#/user/web-vip");
    await shown(page, ".policy .effective");
    assert.equal(await text(page, ".policy .effective"), "5/1s", "the default plan: TOLLGATE_RATE_LIMITS");
    await page.type("input[name=limits]", "7/1s,100/1m");
    await page.click("button[name=preview]");
    await shown(page, ".forecast");
    assert.match(await text(page, ".forecast"), /Nothing is queued|queued/);
    const policy = createPolicyClient({ baseUrl: `http://127.0.0.1:${serve.port}`, apiKey: ADMIN_KEY });
    assert.equal(
      (await policy.getUserPolicy({ userId: "web-vip" })).effective?.limits,
      "5/1s",
      "a preview changes nothing",
    );
    await page.click("button[name=apply]");
    await pollUntil(
      "the page to show the new policy",
      async () => (await text(page, ".policy .effective")) === "7/1s,100/1m",
    );
    const stored = await policy.getUserPolicy({ userId: "web-vip" });
    assert.equal(stored.effective?.limits, "7/1s,100/1m");
    assert.equal(stored.assignment?.assignment.case, "override");

    await page.goto(`${base}/#/plans`);
    await shown(page, "input[name=plan-name]");
    await page.type("input[name=plan-name]", "gold");
    await page.type("input[name=plan-limits]", "10/1s,1000/1m");
    await page.click("button[name=save-plan]");
    await shown(page, 'tr[data-plan="gold"]');
    assert.equal((await policy.getPlan({ name: "gold" })).plan?.policy?.limits, "10/1s,1000/1m");
  });

  test("the workers page lists a connected worker with its kinds and load", async () => {
    const worker = new RawWorker(`http://127.0.0.1:${serve.port}`, {
      apiKey: WORKER_KEY,
      kinds: ["web-render"],
      concurrency: 3,
      name: "page-worker",
      run: () => "hold",
    });
    try {
      await pollUntil("the welcome", () => worker.welcome);
      await admin().submit({ userId: "web-worker", kind: "web-render" });
      await pollUntil("the task sent to the worker", () => worker.inFlight.size === 1);
      const page = await openWith(ADMIN_KEY, "#/workers");
      const row = `tr[data-worker="${worker.welcome!.workerId}"]`;
      await shown(page, row);
      await pollUntil("the row to show 1 of 3 in flight", async () => {
        const cells = await page.$$eval(`${row} td`, (tds) => tds.map((td) => td.textContent ?? ""));
        return cells[0] === "page-worker" && cells[1] === "web-render" && cells[2] === "1 / 3";
      });
      await mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, "workers.png") });
    } finally {
      await worker.kill();
    }
  });

  test("a user's key: only its own queue", async () => {
    const page = await openWith(ALICE_KEY, "#/");
    await shown(page, ".message");
    assert.match(await text(page, ".message"), /acts for one user/);
    await page.goto(`${base}/#/user/bob`);
    await pollUntil("the page to say PERMISSION_DENIED", async () =>
      (await text(page, ".message").catch(() => "")).includes("PERMISSION_DENIED"),
    );
    await page.goto(`${base}/#/user/alice`);
    await shown(page, ".counts .queued");
  });
});
