// Waits for a child process to exit *and* for its piped output to be read. Node may emit
// 'exit' before the last chunks of stdout/stderr arrive, so a test that parses the output on
// 'exit' can miss the final line (a metrics summary, an error message). 'close' would wait for
// grandchildren that inherited the pipes too, so the wait for the streams is bounded.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Readable } from 'node:stream';

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Resolves when `child` has exited and its pipes ended (at most `streamMs` after the exit); SIGKILLs it after `killAfterMs`. */
export async function childExit(child: ChildProcess, options: { killAfterMs?: number; streamMs?: number } = {}): Promise<ChildExit> {
  const timer = options.killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.killAfterMs);
  try {
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    const open = [child.stdout, child.stderr].filter((s): s is Readable => s !== null && !s.readableEnded && !s.destroyed);
    if (open.length > 0) {
      let bound: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(open.map((s) => Promise.race([once(s, 'end'), once(s, 'close')]).catch(() => undefined))),
        new Promise((resolve) => (bound = setTimeout(resolve, options.streamMs ?? 5_000))),
      ]);
      clearTimeout(bound);
    }
    return { code: child.exitCode, signal: child.signalCode };
  } finally {
    clearTimeout(timer);
  }
}
