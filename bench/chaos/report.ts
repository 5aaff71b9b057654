/** Turns a chaos result into the markdown table that is printed and kept in bench/results: pure formatting. */
import type { MachineDescription } from '../machine.ts';
import { invariantNames, type InvariantName } from './catalogChecks.ts';
import { describeFaultAction, faultKinds } from './plan.ts';
import type { ChaosResult } from './run.ts';

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
/** A message inside a table cell: one line, no column breaks, shortened. */
const cell = (text: string) => text.replace(/\s+/g, ' ').replace(/\|/g, '\\|').slice(0, 200);
const roleOf = (process: string | undefined) => (process === undefined ? '' : process.startsWith('worker') ? 'worker' : process);

function percentile(sorted: number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export function renderChaosReport(result: ChaosResult, context: { command: string; machine: MachineDescription }): string {
  const { options } = result;
  const { machine } = context;
  const bound = options.leaseTtlMs + options.reaperIntervalMs + 1000;
  const out: string[] = [
    '# Chaos run',
    '',
    `\`${context.command}\` — ${machine.date.slice(0, 10)}, took ${(result.durationMs / 60_000).toFixed(1)} min.`,
    '',
    `- Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGB} GB; ${machine.kernel}; Node ${machine.node}`,
    `- ${options.workers} \`backstop worker\` processes and 1 \`backstop server\` (concurrency ${options.concurrency} each), restarted when they exit; ` +
      `\`backstop run RUN_ID\` processes for the external targets (${result.runnersLaunched} started)`,
    `- Lease TTL ${seconds(options.leaseTtlMs)}, heartbeat ${seconds(options.heartbeatIntervalMs)}, reaper every ${seconds(options.reaperIntervalMs)}: ` +
      `bound after a kill = TTL + reaper interval + 1 s = ${seconds(bound)}`,
    `- Seed ${options.seed}: ${result.queued.length} runs queued over ${(result.plan.windowMs / 1000).toFixed(0)} s ` +
      `(${result.queued.filter((run) => run.via === 'api' && !run.apiFallback).length} through the API, the rest by SQL), ${result.plan.faults.length} faults`,
    `- Catalog and sources: two embedded PostgreSQL servers; stores: local disk, s3rver, and s3rver behind a proxy that can fail writes`,
    '',
    '## Targets',
    '',
    '| target | measured | met |',
    '|---|---|---|',
  ];
  const bounded = result.timings.filter((timing) => timing.boundMs !== null).flatMap((timing) => timing.ended.map((ended) => ended.afterMs));
  const longestBounded = bounded.length > 0 ? Math.max(...bounded) : undefined;
  out.push(`| 0 violations over ${result.queued.length} runs with faults | ${result.violations.length} violation(s) | ${result.violations.length === 0 ? 'yes' : '**no**'} |`);
  out.push(
    `| kill -9 / SIGSTOP → end of the held attempt ≤ ${seconds(bound)} (p100) | ${longestBounded === undefined ? 'nothing held' : `${seconds(longestBounded)} over ${bounded.length} attempt(s)`} | ${longestBounded === undefined ? '—' : longestBounded <= bound ? 'yes' : '**no**'} |`,
  );

  out.push('', '## Faults injected', '');
  out.push(
    'Attempts caught: run attempts held by the process (or in flight on the resource) when the fault struck. "Ended after": from the fault to the catalog ending that attempt (terminal, or handed back to the queue for another attempt).',
    '',
  );
  out.push('| fault | planned | struck | skipped | attempts caught | ended after: p50 | ended after: max |', '|---|---:|---:|---:|---:|---:|---:|');
  const groups = new Map<string, typeof result.faults>();
  for (const kind of faultKinds) {
    for (const fault of result.faults.filter((candidate) => candidate.planned.kind === kind)) {
      const key = `${kind}${fault.planned.process ? ` · ${roleOf(fault.planned.process)}` : ''}`;
      groups.set(key, [...(groups.get(key) ?? []), fault]);
    }
  }
  for (const [key, faults] of groups) {
    const ids = new Set(faults.map((fault) => fault.planned.id));
    const ended = result.timings
      .filter((timing) => ids.has(timing.faultId))
      .flatMap((timing) => timing.ended.map((one) => one.afterMs))
      .sort((a, b) => a - b);
    const struck = faults.filter((fault) => fault.at !== null);
    out.push(
      `| ${key} | ${faults.length} | ${struck.length} | ${faults.length - struck.length} | ${struck.reduce((sum, fault) => sum + fault.held.length, 0)} | ${ended.length ? seconds(percentile(ended, 50)!) : '—'} | ${ended.length ? seconds(ended.at(-1)!) : '—'} |`,
    );
  }

  out.push('', '## Final statuses', '', '| status | runs |', '|---|---:|');
  for (const [status, count] of Object.entries(result.statuses).sort((a, b) => b[1] - a[1])) out.push(`| ${status} | ${count} |`);
  out.push('', `${result.retried} run(s) needed more than one attempt. Errors of the runs that did not succeed:`, '', '| status: error code | runs | first message |', '|---|---:|---|');
  for (const [code, count] of Object.entries(result.errorCodes).sort((a, b) => b[1] - a[1])) out.push(`| ${code} | ${count} | ${cell(result.errorExamples[code] ?? '')} |`);

  out.push('', '## Invariants', '', '| invariant | violations |', '|---|---:|');
  for (const [name, description] of Object.entries(invariantNames) as [InvariantName, string][]) {
    out.push(`| ${description} | ${result.violations.filter((violation) => violation.invariant === name).length} |`);
  }
  out.push(
    '',
    `Checked: ${result.queued.length} runs and ${result.events} events read from the catalog with plain SQL and walked through the run lifecycle; ` +
      `${result.artifactsChecked} succeeded artifacts read back from the stores (manifest and every file hashed by the checker); ` +
      `${result.store.objects} objects (${(result.store.bytes / 1e6).toFixed(1)} MB) listed after \`backstop prune --grace-period 0\` ` +
      `(${result.garbageCollection.prefixesDeleted} leftover prefixes deleted by it), ${result.store.live} of them live, ${result.store.unknownKept ?? 0} in complete backups of runs not succeeded (kept and reported as unknown, by design); ` +
      `${result.store.pendingMultipartUploads} multipart upload(s) left pending; ${result.restores.length} backups restored with \`age\`/\`zstd\`/\`pg_restore\` ` +
      `(${result.restores.filter((restore) => restore.ok).length} identical to their source); the catalog watched ${result.monitorPasses} times for overdue runs while the chaos ran.`,
  );
  if (result.garbageCollection.errors.length > 0) out.push('', `Garbage collection errors: ${result.garbageCollection.errors.join('; ')}`);

  out.push('', '## Violations', '');
  if (result.violations.length === 0) out.push('None.');
  for (const violation of result.violations.slice(0, 100)) out.push(`- **${violation.invariant}**${violation.runId ? ` run ${violation.runId}` : ''}: ${violation.detail}`);
  if (result.violations.length > 100) out.push(`- … and ${result.violations.length - 100} more`);

  const caught = result.caughtByTargetGone;
  out.push('', '## Runs whose source went away mid-dump', '');
  if (caught.length === 0) out.push('None caught.');
  else out.push('| run | attempt | final status | error |', '|---|---:|---|---|');
  for (const one of caught) out.push(`| ${one.runId.slice(0, 8)} | ${one.attempt} | ${one.status} | ${one.error ? cell(one.error) : '—'} |`);

  out.push('', '## Process exits', '', '| process | exit | count | last error printed |', '|---|---|---:|---|');
  const exits = new Map<string, { count: number; error: string | null }>();
  for (const exit of result.exits) {
    const key = `${exit.name.startsWith('runner-') ? 'runner' : exit.name.replace(/-\d+$/, '')} | ${exit.signal ?? `code ${exit.code}`}${exit.expected ? ' (signalled by the chaos engine)' : ''}`;
    const known = exits.get(key);
    exits.set(key, { count: (known?.count ?? 0) + 1, error: exit.error ?? known?.error ?? null });
  }
  for (const [key, { count, error }] of [...exits].sort()) out.push(`| ${key} | ${count} | ${error ? cell(error) : ''} |`);

  out.push('', '## Fault log', '', '| # | planned | struck | fault | hit | what happened | attempts ended after (max) |', '|---:|---:|---:|---|---|---|---:|');
  for (const fault of [...result.faults].sort((a, b) => a.planned.id - b.planned.id)) {
    const timing = result.timings.find((candidate) => candidate.faultId === fault.planned.id);
    const longest = timing && timing.ended.length > 0 ? seconds(Math.max(...timing.ended.map((one) => one.afterMs))) : '—';
    const struck = fault.at === null ? '—' : `+${((fault.at - result.startedAt) / 1000).toFixed(1)} s`;
    out.push(
      `| ${fault.planned.id} | +${(fault.planned.at / 1000).toFixed(1)} s | ${struck} | ${describeFaultAction(fault.planned)} | ${fault.hit || '—'} | ${fault.skipped ? `skipped: ${fault.skipped}` : fault.detail} | ${longest} |`,
    );
  }
  out.push('', `The same seed gives the same schedule: \`npm run chaos -- --runs ${options.runs} --seed ${options.seed}\`.`, '');
  return out.join('\n');
}
