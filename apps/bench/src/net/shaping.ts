// Bandwidth shaping on `lo` inside the namespace. Only traffic to and from the proxy port is
// shaped (HTB classifies it by port, a tbf under that class does the rate limiting); the
// proxy→registry leg stays unshaped, so each byte crosses the emulated link exactly once.
import { run } from '../util/exec.js';
import type { LinkProfile } from './profiles.js';

export interface ShapingParams {
  rate: string;
  burstBytes: number;
  latencyMs: number;
}

export function tbfParams(rateMbit: number): ShapingParams {
  const bytesPerSecond = (rateMbit * 1e6) / 8;
  // lo has a 64 KiB MTU (and GSO), so the bucket must hold a few maximal packets.
  const burstBytes = Math.max(256 * 1024, Math.round(bytesPerSecond / 250));
  return { rate: `${rateMbit}mbit`, burstBytes, latencyMs: 50 };
}

export async function clearShaping(netns: string): Promise<void> {
  await run('tc', ['qdisc', 'del', 'dev', 'lo', 'root'], { netns, allowFailure: true });
}

/** Applies `profile`'s bandwidth to traffic on `port`; returns the tc commands used (for the report). */
export async function applyShaping(netns: string, profile: LinkProfile, port: number): Promise<string[]> {
  await clearShaping(netns);
  if (profile.rateMbit === undefined) return [];
  const p = tbfParams(profile.rateMbit);
  const commands = [
    ['qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '20', 'r2q', '100000'],
    ['class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '100gbit'],
    ['class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', '100gbit'],
    [
      'qdisc',
      'add',
      'dev',
      'lo',
      'parent',
      '1:10',
      'handle',
      '10:',
      'tbf',
      'rate',
      p.rate,
      'burst',
      String(p.burstBytes),
      'latency',
      `${p.latencyMs}ms`,
    ],
    portFilter('sport', port),
    portFilter('dport', port),
  ];
  for (const args of commands) await run('tc', args, { netns });
  return commands.map((args) => `tc ${args.join(' ')}`);
}

/** Sends traffic with this source or destination port through the shaped class 1:10. */
function portFilter(direction: 'sport' | 'dport', port: number): string[] {
  return `filter add dev lo parent 1: protocol ip prio 1 u32 match ip ${direction} ${port} 0xffff flowid 1:10`.split(' ');
}
