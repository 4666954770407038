// Where `go install` puts binaries, or undefined when Go is absent.
import { execFileSync } from "node:child_process";
import { join } from "node:path";

export function goBinDirectory() {
  try {
    const gobin = execFileSync("go", ["env", "GOBIN"], { encoding: "utf8" }).trim();
    if (gobin) return gobin;
    return join(execFileSync("go", ["env", "GOPATH"], { encoding: "utf8" }).trim(), "bin");
  } catch {
    return undefined;
  }
}
