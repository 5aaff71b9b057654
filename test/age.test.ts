import { spawn, spawnSync } from 'node:child_process';
import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as typage from 'age-encryption';
import { isBackstopError, type ErrorCode } from '../src/core/errors.ts';
import {
  createAgeDecryptStream,
  createAgeEncryptStream,
  generateIdentity,
  isAgeEncrypted,
  parseIdentities,
  parseRecipient,
  recipientFromIdentity,
  type AgeIdentity,
} from '../src/pipeline/age.ts';

const KiB = 1024;
const SIZES = [0, 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 2 * 64 * KiB, 3 * KiB * KiB];

/** Feeds `data` in uneven pieces so chunk boundaries fall inside and across writes. */
function pieces(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const sizes = [1, 7, 1000, 64 * KiB, 64 * KiB + 3, 200 * KiB];
  for (let offset = 0, i = 0; offset < data.length; i++) {
    const size = sizes[i % sizes.length]!;
    out.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return out;
}

/** `whole` writes the input at once, taking the chunker's no-copy path up to the last chunk. */
async function encrypt(data: Buffer, recipients: string[], whole = false): Promise<Buffer> {
  const encryptor = createAgeEncryptStream(recipients);
  const input = Readable.from(whole ? [data] : pieces(data));
  const [, encrypted] = await Promise.all([pipeline(input, encryptor), buffer(encryptor)]);
  return encrypted;
}

async function decrypt(data: Buffer, identities: AgeIdentity[], whole = false): Promise<Buffer> {
  const decryptor = createAgeDecryptStream(identities);
  const input = Readable.from(whole ? [data] : pieces(data));
  const [, decrypted] = await Promise.all([pipeline(input, decryptor), buffer(decryptor)]);
  return decrypted;
}

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, pattern: RegExp): Promise<Error> {
  let caught: unknown;
  await promise.catch((error: unknown) => (caught = error));
  assert.ok(isBackstopError(caught, code), `expected BackstopError ${code}, got ${String(caught)}`);
  assert.match(caught.message, pattern);
  return caught;
}

