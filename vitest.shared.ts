// Shared vitest settings: workspace packages resolve to their TypeScript sources,
// so tests never run against a stale dist/ build.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));
const workspace: Record<string, string> = {
  '@clip/shared': 'packages/shared',
  '@clip/archive-format': 'packages/archive-format',
  '@clip/read-engine': 'packages/read-engine',
  '@clip/registry-fetch': 'packages/registry-fetch',
  '@clip/indexer': 'packages/indexer',
  '@clip/mounter': 'packages/mounter',
  '@clip/testkit': 'packages/testkit',
  '@clip/snapshotter': 'packages/snapshotter',
  '@clip/runtime': 'packages/runtime',
};

export function clipVitestConfig(options: { testTimeout?: number } = {}) {
  return defineConfig({
    resolve: {
      // Each package is imported through its public surface (`"."` → src/index.ts).
      alias: Object.entries(workspace).map(([name, dir]) => ({
        find: new RegExp(`^${name}$`),
        replacement: `${root}${dir}/src/index.ts`,
      })),
    },
    test: {
      include: ['test/**/*.test.ts'],
      testTimeout: options.testTimeout ?? 60_000,
      hookTimeout: 300_000,
      pool: 'forks',
    },
  });
}
