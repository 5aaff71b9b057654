import { readFileSync } from 'node:fs';
import { bundledFiles } from './core/bundledFiles.ts';

interface PackageJson {
  version: string;
  repository: { url: string };
}

const packageJson = JSON.parse(bundledFiles?.['package.json'] ?? readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as PackageJson;

export const BACKSTOP_VERSION: string = packageJson.version;

/** OWNER/REPO of Backstop's GitHub repository, which is also its GitHub Action. */
export const BACKSTOP_REPOSITORY: string = /github\.com[/:]([^/]+\/[^/.]+)/.exec(packageJson.repository.url)?.[1] ?? '';
