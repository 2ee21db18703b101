// A stack of teardown actions (unmount, kill, delete namespace) run in reverse order on normal
// completion, on failure and on SIGINT/SIGTERM, so an interrupted run leaves nothing behind.
type Action = { label: string; run: () => Promise<void> | void };

const actions: Action[] = [];
let installed = false;
let running: Promise<void> | undefined;

export function onCleanup(label: string, run: Action['run']): () => void {
  installSignalHandlers();
  const action = { label, run };
  actions.push(action);
  return () => {
    const index = actions.indexOf(action);
    if (index >= 0) actions.splice(index, 1);
  };
}

/** Runs one registered action now (and forgets it). */
export async function cleanupNow(dispose: () => void, action: () => Promise<void> | void): Promise<void> {
  dispose();
  await action();
}

export function runCleanup(): Promise<void> {
  running ??= (async () => {
    while (actions.length > 0) {
      const action = actions.pop()!;
      try {
        await action.run();
      } catch (error) {
        process.stderr.write(`bench: cleanup "${action.label}" failed: ${(error as Error).message}\n`);
      }
    }
  })().finally(() => {
    running = undefined;
  });
  return running;
}

function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, tearing down...\n`);
      void runCleanup().finally(() => process.exit(130));
    });
  }
}
