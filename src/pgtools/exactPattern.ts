/** pg_dump pattern matching exactly one name: double quotes make it literal and case-exact. */
export function exactPattern(...names: string[]): string {
  return names.map((name) => `"${name.replaceAll('"', '""')}"`).join('.');
}
