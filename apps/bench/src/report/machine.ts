// Facts about the machine a result came from.
import { readFile } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';

export interface MachineFacts {
  cores: number;
  cpuModel: string;
  memoryBytes: number;
  kernel: string;
  node: string;
  loadAverage?: string;
}

export async function machineFacts(): Promise<MachineFacts> {
  const load = await readFile('/proc/loadavg', 'utf8').catch(() => '');
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    kernel: release(),
    node: process.version,
    ...(load ? { loadAverage: load.split(' ').slice(0, 3).join(' ') } : {}),
  };
}
