import { BackstopError } from './errors.ts';

/**
 * What kind of network an IP address belongs to, for the outbound guard (src/net/outboundGuard.ts):
 * Backstop sends webhooks, Slack messages and S3 requests only to public addresses unless
 * BACKSTOP_ALLOW_PRIVATE_ENDPOINTS says otherwise, so that a URL someone typed into a target
 * cannot make the server talk to its own loopback services, the cloud metadata service
 * (169.254.169.254) or the private network it sits in.
 *
 * Ranges: the IANA IPv4 and IPv6 special-purpose address registries. IPv6 forms that carry an
 * IPv4 address (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by
 * the IPv4 address they carry. Outside 2000::/3 (global unicast) no IPv6 address is public.
 */

export type AddressKind = 'public' | 'loopback' | 'private' | 'link-local' | 'unspecified' | 'multicast' | 'reserved';

export interface AddressClass {
  kind: AddressKind;
  /** What the address is, for refusals: "a loopback address (127.0.0.0/8)". */
  range: string;
}

export type ParsedAddress = { version: 4; bytes: number[] } | { version: 6; bytes: number[] };

const PUBLIC: AddressClass = { kind: 'public', range: 'a public address' };

/** Parses a literal IPv4 (dotted quad) or IPv6 address, brackets and zone id allowed; null otherwise. */
export function parseAddress(text: string): ParsedAddress | null {
  let value = text.trim();
  if (value.startsWith('[') && value.endsWith(']')) value = value.slice(1, -1);
  const zone = value.indexOf('%');
  if (zone >= 0) value = value.slice(0, zone);
  const v4 = parseIpv4(value);
  if (v4) return { version: 4, bytes: v4 };
  const v6 = parseIpv6(value);
  return v6 ? { version: 6, bytes: v6 } : null;
}

function parseIpv4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const bytes: number[] = [];
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return null;
    const value = Number(part);
    if (value > 255 || (part.length > 1 && part.startsWith('0'))) return null;
    bytes.push(value);
  }
  return bytes;
}

function parseIpv6(text: string): number[] | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || text.length < 2) return null;
  let head = text;
  let tailV4: number[] | null = null;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tailV4 = parseIpv4(text.slice(lastColon + 1));
    if (!tailV4) return null;
    // "::ffff:1.2.3.4" → "::ffff" and "::1.2.3.4" → "::": the IPv4 part stands for two groups.
    head = text.slice(0, lastColon + 1);
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const groupsWanted = tailV4 ? 6 : 8;
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const toGroups = (part: string): number[] | null => {
    if (part === '') return [];
    const groups: number[] = [];
    for (const group of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return null;
      groups.push(parseInt(group, 16));
    }
    return groups;
  };
  const left = toGroups(halves[0]!);
  const right = halves.length === 2 ? toGroups(halves[1]!) : [];
  if (!left || !right) return null;
  let groups: number[];
  if (halves.length === 2) {
    const missing = groupsWanted - left.length - right.length;
    if (missing < 1) return null;
    groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  } else {
    if (left.length !== groupsWanted) return null;
    groups = left;
  }
  const bytes = groups.flatMap((group) => [group >> 8, group & 0xff]);
  return tailV4 ? [...bytes, ...tailV4] : bytes;
}

interface Range {
  bytes: number[];
  bits: number;
  kind: AddressKind;
  range: string;
}

const v4 = (cidr: string, kind: AddressKind, label: string, note = ''): Range => {
  const [address, bits] = cidr.split('/');
  return { bytes: parseIpv4(address!)!, bits: Number(bits), kind, range: `${label} address (${cidr}${note})` };
};
const v6 = (cidr: string, kind: AddressKind, label: string, note = ''): Range => {
  const [address, bits] = cidr.split('/');
  return { bytes: parseIpv6(address!)!, bits: Number(bits), kind, range: `${label} address (${cidr}${note})` };
};

const IPV4_RANGES: Range[] = [
  v4('0.0.0.0/8', 'unspecified', 'a "this network"', ', which reaches the local host'),
  v4('10.0.0.0/8', 'private', 'a private', ', RFC 1918'),
  v4('100.64.0.0/10', 'private', 'a shared', ', carrier-grade NAT'),
  v4('127.0.0.0/8', 'loopback', 'a loopback'),
  v4('169.254.0.0/16', 'link-local', 'a link-local', ', where cloud metadata services answer'),
  v4('172.16.0.0/12', 'private', 'a private', ', RFC 1918'),
  v4('192.0.0.0/24', 'reserved', 'an IETF protocol'),
  v4('192.0.2.0/24', 'reserved', 'a documentation'),
  v4('192.88.99.0/24', 'reserved', 'a 6to4 relay'),
  v4('192.168.0.0/16', 'private', 'a private', ', RFC 1918'),
  v4('198.18.0.0/15', 'private', 'a benchmarking'),
  v4('198.51.100.0/24', 'reserved', 'a documentation'),
  v4('203.0.113.0/24', 'reserved', 'a documentation'),
  v4('224.0.0.0/4', 'multicast', 'a multicast'),
  v4('240.0.0.0/4', 'reserved', 'a reserved', ', with the broadcast address'),
];

const IPV6_RANGES: Range[] = [
  v6('::/128', 'unspecified', 'the unspecified', ', which reaches the local host'),
  v6('::1/128', 'loopback', 'a loopback'),
  v6('::/96', 'reserved', 'an IPv4-compatible', ', deprecated'),
  v6('::ffff:0:0:0/96', 'reserved', 'an IPv4-translated'),
  v6('64:ff9b:1::/48', 'private', 'a local-use NAT64'),
  v6('100::/64', 'reserved', 'a discard-only'),
  v6('2001::/23', 'reserved', 'an IETF protocol', ', with Teredo'),
  v6('2001:db8::/32', 'reserved', 'a documentation'),
  v6('3fff::/20', 'reserved', 'a documentation'),
  v6('5f00::/16', 'reserved', 'a segment-routing'),
  v6('fc00::/7', 'private', 'a unique local'),
  v6('fe80::/10', 'link-local', 'a link-local'),
  v6('fec0::/10', 'private', 'a site-local', ', deprecated'),
  v6('ff00::/8', 'multicast', 'a multicast'),
];

