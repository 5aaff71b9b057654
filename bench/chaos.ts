/**
 * `npm run chaos -- --runs N --seed S`: queues N runs over several targets while faults
 * strike real Backstop processes, the catalog and the stores on a schedule derived from the
 * seed; then checks every invariant of DESIGN.md. Prints the table and writes it to
 * bench/results/chaos-<date>.md and bench/results/latest-chaos.md. Exit code 1 on any violation.
 *
 *   npm run chaos -- [--runs 200] [--seed 1] [--plan-only] [--keep] [--rate 1] [--workers 3]
 */
import { parseArgs } from 'node:util';
import { describeMachine } from './machine.ts';
import { describePlannedFault } from './chaos/plan.ts';
import { renderChaosReport } from './chaos/report.ts';
import { planFor, resolveChaosOptions, run } from './chaos/run.ts';
import { writeResults } from './writeResults.ts';

// s3rver (and the chaos proxy in front of it) listen on loopback, which the outbound guard
// refuses unless allowed.
process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS ??= '127.0.0.0/8,::1';

const usage = `npm run chaos -- [--runs 200] [--seed 1] [--rate 1] [--workers 3] [--concurrency 2] [--restore-sample N] [--plan-only] [--keep]
  --runs            runs to queue (default 200)
  --seed            seed of the schedule: the same seed gives the same runs and faults (default 1)
  --rate            runs queued per second (default 1)
  --workers         \`backstop worker\` processes besides the server (default 3)
  --concurrency     runs each worker executes at once (default 2)
  --restore-sample  succeeded backups restored with standard tools and compared (default runs/40, 4 to 25)
  --plan-only       print the schedule and exit
  --keep            keep the temporary folder (catalog, stores, process logs) even without violations
`;

function whole(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < min) {
    process.stderr.write(`--${name} must be a whole number of at least ${min}, got "${value}".\n${usage}`);
    process.exit(2);
  }
  return parsed;
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      runs: { type: 'string' },
      seed: { type: 'string' },
      rate: { type: 'string' },
      workers: { type: 'string' },
      concurrency: { type: 'string' },
      'restore-sample': { type: 'string' },
      'plan-only': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  }));
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n${usage}`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(usage);
  process.exit(0);
}
const rate = args.rate === undefined ? undefined : Number(args.rate);
if (rate !== undefined && !(Number.isFinite(rate) && rate > 0)) {
  process.stderr.write(`--rate must be a number of runs per second above 0, got "${args.rate}".\n${usage}`);
  process.exit(2);
}
const options = {
  runs: whole('runs', args.runs, 200),
  seed: whole('seed', args.seed, 1, 0),
  workers: whole('workers', args.workers, 3),
  concurrency: whole('concurrency', args.concurrency, 2),
  arrivalRate: rate,
  restoreSample: args['restore-sample'] === undefined ? undefined : whole('restore-sample', args['restore-sample'], 0, 0),
  keepFiles: args.keep ? ('always' as const) : ('on-violation' as const),
};
const command = `npm run chaos -- ${process.argv.slice(2).join(' ')}`.trim();

if (args['plan-only']) {
  const plan = planFor(resolveChaosOptions(options));
  process.stdout.write(`seed ${plan.seed}: ${plan.runs.length} runs over ${(plan.windowMs / 1000).toFixed(0)} s, ${plan.faults.length} faults\n`);
  for (const fault of plan.faults) process.stdout.write(`${describePlannedFault(fault)}\n`);
  process.exit(0);
}

try {
  const result = await run(options);
  const report = renderChaosReport(result, { command, machine: await describeMachine() });
  process.stdout.write(report);
  const written = await writeResults('chaos', report, new Date().toISOString());
  process.stderr.write(`wrote ${written.join(' and ')}\n`);
  process.exitCode = result.violations.length === 0 ? 0 : 1;
} catch (error) {
  process.stderr.write(`chaos run failed: ${(error as Error).stack ?? error}\n`);
  process.exitCode = 2;
}
