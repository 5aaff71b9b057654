import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyAddress, judgeAddress, parseAddress, parsePrivateEndpointAllowance, type AddressKind } from '../src/core/addressClass.ts';

describe('address classification (src/core/addressClass.ts)', () => {
  it('sorts addresses into the ranges an outbound request must not reach by default', () => {
    const cases: Array<[string, AddressKind]> = [
      ['127.0.0.1', 'loopback'],
      ['127.255.255.254', 'loopback'],
      ['::1', 'loopback'],
      ['[::1]', 'loopback'],
      ['0.0.0.0', 'unspecified'],
      ['0.1.2.3', 'unspecified'],
      ['::', 'unspecified'],
      ['10.0.0.1', 'private'],
      ['172.16.0.1', 'private'],
      ['172.31.255.255', 'private'],
      ['192.168.1.1', 'private'],
      ['100.64.0.1', 'private'],
      ['100.127.255.255', 'private'],
      ['198.18.0.1', 'private'],
      ['fc00::1', 'private'],
      ['fd12:3456::1', 'private'],
      ['fec0::1', 'private'],
      ['169.254.169.254', 'link-local'],
      ['fe80::1', 'link-local'],
      ['fe80::1%eth0', 'link-local'],
      ['224.0.0.1', 'multicast'],
      ['239.255.255.250', 'multicast'],
      ['ff02::1', 'multicast'],
      ['255.255.255.255', 'reserved'],
      ['240.0.0.1', 'reserved'],
      ['192.0.2.1', 'reserved'],
      ['2001:db8::1', 'reserved'],
      ['2001::1', 'reserved'],
      ['::1.2.3.4', 'reserved'],
      ['1::', 'reserved'],
      // Public neighbours of the ranges above.
      ['8.8.8.8', 'public'],
      ['172.15.255.255', 'public'],
      ['172.32.0.0', 'public'],
      ['100.63.255.255', 'public'],
      ['100.128.0.0', 'public'],
      ['169.253.255.255', 'public'],
      ['11.0.0.0', 'public'],
      ['2606:4700:4700::1111', 'public'],
      ['2a00:1450::1', 'public'],
    ];
    for (const [address, kind] of cases) assert.equal(classifyAddress(address).kind, kind, address);
  });

  it('judges IPv6 forms that carry an IPv4 address by the address they carry', () => {
    const cases: Array<[string, AddressKind]> = [
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:7f00:1', 'loopback'],
      ['0:0:0:0:0:ffff:7f00:0001', 'loopback'],
      ['::ffff:169.254.169.254', 'link-local'],
      ['::ffff:a9fe:a9fe', 'link-local'],
      ['::ffff:10.1.2.3', 'private'],
      ['::ffff:100.64.0.1', 'private'],
      ['::ffff:0.0.0.0', 'unspecified'],
      ['64:ff9b::7f00:1', 'loopback'],
      ['64:ff9b::10.0.0.1', 'private'],
      ['64:ff9b:1::1', 'private'],
      ['2002:7f00:1::', 'loopback'],
      ['2002:c0a8:101::1', 'private'],
      ['::ffff:8.8.8.8', 'public'],
      ['64:ff9b::808:808', 'public'],
      ['2002:808:808::1', 'public'],
    ];
    for (const [address, kind] of cases) assert.equal(classifyAddress(address).kind, kind, address);
    assert.match(classifyAddress('::ffff:127.0.0.1').range, /loopback address \(127\.0\.0\.0\/8, inside an IPv6 address\)/);
  });

  it('parses only literal addresses', () => {
    for (const text of ['127.1', '0x7f000001', '2130706433', '0177.0.0.1', '256.0.0.1', '1.2.3', 'localhost', '1:2:3:4:5:6:7:8:9', ':::', '1::2::3', 'fe80::g', '']) {
      assert.equal(parseAddress(text), null, text);
    }
    assert.deepEqual(parseAddress('::ffff:1.2.3.4')?.bytes.slice(10), [0xff, 0xff, 1, 2, 3, 4]);
    assert.throws(() => classifyAddress('localhost'), /not an IP address/);
  });

  it('BACKSTOP_ALLOW_PRIVATE_ENDPOINTS: nothing by default, everything with true, else exactly the ranges listed', () => {
    for (const off of [undefined, '', ' ', 'false', '0']) {
      const none = parsePrivateEndpointAllowance(off);
      assert.equal(judgeAddress('127.0.0.1', none).allowed, false, String(off));
      assert.equal(judgeAddress('8.8.8.8', none).allowed, true, 'public addresses need no allowance');
    }
    for (const on of ['true', '1']) assert.equal(judgeAddress('169.254.169.254', parsePrivateEndpointAllowance(on)).allowed, true);

    const some = parsePrivateEndpointAllowance('127.0.0.1, 10.1.0.0/16,fd00::/8 ,::1');
    assert.equal(judgeAddress('127.0.0.1', some).allowed, true);
    assert.equal(judgeAddress('127.0.0.2', some).allowed, false, 'a single address is a /32');
    assert.equal(judgeAddress('::ffff:127.0.0.1', some).allowed, true, 'an IPv4-mapped address matches its IPv4 range');
    assert.equal(judgeAddress('10.1.200.3', some).allowed, true);
    assert.equal(judgeAddress('10.2.0.1', some).allowed, false);
    assert.equal(judgeAddress('fd00::1234', some).allowed, true);
    assert.equal(judgeAddress('fc00::1', some).allowed, false);
    assert.equal(judgeAddress('::1', some).allowed, true);
    assert.equal(judgeAddress('169.254.169.254', some).allowed, false, 'the metadata service stays refused unless listed');
    assert.equal(judgeAddress('not-an-address', some).allowed, false);

    assert.throws(() => parsePrivateEndpointAllowance('yes'), /BACKSTOP_ALLOW_PRIVATE_ENDPOINTS holds "yes", which is not an IP address or CIDR range\. Use true/);
    assert.throws(() => parsePrivateEndpointAllowance('10.0.0.0/33,localhost,1.2.3.4/8/1'), /"10\.0\.0\.0\/33", "localhost", "1\.2\.3\.4\/8\/1", which are not/);
  });
});
