import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));

/**
 * Writes a benchmark's markdown report as bench/results/<name>-<date>.md and
 * bench/results/latest-<name>.md; returns both paths, relative to the working folder.
 */
export async function writeResults(name: string, report: string, date: string): Promise<string[]> {
  await fs.mkdir(resultsDir, { recursive: true });
  const dated = path.join(resultsDir, `${name}-${date.slice(0, 10)}.md`);
  const latest = path.join(resultsDir, `latest-${name}.md`);
  await fs.writeFile(dated, report);
  await fs.writeFile(latest, report);
  return [dated, latest].map((file) => path.relative(process.cwd(), file));
}
