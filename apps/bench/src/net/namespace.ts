// A private network namespace with only `lo` up: the registry, the latency proxy and the
// workers' network clients all run in it, so nothing leaves 127.0.0.1 of this namespace.
import { onCleanup } from '../util/cleanup.js';
import { run } from '../util/exec.js';

export interface Namespace {
  name: string;
  destroy(): Promise<void>;
}

export async function createNamespace(name = `clipbench-${process.pid}`): Promise<Namespace> {
  await run('ip', ['netns', 'add', name]);
  let destroyed = false;
  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    await run('ip', ['netns', 'delete', name], { allowFailure: true });
  };
  const dispose = onCleanup(`delete netns ${name}`, destroy);
  try {
    await run('ip', ['link', 'set', 'lo', 'up'], { netns: name });
  } catch (error) {
    dispose();
    await destroy();
    throw error;
  }
  return {
    name,
    destroy: async () => {
      dispose();
      await destroy();
    },
  };
}

/** Deletes namespaces left by earlier interrupted runs whose process is gone. */
export async function deleteStaleNamespaces(): Promise<string[]> {
  const listed = await run('ip', ['netns', 'list'], { allowFailure: true });
  const stale: string[] = [];
  for (const line of listed.stdout.split('\n')) {
    const match = /^(clipbench-(\d+))\b/.exec(line.trim());
    if (!match) continue;
    const pid = Number(match[2]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) {
      await run('ip', ['netns', 'delete', match[1]!], { allowFailure: true });
      stale.push(match[1]!);
    }
  }
  return stale;
}
