// Registry credentials reach the snapshotter the way they reach `clip mount <ref>`: a docker
// config ($DOCKER_CONFIG) serves the archive lookup and the image mount's range reads of a
// registry that requires a login; without them the pull falls back visibly instead of failing.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildLayout,
  freePort,
  type GeneratedContent,
  generateContent,
  type RunningRegistry,
  startRegistry,
  writeDockerConfig,
} from '@clip/testkit';
import { chainIds } from '../src/decision.js';
import { snapshotsClient } from './grpc-client.js';
import { CLI, metricValue, mountsUnder, run, type SnapshotterProcess, startSnapshotter } from './harness.js';

const USER = { username: 'kubelet', password: 'pw-18' };
const DATA: GeneratedContent = { generate: 'random', size: 300_000, seed: 18 };

let dir: string;
let registry: RunningRegistry;
let ref: string;
let layer: { digest: string; diffId: string };
const started: SnapshotterProcess[] = [];
/** No credentials anywhere: an empty docker config directory, no CLIP_REGISTRY_* variables. */
const noCredentials = () => ({
  DOCKER_CONFIG: join(dir, 'no-docker-config'),
  CLIP_REGISTRY_USERNAME: undefined,
  CLIP_REGISTRY_PASSWORD: undefined,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clip-snap-auth-'));
  registry = await startRegistry({ auth: { kind: 'htpasswd', users: [USER] } });
  const layout = await buildLayout(join(dir, 'layout'), {
    tag: 'v1',
    layers: [
      {
        compression: 'gzip',
        entries: [
          { type: 'dir', path: 'data' },
          { type: 'file', path: 'data/blob.bin', content: DATA },
        ],
      },
    ],
  });
  const image = layout.images[0];
  if (!image?.layers[0]) throw new Error('layout has no layer');
  layer = image.layers[0];
  ref = `${registry.host}/private/app:v1`;
  await run(process.execPath, [CLI, 'publish', image.ref, ref], {
    env: { ...process.env, CLIP_LOG_LEVEL: 'warn', CLIP_REGISTRY_USERNAME: USER.username, CLIP_REGISTRY_PASSWORD: USER.password },
    timeout: 120_000,
  });
  const dockerConfig = join(dir, 'docker-config');
  await mkdir(join(dir, 'no-docker-config'));
  await writeDockerConfig(dockerConfig, registry.host, USER.username, USER.password);
}, 120_000);

afterAll(async () => {
  for (const s of started) await s.stop();
  for (const { path } of (await mountsUnder(dir).catch(() => [])).reverse()) await run('umount', ['-l', path]).catch(() => undefined);
  await registry?.stop();
  if (dir) await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}, 60_000);

async function snapshotter(name: string, env: NodeJS.ProcessEnv): Promise<SnapshotterProcess> {
  const s = await startSnapshotter({
    socket: join(dir, `${name}.sock`),
    root: join(dir, `${name}-root`),
    stateDir: join(dir, `${name}-state`),
    cacheDir: join(dir, `${name}-cache`),
    metricsPort: await freePort(),
    env,
  });
  started.push(s);
  return s;
}

const labels = () => ({
  'containerd.io/snapshot.ref': chainIds([layer.diffId])[0] as string,
  'containerd.io/snapshot/cri.image-ref': ref,
  'containerd.io/snapshot/cri.layer-digest': layer.digest,
});

describe('registry credentials', () => {
  it('a docker config serves the archive lookup and the lazy mount of a registry that requires a login', async () => {
    const s = await snapshotter('auth', { ...noCredentials(), DOCKER_CONFIG: join(dir, 'docker-config') });
    const client = snapshotsClient(s.socket);
    try {
      const target = labels()['containerd.io/snapshot.ref'];
      const prepared = await client.call('Prepare', { key: `k8s.io/1/extract-1 ${target}`, parent: '', labels: labels() });
      expect(prepared.code, prepared.details).toBe(grpc.status.ALREADY_EXISTS);
      const view = await client.call('View', { key: 'k8s.io/2/view', parent: target });
      expect(view.code, view.details).toBe(0);
      const [mount] = (view.response?.['mounts'] ?? []) as Array<{ type: string; source: string }>;
      expect(mount?.type).toBe('bind');
      // Bytes read by range through the image mount, with the credentials.
      expect(Buffer.compare(await readFile(join(mount?.source ?? '', 'data/blob.bin')), generateContent(DATA))).toBe(0);
      for (const key of ['k8s.io/2/view', target]) expect((await client.call('Remove', { key })).code).toBe(0);
    } finally {
      client.close();
    }
  }, 60_000);

  it('without credentials the layer falls back (registry_error), logged with the image', async () => {
    const s = await snapshotter('anon', noCredentials());
    const client = snapshotsClient(s.socket);
    try {
      const target = labels()['containerd.io/snapshot.ref'];
      const prepared = await client.call('Prepare', { key: `k8s.io/3/extract-3 ${target}`, parent: '', labels: labels() });
      expect(prepared.code, prepared.details).toBe(0);
      expect(metricValue(await s.metrics(), 'clip_snapshotter_fallbacks_total{reason="registry_error"}')).toBe(1);
      const logged = s
        .logs()
        .split('\n')
        .filter((l) => l.includes('not lazy'));
      expect(logged).toHaveLength(1);
      expect(logged[0]).toContain(`image=${ref}`);
      expect(logged[0]).toMatch(/reason=registry_error .*(credential|auth|401|unauthorized)/i);
    } finally {
      client.close();
    }
  }, 60_000);
});
