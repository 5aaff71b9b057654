/**
 * What to run to get a PostgreSQL client of a given major on this machine. A distribution's
 * own archive usually carries one major, so the command goes to the PostgreSQL project's own
 * repositories (PGDG) where a distribution's packages would not do.
 */

export type HostSystem =
  | { kind: 'github-actions' }
  | { kind: 'debian' }
  | { kind: 'macos' }
  | { kind: 'fedora'; arch: string }
  | { kind: 'rhel'; version: number | null; arch: string }
  | { kind: 'alpine' }
  | { kind: 'other' };

/** Decides the system from what the process can see: its platform, environment and /etc/os-release. */
export function hostSystemFrom(input: { platform: string; arch: string; env: Record<string, string | undefined>; osRelease: string | null }): HostSystem {
  if (input.env.GITHUB_ACTIONS === 'true' && input.platform === 'linux') return { kind: 'github-actions' };
  if (input.platform === 'darwin') return { kind: 'macos' };
  const fields = Object.fromEntries(
    (input.osRelease ?? '')
      .split('\n')
      .map((line) => /^([A-Z_]+)=("?)(.*)\2$/.exec(line.trim()))
      .filter((match) => match !== null)
      .map((match) => [match[1]!, match[3]!]),
  );
  const ids = [fields.ID ?? '', ...(fields.ID_LIKE ?? '').split(/\s+/)].filter(Boolean);
  const arch = input.arch === 'arm64' ? 'aarch64' : input.arch === 'x64' ? 'x86_64' : input.arch;
  if (ids.includes('debian') || ids.includes('ubuntu')) return { kind: 'debian' };
  if (ids[0] === 'fedora') return { kind: 'fedora', arch };
  if (ids.includes('rhel') || ids.includes('centos') || ids.includes('fedora')) {
    const version = Number.parseInt(fields.VERSION_ID ?? '', 10);
    return { kind: 'rhel', version: Number.isFinite(version) ? version : null, arch };
  }
  if (ids.includes('alpine')) return { kind: 'alpine' };
  return { kind: 'other' };
}

const PGDG_APT = (major: number) =>
  `sudo apt-get install -y postgresql-common && sudo /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y && sudo apt-get install -y postgresql-client-${major}`;

/** One sentence: "Install the PostgreSQL N client: COMMAND". */
export function clientInstallAdvice(system: HostSystem, major: number): string {
  switch (system.kind) {
    case 'github-actions':
      return `Install the PostgreSQL ${major} client on the runner: Backstop's workflow (\`backstop init github\`) does it in its "Install the PostgreSQL client" step when dispatched with pg_major ${major}; by hand, \`${PGDG_APT(major)}\` and BACKSTOP_PG_BIN=/usr/lib/postgresql/${major}/bin`;
    case 'debian':
      return `Install the PostgreSQL ${major} client from the PostgreSQL project's apt repository: \`${PGDG_APT(major)}\``;
    case 'macos':
      return `Install the PostgreSQL ${major} client with Homebrew: \`brew install postgresql@${major}\``;
    case 'fedora':
      return `Install the PostgreSQL ${major} client from the PostgreSQL project's repository: \`sudo dnf install -y https://download.postgresql.org/pub/repos/yum/reporpms/F-$(rpm -E %fedora)-${system.arch}/pgdg-fedora-repo-latest.noarch.rpm && sudo dnf install -y postgresql${major}\``;
    case 'rhel': {
      // RHEL 8 and 9 ship PostgreSQL as a module that hides the PGDG packages until disabled.
      const modular = system.version === null || system.version < 10 ? ' && sudo dnf -qy module disable postgresql' : '';
      return `Install the PostgreSQL ${major} client from the PostgreSQL project's repository: \`sudo dnf install -y https://download.postgresql.org/pub/repos/yum/reporpms/EL-${system.version ?? '$(rpm -E %rhel)'}-${system.arch}/pgdg-redhat-repo-latest.noarch.rpm${modular} && sudo dnf install -y postgresql${major}\``;
    }
    case 'alpine':
      return `Install the PostgreSQL ${major} client: \`apk add postgresql${major}-client\``;
    case 'other':
      return `Install the PostgreSQL ${major} client tools (pg_dump, pg_restore, psql) from your system's packages or the PostgreSQL project's downloads`;
  }
}
