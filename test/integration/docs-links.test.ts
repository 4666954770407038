// The README and docs/ link to each other by relative path and #anchor. Every
// such link must land: the file exists inside this repository, and an anchor
// matches a heading of the page it points to (GitHub's slugs). No I/O but
// reading the Markdown files.
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DOCS = join(ROOT, "docs");
const PAGES = [
  join(ROOT, "README.md"),
  ...readdirSync(DOCS)
    .filter((name) => name.endsWith(".md"))
    .map((name) => join(DOCS, name)),
];

/** Markdown outside fenced code blocks (a `# comment` in a sh block is not a heading). */
function prose(markdown: string): string[] {
  const lines: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split("\n")) {
    const opener = /^\s*(```+|~~~+)/.exec(line)?.[1];
    if (fence === undefined && opener !== undefined) fence = opener[0]!.repeat(opener.length);
    else if (fence !== undefined && line.trim().startsWith(fence)) fence = undefined;
    else if (fence === undefined) lines.push(line);
  }
  return lines;
}

/** GitHub's heading slug: lowercase, punctuation other than '-' and '_' dropped, spaces to '-'. */
function slug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // a link's text only
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** The anchors a page's headings get, with GitHub's -1, -2 … for repeats. */
function anchors(file: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const line of prose(readFileSync(file, "utf8"))) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const base = slug(heading);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count === 0 ? base : `${base}-${count}`);
  }
  return result;
}

/** Every inline link target in a page's prose, inline code left out. */
function links(file: string): string[] {
  const text = prose(readFileSync(file, "utf8"))
    .join("\n")
    .replace(/`[^`\n]*`/g, "``");
  return [...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((match) => match[1]!);
}

test("slug follows GitHub's rules", () => {
  assert.equal(slug("The `tollgate` command"), "the-tollgate-command");
  assert.equal(slug("Auth and TLS"), "auth-and-tls");
  assert.equal(slug("`src/core/`: the rules, with no transport"), "srccore-the-rules-with-no-transport");
  assert.equal(slug("snake_case and kebab-case"), "snake_case-and-kebab-case");
});

test("every relative link and #anchor in README.md and docs/*.md lands on a file and a heading", () => {
  const broken: string[] = [];
  let checked = 0;
  for (const page of PAGES) {
    const from = relative(ROOT, page);
    for (const link of links(page)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // https:, mailto: …
      checked++;
      const [path = "", anchor] = link.split("#", 2);
      const target = path === "" ? page : resolve(dirname(page), decodeURIComponent(path));
      if (relative(ROOT, target).split(sep)[0] === "..") {
        broken.push(`${from}: ${link} leaves the repository`);
        continue;
      }
      if (!existsSync(target)) {
        broken.push(`${from}: ${link}: no file ${relative(ROOT, target) || "."}`);
        continue;
      }
      if (anchor === undefined) continue;
      if (!target.endsWith(".md") || statSync(target).isDirectory()) {
        broken.push(`${from}: ${link}: an anchor into a file that is not Markdown`);
      } else if (!anchors(target).has(anchor)) {
        broken.push(`${from}: ${link}: ${relative(ROOT, target)} has no heading #${anchor}`);
      }
    }
  }
  assert.ok(checked > 0, "found no links to check");
  assert.deepEqual(broken, [], `broken links:\n${broken.join("\n")}`);
});

test("the README's Further reading links every page in docs/", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const further = readme.split(/^## Further reading$/m)[1];
  assert.ok(further !== undefined, "README has a Further reading section");
  const linked = new Set([...further.matchAll(/\]\((docs\/[^)#\s]+)\)/g)].map((match) => match[1]));
  for (const page of PAGES.filter((page) => page.startsWith(DOCS + sep))) {
    const path = relative(ROOT, page).split(sep).join("/");
    assert.ok(linked.has(path), `Further reading links ${path}`);
  }
});
