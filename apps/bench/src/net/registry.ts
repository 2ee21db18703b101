// The real registry (Debian's docker-registry, distribution v2) running inside the namespace.
import type { ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { onCleanup } from '../util/cleanup.js';
import { run, startProcess, stopProcess } from '../util/exec.js';

export interface NamespacedRegistry {
  port: number;
  storageDir: string;
  logs(): string;
  stop(): Promise<void>;
}

/** `extraConfig`: more config.yml lines, e.g. a `proxy:` section for a pull-through cache. */
export async function startNamespacedRegistry(
  netns: string,
  dir: string,
  port: number,
  extraConfig: string[] = [],
): Promise<NamespacedRegistry> {
  const storageDir = join(dir, 'storage');
  await mkdir(storageDir, { recursive: true });
  const configPath = join(dir, 'config.yml');
  await writeFile(
    configPath,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${storageDir}`,
      'http:',
      `  addr: 127.0.0.1:${port}`,
      ...extraConfig,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = startProcess('docker-registry', ['serve', configPath], { netns });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-100_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const dispose = onCleanup('stop registry', () => stopProcess(child, 2000));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const probe = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}/v2/`], {
      netns,
      allowFailure: true,
    });
    if (probe.stdout === '200') break;
    if (child.exitCode !== null || Date.now() > deadline) {
      dispose();
      await stopProcess(child, 1000);
      throw new Error(`registry did not start in netns ${netns}:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    port,
    storageDir,
    logs: () => output,
    stop: async () => {
      dispose();
      await stopProcess(child, 2000);
    },
  };
}
