// A cold pull-through cache is not asked about a blob again before its fill can have
// completed: distribution's proxy answers each request for a blob it is still filling with one
// more upstream stream of it. The fill time is the blob's size at the origin link's rate, as
// the worker's own direct reads measured it.
import { describe, expect, it } from 'vitest';
import { parseRegistryReference, type Digest } from '@clip/shared';
import { RegistryHost } from '../src/hosts/host-set.js';
import { ThroughputEstimate } from '../src/hosts/throughput.js';
import { RegistrySource } from '../src/registry-source.js';

const digest = `sha256:${'a'.repeat(64)}` as Digest;

function mirrorHost(): RegistryHost {
  const ref = parseRegistryReference('127.0.0.1:5000/test/img:v1');
  return new RegistryHost(
    { scheme: 'http', host: '127.0.0.1:5001', path: '/v2', capabilities: ['pull'], ca: [], client: [], header: {}, isServer: false },
    new RegistrySource(ref),
    true,
  );
}

describe('cold blob re-ask schedule', () => {
  it('waits the cool-down (2 s) when the origin rate is unknown', () => {
    const host = mirrorHost();
    host.markCold(digest, 10_000_000, 0);
    expect(host.skipReason(digest, 1_999)).toBe('cold');
    expect(host.skipReason(digest, 2_001)).toBeUndefined();
    expect(host.skipReason(digest, 2_001, () => undefined)).toBeUndefined();
  });

  it('waits until the fill can have completed (1.5x size / rate, at most 30 s)', () => {
    const host = mirrorHost();
    host.markCold(digest, 10_000_000, 0);
    const oneMBps = (bytes: number) => bytes / 1000; // 1 MB/s: 10 s for this blob
    expect(host.skipReason(digest, 3_000, oneMBps)).toBe('cold');
    expect(host.skipReason(digest, 14_900, oneMBps)).toBe('cold');
    expect(host.skipReason(digest, 15_100, oneMBps)).toBeUndefined();
    const slow = (bytes: number) => bytes; // 1 kB/s: capped
    expect(host.skipReason(digest, 29_900, slow)).toBe('cold');
    expect(host.skipReason(digest, 30_100, slow)).toBeUndefined();
    // Once warm (206), nothing is skipped.
    host.markWarm(digest);
    expect(host.skipReason(digest, 3_000, slow)).toBeUndefined();
  });

  it('a second cold answer doubles the cool-down', () => {
    const host = mirrorHost();
    host.markCold(digest, 100, 0);
    host.markCold(digest, 100, 2_500);
    expect(host.skipReason(digest, 6_400)).toBe('cold');
    expect(host.skipReason(digest, 6_600)).toBeUndefined();
  });
});

describe('ThroughputEstimate', () => {
  it('counts concurrent reads once and needs 256 KiB before it answers', () => {
    const rate = new ThroughputEstimate();
    rate.begin(0);
    rate.begin(0);
    rate.end(100_000, 100);
    expect(rate.rate(100)).toBeUndefined();
    rate.end(200_000, 200); // 300 kB over 200 ms of busy time
    expect(rate.rate(200)).toBe(1500);
    rate.begin(1_000); // idle time between reads does not count
    rate.end(300_000, 1_200);
    expect(rate.rate(1_200)).toBe(1500);
  });
});
