/**
 * The load generator of `npm run bench:api`, in its own process so that it does not share an
 * event loop with the server it measures. Open loop: request i is due at start + i / rate,
 * whatever happened to the ones before, and its latency is counted from when it was due (so a
 * stalled server cannot hide its stall by slowing the client down). Bounded: rate × seconds
 * requests, at most `maxInFlight` at once (a request that would exceed it is counted as dropped).
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface LoadJob {
  baseUrl: string;
  token: string;
  paths: string[];
  rate: number;
  seconds: number;
  maxInFlight: number;
}

export interface LoadResult {
  sent: number;
  ok: number;
  errors: number;
  dropped: number;
  /** Milliseconds from due time to the end of the response body, sorted ascending. */
  latenciesMs: number[];
  elapsedMs: number;
}

async function runLoad(job: LoadJob): Promise<LoadResult> {
  const total = Math.round(job.rate * job.seconds);
  const headers = { authorization: `Bearer ${job.token}` };
  const latencies: number[] = [];
  let ok = 0;
  let errors = 0;
  let dropped = 0;
  let inFlight = 0;
  const pending: Promise<void>[] = [];
  // Warm the connection pool a little before the clock starts.
  for (let i = 0; i < 20; i++) await (await fetch(job.baseUrl + job.paths[i % job.paths.length], { headers })).arrayBuffer();
  const start = performance.now() + 100;
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / job.rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    if (inFlight >= job.maxInFlight) {
      dropped++;
      continue;
    }
    inFlight++;
    pending.push(
      fetch(job.baseUrl + job.paths[i % job.paths.length]!, { headers })
        .then(async (response) => {
          await response.arrayBuffer();
          if (response.status === 200) {
            ok++;
            latencies.push(performance.now() - due);
          } else errors++;
        })
        .catch(() => {
          errors++;
        })
        .finally(() => {
          inFlight--;
        }),
    );
  }
  await Promise.all(pending);
  return { sent: total - dropped, ok, errors, dropped, latenciesMs: latencies.sort((a, b) => a - b), elapsedMs: performance.now() - start };
}

process.once('message', (job: LoadJob) => {
  runLoad(job).then(
    (result) => process.send!({ type: 'result', result }, () => process.disconnect()),
    (error) => process.send!({ type: 'error', message: String((error as Error)?.stack ?? error) }, () => process.disconnect()),
  );
});
