// The package's TypeScript client library as a consumer gets it.
// `npm pack` builds dist/ (the prepare script, scripts/build.js) and the tarball carries it;
// installed into a project, `import ... from "tollgate"` resolves through
// package.json "exports" to JavaScript with .d.ts types, and the example in
// docs/api.md (Clients) runs as written against a real `tollgate serve`.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { describeRun, runCommand } from "../support/command.js";
import { TestRedis } from "../support/redis.js";
import { startServeProcess, type ServeProcess } from "../support/serve-process.js";

const ROOT = resolve(".");

let redis: TestRedis;
let server: ServeProcess;
let dir: string;
/** A project that installed the package: node_modules/tollgate is the unpacked tarball. */
let project: string;

before(async () => {
  redis = await TestRedis.start();
  dir = await mkdtemp(join(tmpdir(), "tollgate-library-"));
  project = join(dir, "project");
  await mkdir(join(project, "node_modules", "tollgate"), { recursive: true });
  // The docs/api.md example assumes the default policy, 1/1s,20/1m.
  server = await startServeProcess({
    TOLLGATE_REDIS_URL: redis.url,
    TOLLGATE_HOST: "127.0.0.1",
    TOLLGATE_PORT: "0",
    TOLLGATE_WORKERS: "2",
    TOLLGATE_DATA_DIR: join(dir, "data"),
    TOLLGATE_RATE_LIMITS: "1/1s,20/1m",
  });
});
after(async () => {
  server?.child.kill("SIGTERM");
  await server?.exited;
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

test("npm pack builds dist/ (JavaScript and .d.ts) and ships it; installed, the package's own dependencies suffice", async () => {
  const pack = await runCommand("npm", ["pack", "--json", "--pack-destination", dir], { cwd: ROOT, timeoutMs: 60_000 });
  assert.equal(pack.code, 0, `npm pack: ${describeRun(pack)}`);
  // prepare's output comes first on stdout; the JSON report is the rest.
  const report = JSON.parse(pack.stdout.slice(pack.stdout.indexOf("\n[") + 1)) as [
    { filename: string; files: { path: string }[] },
  ];
  const files = report[0].files.map((file) => file.path);
  for (const file of [
    "dist/src/index.js",
    "dist/src/index.d.ts",
    "dist/src/client/client.js",
    "dist/gen/ts/tollgate/v1/task_service_pb.js",
    "dist/gen/ts/tollgate/v1/task_service_pb.d.ts",
    "bin/tollgate.js",
  ]) {
    assert.ok(files.includes(file), `${file} is in the tarball; it holds:\n${files.join("\n")}`);
  }
  assert.deepEqual(
    files.filter((file) => /^(test|bench|gen\/go|\.ci)\//.test(file)),
    [],
    "no tests, benchmarks or Go code",
  );

  // Unpack it as npm install would, and give it the dependencies it declares (and nothing else).
  const untar = await runCommand("tar", [
    "-xzf",
    join(dir, report[0].filename),
    "--strip-components=1",
    "-C",
    join(project, "node_modules", "tollgate"),
  ]);
  assert.equal(untar.code, 0, describeRun(untar));
  const manifest = JSON.parse(await readFile(join(project, "node_modules", "tollgate", "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
  };
  for (const name of Object.keys(manifest.dependencies)) {
    await mkdir(join(project, "node_modules", name, ".."), { recursive: true });
    await symlink(join(ROOT, "node_modules", name), join(project, "node_modules", name));
  }
  // Every package the built library imports is one it declares.
  const dist = join(project, "node_modules", "tollgate", "dist");
  const built = (await readdir(dist, { recursive: true })).filter((file) => file.endsWith(".js"));
  for (const file of built) {
    const source = await readFile(join(dist, file), "utf8");
    // Import and export statements and dynamic imports, not the words of a comment.
    const statements = source.matchAll(/^(?:import|export)\b[^;]*?\bfrom "([^".][^"]*)"|\bimport\("([^".][^"]*)"\)/gm);
    for (const [, fromStatement, fromCall] of statements) {
      const specifier = fromStatement ?? fromCall;
      const name = specifier!.startsWith("node:")
        ? "node:"
        : specifier!
            .split("/")
            .slice(0, specifier!.startsWith("@") ? 2 : 1)
            .join("/");
      assert.ok(
        name === "node:" || name in manifest.dependencies,
        `dist/${file} imports ${specifier}, not a dependency`,
      );
    }
  }
});

test("a TypeScript project type-checks against the installed package's .d.ts", async () => {
  // The project's own @types/node, as any TypeScript project for Node has.
  await mkdir(join(project, "node_modules", "@types"), { recursive: true });
  await symlink(join(ROOT, "node_modules", "@types", "node"), join(project, "node_modules", "@types", "node")).catch(
    () => {},
  );
  await writeFile(
    join(project, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        module: "NodeNext",
        moduleResolution: "NodeNext",
        target: "ES2022",
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ["node"],
      },
      files: ["check.ts"],
    }),
  );
  await writeFile(join(project, "package.json"), JSON.stringify({ name: "project", private: true, type: "module" }));
  await writeFile(
    join(project, "check.ts"),
    `import { Code, ConnectError, Disposition, createTollgateClient, retryAfterMs, submitMany, type SubmitResponse, type TollgateClient } from "tollgate";
const client: TollgateClient = createTollgateClient({ baseUrl: "http://localhost:50051", apiKey: "k" });
const answers: Promise<SubmitResponse[]> = submitMany(client, [{ userId: "123" }], 4);
const started = (answer: SubmitResponse): boolean => answer.disposition === Disposition.STARTED;
const retry = (error: unknown): number | undefined => (error instanceof ConnectError && error.code === Code.ResourceExhausted ? retryAfterMs(error) : undefined);
// @ts-expect-error user_id is a string: the client is typed, not any
void client.submit({ userId: 123 });
void answers; void started; void retry;
`,
  );
  const tsc = await runCommand(
    process.execPath,
    [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", project],
    { timeoutMs: 60_000 },
  );
  assert.equal(tsc.code, 0, `tsc in the consuming project: ${describeRun(tsc)}`);
});

test("docs/api.md's TypeScript example runs as written, with node, against tollgate serve", async () => {
  const page = await readFile(join(ROOT, "docs", "api.md"), "utf8");
  const example = /\n## Clients\n[\s\S]*?```javascript\n([\s\S]*?)```/.exec(page)?.[1];
  assert.ok(example, "docs/api.md's Clients section has a javascript example");
  await writeFile(join(project, "example.mjs"), example);
  const run = await runCommand(process.execPath, ["example.mjs"], {
    cwd: project,
    env: { ...process.env, TOLLGATE_URL: `http://127.0.0.1:${server.port}` },
    timeoutMs: 20_000,
  });
  assert.equal(run.code, 0, `node example.mjs (it must also exit by itself): ${describeRun(run)}`);
  const lines = run.stdout.trim().split("\n");
  const drained = lines.indexOf("drained");
  assert.ok(drained >= 0, `the watch ends with "drained":\n${run.stdout}`);
  assert.ok(
    lines.slice(0, drained).every((line) => /^\d+ queued, \d+ running$/.test(line)),
    run.stdout,
  );
  assert.match(lines[drained + 1] ?? "", /^task \d+\.[\w-]{22} is (QUEUED|RUNNING|SUCCEEDED)$/);
  assert.match(lines[drained + 2] ?? "", /^over the limit: .+; retry in [1-9]\d* ms$/);
  assert.equal(lines.length, drained + 3, run.stdout);
});
