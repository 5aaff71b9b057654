/**
 * The files Backstop reads beside its code at run time: package.json (its name, version and
 * repository), the catalog's SQL migrations and the GitHub workflow template. From a checkout
 * or the npm package they are files next to the modules that read them. The GitHub Action and
 * the single executable each run one bundled script with nothing next to it, so
 * scripts/bundle.ts defines BACKSTOP_BUNDLED_FILES: those files' contents, keyed by their path
 * in the repository. Null when Backstop runs from its files.
 */
declare const BACKSTOP_BUNDLED_FILES: Readonly<Record<string, string>> | undefined;

export const bundledFiles: Readonly<Record<string, string>> | null = typeof BACKSTOP_BUNDLED_FILES === 'undefined' ? null : BACKSTOP_BUNDLED_FILES;

/** The single executable's own script, again as one of its assets: what its threads run. */
export const EXECUTABLE_SCRIPT_ASSET = 'backstop.cjs';
