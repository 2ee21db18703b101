// Shared vitest settings: workspace packages resolve to their TypeScript sources,
// so tests never run against a stale dist/ build.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));
const workspace: Record<string, string> = {
  '@clip/shared': 'packages/shared',
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
      alias: Object.entries(workspace).map(([name, dir]) => ({
        find: new RegExp(`^${name}/(.*)$`),
        replacement: `${root}${dir}/src/$1.ts`,
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
