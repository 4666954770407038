// The contract: the protos are lint-clean (buf lint), and the committed gen/
// is exactly what the protos generate (TypeScript always; Go when
// protoc-gen-go and protoc-gen-go-grpc are installed).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join, relative, resolve } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const BUF = resolve("node_modules/.bin/buf");
const GO_PLUGINS = ["protoc-gen-go", "protoc-gen-go-grpc"];
const GO_MODULE_FILES = new Set(["go.mod", "go.sum"]);

async function files(root: string, ignore: ReadonlySet<string> = new Set()): Promise<string[]> {
  if (!existsSync(root)) return [];
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && !ignore.has(entry.name))
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .sort();
}

/** Asserts that two trees hold the same files with the same bytes. */
async function assertSameTree(generated: string, committed: string, ignore?: ReadonlySet<string>): Promise<void> {
  const want = await files(generated, ignore);
  const have = await files(committed, ignore);
  assert.ok(want.length > 0, `the generator wrote nothing under ${generated}`);
  assert.deepEqual(have, want, `files under ${committed} (left) and what the protos generate (right)`);
  for (const file of want) {
    const [a, b] = await Promise.all([
      readFile(join(generated, file), "utf8"),
      readFile(join(committed, file), "utf8"),
    ]);
    assert.ok(a === b, `${join(committed, file)} differs from what the protos generate: run npm run generate`);
  }
}

/** Where each Go plugin is (the PATH, or where `go install` put it), or undefined. */
async function findGoPlugins(): Promise<{ missing: string[]; goBin: string | undefined }> {
  // scripts/go-tools.js is the helper scripts/generate.js uses.
  const goTools = (await import(new URL("../../scripts/go-tools.js", import.meta.url).href)) as {
    goBinDirectory(): string | undefined;
  };
  const goBin = goTools.goBinDirectory();
  const dirs = [...(goBin ? [goBin] : []), ...(process.env.PATH ?? "").split(delimiter).filter(Boolean)];
  const missing = GO_PLUGINS.filter((plugin) => !dirs.some((dir) => existsSync(join(dir, plugin))));
  return { missing, goBin };
}

test("buf lint is clean", async () => {
  const { stdout, stderr } = await run(BUF, ["lint"], { timeout: 30_000 }).catch(
    (error: { stdout?: string; stderr?: string }) => assert.fail(`buf lint failed:\n${error.stdout}${error.stderr}`),
  );
  assert.equal(stdout.trim(), "", "buf lint reports nothing");
  assert.equal(stderr.trim(), "");
});

let out: string;
let goMissing: string[] = [];

before(async () => {
  out = await mkdtemp(join(tmpdir(), "tollgate-gen-"));
  const { missing } = await findGoPlugins();
  goMissing = missing;
  if (missing.length === 0) {
    await run(process.execPath, ["scripts/generate.js", "--out", out], { timeout: 60_000 });
  } else {
    // scripts/generate.js needs the Go plugins; without them generate the
    // TypeScript half alone, with buf.gen.yaml's protoc-gen-es entry.
    const template = {
      version: "v2",
      plugins: [
        {
          local: ["node", "node_modules/@bufbuild/protoc-gen-es/bin/protoc-gen-es"],
          out: "gen/ts",
          opt: ["target=ts", "import_extension=js"],
          include_imports: false,
        },
      ],
    };
    await run(BUF, ["generate", "--template", JSON.stringify(template), "--output", out], { timeout: 60_000 });
  }
});
after(async () => {
  if (out) await rm(out, { recursive: true, force: true });
});

test("gen/ts is what the protos generate", async () => {
  await assertSameTree(join(out, "gen", "ts"), "gen/ts");
});

test("gen/go is what the protos generate (go.mod and go.sum aside)", async (t) => {
  if (goMissing.length > 0) {
    const reason = `Go half skipped: ${goMissing.join(" and ")} not found on PATH or in \`go env GOPATH\`/bin; gen/go was not checked`;
    console.log(`contract.test.ts: ${reason}`);
    t.skip(reason);
    return;
  }
  await assertSameTree(join(out, "gen", "go"), "gen/go", GO_MODULE_FILES);
});
