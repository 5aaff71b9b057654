import { formatBytes } from '../core/formatBytes.ts';
import type { RunRecord } from '../operations/runRecord.ts';

/** The `--json` shape of a run: stable, secret-free. */
export function runJson(run: RunRecord) {
  return {
    id: run.id,
    kind: run.kind,
    subjectRunId: run.subjectRunId,
    target: run.targetName,
    status: run.status,
    attempt: run.attempt,
    trigger: run.trigger,
    createdAt: run.createdAt,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    deadlineAt: run.deadlineAt,
    error: run.error,
    artifact: run.artifact,
    progress: run.progress,
    verification: run.verification,
  };
}

/**
 * An option that was given but cannot apply, said on stderr (stdout stays the result, one
 * document with --json): the command goes on, since the result is the same without it.
 */
export function warn(message: string): void {
  process.stderr.write(`backstop: warning: ${message}\n`);
}

let printedJson = false;

/** Whether this process already printed its one `--json` document (an error then adds none). */
export function jsonDocumentPrinted(): boolean {
  return printedJson;
}

export function printJson(value: unknown): void {
  printedJson = true;
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** One line describing how a run ended. */
export function describeRun(run: RunRecord): string {
  const took = run.startedAt && run.finishedAt ? ` in ${formatDuration(Date.parse(run.finishedAt) - Date.parse(run.startedAt))}` : '';
  const what = run.kind === 'verify' ? `Verification ${run.id} of backup ${run.subjectRunId}` : `Run ${run.id}`;
  const base = `${what} (${run.targetName}) ${run.status}${took}`;
  if (run.error) return `${base}: [${run.error.code}] ${run.error.message}`;
  if (run.artifact) {
    const size = run.artifact.files.reduce((sum, file) => sum + file.size, 0);
    return `${base}: ${formatBytes(size)} in ${run.artifact.files.length} file(s) at ${run.artifact.storeUrl}/${run.artifact.prefix}`;
  }
  return base;
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, index) => Math.max(header.length, ...rows.map((row) => (row[index] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, index) => cell.padEnd(widths[index]!))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}