function inRange(bytes: number[], range: Range): boolean {
  let bits = range.bits;
  for (let index = 0; bits > 0; index++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((bytes[index]! & mask) !== (range.bytes[index]! & mask)) return false;
  }
  return true;
}

/** The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), or null. */
export function embeddedIpv4(bytes: number[]): number[] | null {
  const zeros = (from: number, to: number) => bytes.slice(from, to).every((byte) => byte === 0);
  if (zeros(0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12);
  if (bytes[0] === 0x00 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && zeros(4, 12)) return bytes.slice(12);
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return bytes.slice(2, 6);
  return null;
}

function classifyParsed(address: ParsedAddress): AddressClass {
  if (address.version === 4) {
    const range = IPV4_RANGES.find((candidate) => inRange(address.bytes, candidate));
    return range ? { kind: range.kind, range: range.range } : PUBLIC;
  }
  const carried = embeddedIpv4(address.bytes);
  if (carried) {
    const inner = classifyParsed({ version: 4, bytes: carried });
    return inner.kind === 'public' ? PUBLIC : { kind: inner.kind, range: `${inner.range.replace(/\)$/, '')}, inside an IPv6 address)` };
  }
  const range = IPV6_RANGES.find((candidate) => inRange(address.bytes, candidate));
  if (range) return { kind: range.kind, range: range.range };
  // Global unicast is 2000::/3; the rest of the space is unallocated.
  if ((address.bytes[0]! & 0xe0) !== 0x20) return { kind: 'reserved', range: 'an unallocated address (outside 2000::/3)' };
  return PUBLIC;
}

/** The kind of network `address` (a literal IP) belongs to; throws for text that is not one. */
export function classifyAddress(address: string): AddressClass {
  const parsed = parseAddress(address);
  if (!parsed) throw new BackstopError('INVALID_INPUT', `"${address}" is not an IP address.`);
  return classifyParsed(parsed);
}

/**
 * Which non-public addresses outbound requests may reach (BACKSTOP_ALLOW_PRIVATE_ENDPOINTS):
 * `all`, or address ranges.
 */
export type PrivateEndpointAllowance = { all: true } | { all: false; ranges: Range[] };

export const PRIVATE_ENDPOINTS_SETTING = 'BACKSTOP_ALLOW_PRIVATE_ENDPOINTS';

/**
 * Parses BACKSTOP_ALLOW_PRIVATE_ENDPOINTS: unset, empty, `false` or `0`: none; `true` or `1`:
 * every address; otherwise a comma-separated list of addresses and CIDR ranges
 * (`127.0.0.1`, `10.1.0.0/16`, `::1`, `fd00::/8`). Throws for anything else.
 */
export function parsePrivateEndpointAllowance(value: string | undefined): PrivateEndpointAllowance {
  const text = (value ?? '').trim();
  if (text === '' || text === 'false' || text === '0') return { all: false, ranges: [] };
  if (text === 'true' || text === '1') return { all: true };
  const ranges: Range[] = [];
  const problems: string[] = [];
  for (const entry of text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)) {
    const [address, bitsText, extra] = entry.split('/');
    const parsed = parseAddress(address ?? '');
    const maxBits = parsed?.version === 4 ? 32 : 128;
    const bits = bitsText === undefined ? maxBits : Number(bitsText);
    if (!parsed || extra !== undefined || !Number.isInteger(bits) || bits < 0 || bits > maxBits || (bitsText !== undefined && !/^\d+$/.test(bitsText))) {
      problems.push(`"${entry}"`);
      continue;
    }
    ranges.push({ bytes: parsed.bytes, bits, kind: 'public', range: entry });
  }
  if (problems.length > 0) {
    throw new BackstopError(
      'INVALID_INPUT',
      `${PRIVATE_ENDPOINTS_SETTING} holds ${problems.join(', ')}, which ${problems.length === 1 ? 'is' : 'are'} not an IP address or CIDR range. Use true (every address), or a comma-separated list such as 127.0.0.1,10.0.0.0/8,fd00::/8.`,
    );
  }
  return { all: false, ranges };
}

export type AddressVerdict = { allowed: true; class: AddressClass } | { allowed: false; class: AddressClass };

/**
 * Whether an outbound request may connect to `address`: public addresses always; the others
 * only when the allowance covers them (an IPv4-mapped IPv6 address matches IPv4 ranges).
 */
export function judgeAddress(address: string, allowance: PrivateEndpointAllowance): AddressVerdict {
  const parsed = parseAddress(address);
  if (!parsed) return { allowed: false, class: { kind: 'reserved', range: 'not an IP address' } };
  const addressClass = classifyParsed(parsed);
  if (addressClass.kind === 'public' || allowance.all) return { allowed: true, class: addressClass };
  const mapped = parsed.version === 6 ? embeddedIpv4(parsed.bytes) : null;
  const forms: ParsedAddress[] = [parsed, ...(mapped && isMapped(parsed.bytes) ? [{ version: 4 as const, bytes: mapped }] : [])];
  const covered = allowance.ranges.some((range) => forms.some((form) => form.bytes.length === range.bytes.length && inRange(form.bytes, range)));
  return { allowed: covered, class: addressClass };
}

function isMapped(bytes: number[]): boolean {
  return bytes.slice(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
}
