// Preloaded into `tollgate serve` by `npm run bench -- --profile`:
//   NODE_OPTIONS="--import <this file>" BENCH_CPU_PROF_DIR=<dir>
// (node refuses --cpu-prof in NODE_OPTIONS, and cluster workers inherit the
// environment). In each cluster worker it runs V8's sampling profiler from
// start-up and writes <dir>/worker-<pid>.cpuprofile when the process exits;
// the primary is left alone. Profiling starts on SIGURG (after the bench's
// warm-up, so start-up and JIT warm-up stay out of the profile).
import cluster from "node:cluster";
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.BENCH_CPU_PROF_DIR;
if (dir && cluster.isWorker) {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 1000 });
  let started = false;
  process.on("SIGURG", () => {
    if (!started) session.post("Profiler.start");
    started = true;
  });
  process.once("exit", () => {
    if (!started) return;
    // The in-process inspector answers synchronously, so this runs within "exit".
    session.post("Profiler.stop", (error, result) => {
      if (!error) writeFileSync(join(dir, `worker-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
