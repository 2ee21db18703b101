// Checks that the emulated link behaves as configured: downloads a random blob through the
// proxy and measures the rate, and times small requests for the round trip.
import { join } from 'node:path';
import { median } from '../util/stats.js';
import { curlDownload, uploadBlob, writeRandomBlob } from './blobs.js';
import type { Link } from './link.js';

export interface LinkCheck {
  profile: string;
  configuredMbit?: number;
  measuredMbit: number;
  configuredRttMs: number;
  /** Median time to first byte of a tiny request (≈ one RTT: the handshake ends at the local proxy). */
  measuredRequestMs: number;
  probeBytes: number;
  proxyBytesDown: number;
}

const PROBE_REPOSITORY = 'bench/probe';

export async function uploadProbe(link: Link, workDir: string, size: number): Promise<string> {
  const file = join(workDir, 'probe.bin');
  const digest = await writeRandomBlob(file, size);
  await uploadBlob(link.netns, link.registryHost, PROBE_REPOSITORY, file, digest);
  return digest;
}

export async function verifyLink(link: Link, probeDigest: string): Promise<LinkCheck> {
  await link.resetCounters();
  const url = `http://${link.clientHost}/v2/${PROBE_REPOSITORY}/blobs/${probeDigest}`;
  const download = await curlDownload(link.netns, url);
  const counters = await link.resetCounters();
  const small: number[] = [];
  for (let i = 0; i < 5; i++) {
    const probe = await curlDownload(link.netns, `http://${link.clientHost}/v2/`);
    small.push(probe.ttfbSeconds * 1000);
  }
  await link.resetCounters();
  // Measure the transfer part only: subtract time to first byte (connection + request).
  const transferSeconds = Math.max(1e-6, download.seconds - download.ttfbSeconds);
  return {
    profile: link.profile.name,
    ...(link.profile.rateMbit === undefined ? {} : { configuredMbit: link.profile.rateMbit }),
    measuredMbit: (download.bytes * 8) / transferSeconds / 1e6,
    configuredRttMs: link.profile.rttMs,
    measuredRequestMs: median(small),
    probeBytes: download.bytes,
    proxyBytesDown: counters.bytesDown,
  };
}