/** Runs the real `age` CLI with `input` on stdin. */
function ageCli(args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('age', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(stdout));
      else reject(new Error(`age ${args.join(' ')} exited ${code}: ${Buffer.concat(stderr).toString()}`));
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

let dir = '';
let keyFile = '';
let key: { identity: string; recipient: string };

before(async () => {
  const probe = spawnSync('age', ['--version'], { encoding: 'utf8' });
  assert.ok(
    probe.status === 0,
    'The age CLI is needed for these interoperability tests and was not found. Install it with ' +
      '`apt-get install -y age` (Debian/Ubuntu) or from https://github.com/FiloSottile/age/releases.',
  );
  dir = await mkdtemp(join(tmpdir(), 'backstop-age-'));
  key = generateIdentity();
  keyFile = join(dir, 'key.txt');
  await writeFile(keyFile, `# created: test\n# public key: ${key.recipient}\n${key.identity}\n`, { mode: 0o600 });
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('keys', () => {
  test('generateIdentity gives an identity the age CLI derives the same recipient from', async () => {
    assert.match(key.identity, /^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
    assert.match(key.recipient, /^age1[0-9a-z]{58}$/);
    const derived = spawnSync('age-keygen', ['-y', keyFile], { encoding: 'utf8' });
    assert.equal(derived.status, 0, derived.stderr);
    assert.equal(derived.stdout.trim(), key.recipient);
    assert.equal(recipientFromIdentity(key.identity), key.recipient);
    assert.equal(await typage.identityToRecipient(key.identity), key.recipient);
  });

  test('parseIdentities reads an age-keygen file and skips comments and blank lines', () => {
    const generated = spawnSync('age-keygen', [], { encoding: 'utf8' });
    assert.equal(generated.status, 0, generated.stderr);
    const identities = parseIdentities(`\n${generated.stdout}\n# another\n\n${key.identity}\r\n`);
    assert.equal(identities.length, 2);
    assert.equal(identities[1]!.recipient, key.recipient);
    assert.match(generated.stdout, new RegExp(`public key: ${identities[0]!.recipient}`));
    assert.equal(recipientFromIdentity(identities[0]!), identities[0]!.recipient);
  });

  test('parseIdentities errors name the line but never its secret content', () => {
    const damaged = `${key.identity.slice(0, -1)}${key.identity.endsWith('Q') ? 'P' : 'Q'}`;
    for (const [text, pattern] of [
      ['# only a comment\n\n', /holds no age identity/],
      ['', /holds no age identity/],
      [`# ok\n${damaged}\n`, /line 2 looks like an age identity but does not decode/],
      [`${key.recipient}\n`, /line 1 is a recipient \(public key\), not an identity/],
      ['-----BEGIN OPENSSH PRIVATE KEY-----\n', /line 1 is not an X25519 age identity/],
    ] as const) {
      assert.throws(
        () => parseIdentities(text),
        (error: unknown) => isBackstopError(error, 'INVALID_INPUT') && pattern.test(error.message) && !error.message.includes(damaged.slice(16, 40)),
      );
    }
  });

  test('identity objects do not reveal the secret when logged or serialised', async () => {
    const [identity] = parseIdentities(key.identity);
    const { inspect } = await import('node:util');
    const secretBody = key.identity.slice('AGE-SECRET-KEY-1'.length, -6);
    assert.ok(!inspect(identity, { depth: 5 }).includes(secretBody));
    assert.ok(!JSON.stringify(identity).includes(secretBody));
  });

  test('parseRecipient accepts a recipient and rejects bad ones with a next step', () => {
    assert.equal(parseRecipient(`  ${key.recipient}\n`), key.recipient);
    assert.equal(parseRecipient(key.recipient.toUpperCase()), key.recipient);
    const typo = `${key.recipient.slice(0, 10)}${key.recipient[10] === 'q' ? 'p' : 'q'}${key.recipient.slice(11)}`;
    const cases = [
      [typo, /checksum does not match.*age-keygen/],
      [key.recipient.slice(0, -3), /checksum does not match/],
      ['', /not bech32-encoded/],
      [`age1pq1${'q'.repeat(60)}`, /Invalid age recipient|Unsupported age recipient/],
      ['ssh-ed25519 AAAA', /Invalid age recipient given/],
      [key.identity, /identity \(secret key\) was given where a recipient/],
    ] as const;
    for (const [text, pattern] of cases) {
      assert.throws(
        () => parseRecipient(text),
        (error: unknown) => isBackstopError(error, 'INVALID_INPUT') && pattern.test(error.message) && !error.message.includes(key.identity),
      );
    }
    assert.throws(
      () => createAgeEncryptStream([]),
      (error: unknown) => isBackstopError(error, 'INVALID_INPUT'),
    );
    assert.throws(
      () => createAgeEncryptStream([typo]),
      (error: unknown) => isBackstopError(error, 'INVALID_INPUT'),
    );
    // Valid bech32 of 32 zero bytes: a low-order point that would give an all-zero shared secret.
    const lowOrder = 'age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq5cu47z';
    assert.equal(parseRecipient(lowOrder), lowOrder);
    assert.throws(
      () => createAgeEncryptStream([key.recipient, lowOrder]),
      (error: unknown) => isBackstopError(error, 'INVALID_INPUT') && /not a usable X25519 public key/.test(error.message),
    );
  });
});

describe('round trips and interoperability', () => {
  for (const size of SIZES) {
    test(`${size} bytes: ours → ours, age CLI, age-encryption; age CLI, age-encryption → ours`, async () => {
      const plaintext = randomBytes(size);
      const identities = parseIdentities(key.identity);

      const ours = await encrypt(plaintext, [key.recipient]);
      assert.ok(isAgeEncrypted(ours));
      const chunks = Math.max(1, Math.ceil(size / (64 * KiB)));
      assert.equal(ours.length - ours.indexOf('\n--- ') - 49 - 16, size + 16 * chunks, 'payload size per spec');
      assert.deepEqual(await decrypt(ours, identities), plaintext);
      assert.deepEqual(await ageCli(['-d', '-i', keyFile], ours), plaintext);
      const oursWhole = await encrypt(plaintext, [key.recipient], true);
      assert.deepEqual(await ageCli(['-d', '-i', keyFile], oursWhole), plaintext);
      assert.deepEqual(await decrypt(oursWhole, identities, true), plaintext);
      const typageDecrypter = new typage.Decrypter();
      typageDecrypter.addIdentity(key.identity);
      assert.deepEqual(Buffer.from(await typageDecrypter.decrypt(ours)), plaintext);

      const fromCli = await ageCli(['-r', key.recipient], plaintext);
      assert.deepEqual(await decrypt(fromCli, identities), plaintext);
      assert.deepEqual(await decrypt(fromCli, identities, true), plaintext);
      const typageEncrypter = new typage.Encrypter();
      typageEncrypter.addRecipient(key.recipient);
      const fromTypage = Buffer.from(await typageEncrypter.encrypt(plaintext));
      assert.deepEqual(await decrypt(fromTypage, identities), plaintext);
    });
  }

  test('multiple recipients: each identity alone decrypts, with ours and the age CLI', async () => {
    const others = [generateIdentity(), generateIdentity()];
    const all = [key, ...others];
    const plaintext = randomBytes(100 * KiB);
    const encrypted = await encrypt(
      plaintext,
      all.map((k) => k.recipient),
    );
    assert.equal(encrypted.toString('latin1').split('\n-> X25519 ').length - 1, 3);
    for (const [index, k] of all.entries()) {
      assert.deepEqual(await decrypt(encrypted, parseIdentities(k.identity)), plaintext);
      const file = join(dir, `multi-${index}.txt`);
      await writeFile(file, `${k.identity}\n`, { mode: 0o600 });
      assert.deepEqual(await ageCli(['-d', '-i', file], encrypted), plaintext);
    }
    const fromCli = await ageCli(
      all.flatMap((k) => ['-r', k.recipient]),
      plaintext,
    );
    const wrongThenRight = parseIdentities(`${generateIdentity().identity}\n${others[1]!.identity}\n`);
    assert.deepEqual(await decrypt(fromCli, wrongThenRight), plaintext);
  });

  test('unknown stanzas are skipped, including bodies spanning several lines', async () => {
    const grease: typage.Recipient = {
      wrapFileKey: () => [new typage.Stanza(['example.com/grease', 'a!b'], randomBytes(100)), new typage.Stanza(['example.com/exact'], randomBytes(48))],
    };
    const encrypter = new typage.Encrypter();
    encrypter.addRecipient(grease);
    encrypter.addRecipient(key.recipient);
    const plaintext = randomBytes(70 * KiB);
    const encrypted = Buffer.from(await encrypter.encrypt(plaintext));
    assert.deepEqual(await decrypt(encrypted, parseIdentities(key.identity)), plaintext);
  });
});

describe('refusals', () => {
  let encrypted: Buffer = Buffer.alloc(0);
  let identities: AgeIdentity[] = [];
  const plaintext = randomBytes(2 * 64 * KiB + 100);

  before(async () => {
    encrypted = await encrypt(plaintext, [key.recipient, generateIdentity().recipient]);
    identities = parseIdentities(key.identity);
  });

  test('a wrong identity is INVALID_INPUT naming the next step, without the identity', async () => {
    const wrong = generateIdentity();
    const error = await rejectsWith(
      decrypt(encrypted, parseIdentities(wrong.identity)),
      'INVALID_INPUT',
      /None of the given identities can decrypt this artifact \(it was encrypted to 2 X25519 recipients\)\. .*--identity FILE/,
    );
    assert.ok(!error.message.includes(wrong.identity.slice(16, 40)));
    assert.throws(
      () => createAgeDecryptStream([]),
      (e: unknown) => isBackstopError(e, 'INVALID_INPUT'),
    );
  });

  test('a flipped payload byte is ARTIFACT_CORRUPT, in every chunk', async () => {
    const payloadStart = encrypted.indexOf('\n--- ') + 49 + 16;
    for (const offset of [payloadStart, payloadStart + 64 * KiB + 20, encrypted.length - 1]) {
      const tampered = Buffer.from(encrypted);
      tampered[offset]! ^= 0x01;
      await rejectsWith(decrypt(tampered, identities), 'ARTIFACT_CORRUPT', /failed authentication|final age chunk/);
    }
  });

  test('a flipped header MAC or nonce is ARTIFACT_CORRUPT', async () => {
    const macOffset = encrypted.indexOf('\n--- ') + 10;
    const tamperedMac = Buffer.from(encrypted);
    tamperedMac[macOffset] = tamperedMac[macOffset] === 0x41 ? 0x42 : 0x41;
    await rejectsWith(decrypt(tamperedMac, identities), 'ARTIFACT_CORRUPT', /MAC does not match|not canonical|MAC line/);
    const tamperedNonce = Buffer.from(encrypted);
    tamperedNonce[encrypted.indexOf('\n--- ') + 50]! ^= 0x80;
    await rejectsWith(decrypt(tamperedNonce, identities), 'ARTIFACT_CORRUPT', /failed authentication/);
  });

  test('truncation anywhere is ARTIFACT_CORRUPT', async () => {
    const headerEnd = encrypted.indexOf('\n--- ') + 49;
    const cuts = [
      [0, /artifact is empty/],
      [10, /ends inside the age header/],
      [headerEnd - 1, /ends inside the age header/],
      [headerEnd + 8, /truncated: it has no final chunk/],
      [headerEnd + 16, /truncated: it has no final chunk/],
      [headerEnd + 16 + 10, /failed authentication/],
      [headerEnd + 16 + 64 * KiB + 16, /truncated: it ends after chunk 0, which is not the final one/],
      [headerEnd + 16 + 2 * (64 * KiB + 16), /truncated: it ends after chunk 1/],
      [encrypted.length - 1, /failed authentication/],
    ] as const;
    for (const [length, pattern] of cuts) {
      await rejectsWith(decrypt(encrypted.subarray(0, length), identities), 'ARTIFACT_CORRUPT', pattern);
    }
  });

  test('data after the final chunk is ARTIFACT_CORRUPT', async () => {
    const exact = await encrypt(randomBytes(64 * KiB), [key.recipient]);
    await rejectsWith(decrypt(Buffer.concat([exact, Buffer.from('x')]), identities), 'ARTIFACT_CORRUPT', /Unexpected data after the final age chunk/);
    await rejectsWith(decrypt(Buffer.concat([encrypted, randomBytes(64 * KiB + 16)]), identities), 'ARTIFACT_CORRUPT', /failed authentication/);
  });

  test('an empty final chunk after a full one is ARTIFACT_CORRUPT, as the age CLI agrees', async () => {
    // A custom recipient sees the file key, which lets the test re-seal the payload by hand.
    let fileKey: Uint8Array = new Uint8Array();
    const encrypter = new typage.Encrypter();
    encrypter.addRecipient({
      wrapFileKey: (key: Uint8Array) => {
        fileKey = key;
        return [new typage.Stanza(['example.com/capture'], new Uint8Array())];
      },
    });
    encrypter.addRecipient(key.recipient);
    const full = randomBytes(64 * KiB);
    const original = Buffer.from(await encrypter.encrypt(full));
    const payloadStart = original.indexOf('\n--- ') + 49;
    const nonce = original.subarray(payloadStart, payloadStart + 16);
    const payloadKey = Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32));
    const sealChunk = (counter: number, last: boolean, plaintext: Buffer): Buffer => {
      const chunkNonce = Buffer.alloc(12);
      chunkNonce.writeUIntBE(counter, 5, 6);
      chunkNonce[11] = last ? 1 : 0;
      const cipher = createCipheriv('chacha20-poly1305', payloadKey, chunkNonce, { authTagLength: 16 });
      return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    };
    const reference = Buffer.concat([original.subarray(0, payloadStart + 16), sealChunk(0, true, full)]);
    assert.deepEqual(reference, original, 'the hand-sealed payload matches age-encryption');
    const emptyLast = Buffer.concat([original.subarray(0, payloadStart + 16), sealChunk(0, false, full), sealChunk(1, true, Buffer.alloc(0))]);
    await assert.rejects(ageCli(['-d', '-i', keyFile], emptyLast));
    await rejectsWith(decrypt(emptyLast, identities), 'ARTIFACT_CORRUPT', /ends with an empty final chunk/);
  });

  test('input that is not age is ARTIFACT_CORRUPT at once, and isAgeEncrypted says no', async () => {
    const notAge = Buffer.from('PGDMP\u0001\u000e\u0000'.repeat(1000));
    assert.equal(isAgeEncrypted(notAge), false);
    assert.equal(isAgeEncrypted(Buffer.from('age-encryption.org/v1')), false);
    assert.equal(isAgeEncrypted(encrypted.subarray(0, 22)), true);
    await rejectsWith(decrypt(notAge, identities), 'ARTIFACT_CORRUPT', /not an age-encrypted file/);
  });

  test('a passphrase-encrypted file gets a message saying so', async () => {
    const encrypter = new typage.Encrypter();
    encrypter.setScryptWorkFactor(10);
    encrypter.setPassphrase('correct horse battery staple');
    const encryptedWithPassphrase = Buffer.from(await encrypter.encrypt('secret'));
    await rejectsWith(decrypt(encryptedWithPassphrase, identities), 'INVALID_INPUT', /passphrase-encrypted.*age -d/);
  });
});
