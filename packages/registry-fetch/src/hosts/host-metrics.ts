// Per-host counters (HostStats) as Prometheus text, for a mount's /metrics endpoint.
import type { HostStats } from './host-set.js';

const COUNTERS: Array<[keyof HostStats, string, string]> = [
  ['rangeRequests', 'clip_registry_host_range_requests_total', 'Range reads sent to the host'],
  ['rangesHonoured', 'clip_registry_host_ranges_honoured_total', 'Range reads the host answered with 206 (server: reads it served)'],
  ['fullResponses', 'clip_registry_host_full_responses_total', 'Range reads answered with a whole-blob 200 (a cold cache)'],
  ['bytes', 'clip_registry_host_bytes_total', 'Body bytes used from the host for range reads'],
  ['fallbacks', 'clip_registry_host_fallbacks_total', 'Reads the host passed on to the next host'],
  ['errors', 'clip_registry_host_errors_total', 'Failed requests to the host'],
  ['stalls', 'clip_registry_host_stalls_total', 'Requests the host did not answer within the stall bound'],
  ['notFound', 'clip_registry_host_not_found_total', 'Blobs the host did not have (404)'],
  ['skipped', 'clip_registry_host_skipped_total', 'Reads that skipped the host (down, or the blob cold there)'],
  ['fillsStarted', 'clip_registry_host_fills_started_total', 'Background reads of cold 200 bodies started'],
  ['fillsCompleted', 'clip_registry_host_fills_completed_total', 'Background reads of cold 200 bodies completed'],
  ['fillBytes', 'clip_registry_host_fill_bytes_total', 'Bytes read by background fills'],
];

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function hostStatsPrometheus(hosts: HostStats[]): string {
  if (hosts.length === 0) return '';
  const lines: string[] = [];
  for (const [key, name, help] of COUNTERS) {
    lines.push(`# HELP ${name} ${help}.`, `# TYPE ${name} counter`);
    for (const host of hosts) lines.push(`${name}{host="${label(host.host)}",role="${host.role}"} ${host[key] as number}`);
  }
  return `${lines.join('\n')}\n`;
}
