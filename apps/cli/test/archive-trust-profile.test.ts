// Issue #15 against what later issues added to the archive artifact and the fleet: a registry
// writer's forged access profile (application/vnd.clip.profile.v1) next to the genuine archive
// is never applied unless the operator trusts referrers, and an archive found through a
// hosts.toml pull-through mirror is accepted, while one naming another repository is refused.
import { generateKeyPairSync } from 'node:crypto';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Digest } from '@clip/shared';
import { buildFixture, startRegistry, type BuiltLayout, type RunningRegistry } from '@clip/testkit';
import {
  altered,
  cliWithCache as cli,
  freshCache,
  GENUINE_TOOL,
  OCI_MANIFEST,
  publishLayout,
  pushForged,
  sha256,
  TOOL,
} from './archive-trust-harness.js';
import { removeAll, startMount, tempDir, type RunningMount, stopMounts } from './mount-harness.js';

const PROFILE_MEDIA_TYPE = 'application/vnd.clip.profile.v1';
const WINDOWS_MEDIA_TYPE = 'application/vnd.clip.windows.v1';

let work: string;
let registry: RunningRegistry;
let layout: BuiltLayout;
let keys: { privatePem: string; publicPem: string };
const mounts: RunningMount[] = [];

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

interface PulledJson {
  artifactDigest: string;
  blobDigest: string;
  trust: string;
  path: string;
  profile?: { digest: string; files: number; path: string };
}

beforeAll(async () => {
  work = await tempDir('archive-trust-profile');
  registry = await startRegistry();
  layout = await buildFixture('basic', join(work, 'layout'));
  const pair = generateKeyPairSync('ed25519');
  keys = { privatePem: join(work, 'sign.pem'), publicPem: join(work, 'verify.pem') };
  await writeFile(keys.privatePem, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(keys.publicPem, pair.publicKey.export({ type: 'spki', format: 'pem' }));
}, 120_000);

afterEach(() => stopMounts(mounts));

afterAll(async () => {
  await registry?.stop();
  await removeAll(work);
});

describe('archive trust: the access profile and mirrors', () => {
  it('a forged profile next to the genuine, signed archive is not applied: bound tag and --verify-key ignore it', async () => {
    const repo = 'trust/profile';
    const { summary, genuine } = await publishLayout(work, layout, registry, repo, ['--sign-key', keys.privatePem]);
    const tag = `${registry.host}/${repo}:v1`;
    const byManifest = `${registry.host}/${repo}@${layout.image.manifestDigest}`;
    // The attacker copies the published artifact (its archive signature included) and adds a profile.
    const published = (await (
      await fetch(`${registry.url}/v2/${repo}/manifests/${summary.archive.artifactDigest}`, { headers: { accept: OCI_MANIFEST } })
    ).json()) as { layers: Array<{ mediaType: string; digest: string; size: number }>; annotations: Record<string, string> };
    expect(published.annotations['dev.clip.archive.signature']).toBeDefined();
    const windows = published.layers.find((layer) => layer.mediaType === WINDOWS_MEDIA_TYPE);
    const evil = Buffer.from('/usr/share/doc/pkg/README\n');
    const forged = await pushForged(registry, repo, layout, genuine, summary.archive.artifactDigest, {
      extraBlobs: [
        ...(windows ? [{ existing: { digest: windows.digest as Digest, size: windows.size }, mediaType: WINDOWS_MEDIA_TYPE }] : []),
        { bytes: evil, mediaType: PROFILE_MEDIA_TYPE },
      ],
      annotations: published.annotations,
    });
    const cache = await freshCache(work);

    // Control: an operator who trusts referrers gets the forged artifact and its profile
    // (same archive, so every archive check passes) — the profile path does read referrers.
    const trusting = await cli(cache, ['pull-archive', byManifest, '--trust-referrers', '--json']);
    expect(trusting.code, trusting.stderr).toBe(0);
    const taken = JSON.parse(trusting.out) as PulledJson;
    expect(taken).toMatchObject({ artifactDigest: forged, blobDigest: summary.archive.blobDigest, trust: 'trusted-referrer' });
    expect(taken.profile?.digest).toBe(sha256(evil));
    expect(await readFile(taken.profile!.path)).toEqual(evil);
    // A worker mounting that cached archive file would apply it.
    const control = await startMount(taken.path, await tempDir('profile-control-mnt'));
    mounts.push(control);
    for (let i = 0; i < 400 && !/msg="applying the access profile"/.test(control.stderr()); i++)
      await new Promise((resolve) => setTimeout(resolve, 25));
    expect(control.stderr()).toMatch(/msg="applying the access profile" .*files=1/);
    await control.stop();

    // Deployed by the bound tag, in the same cache: the publisher's artifact, no profile, and
    // the forged profile left by the run above is gone from next to the archive.
    const bound = await cli(cache, ['pull-archive', tag, '--json']);
    expect(bound.code, bound.stderr).toBe(0);
    const boundJson = JSON.parse(bound.out) as PulledJson;
    expect(boundJson).toMatchObject({ artifactDigest: summary.archive.artifactDigest, trust: 'bound-index' });
    expect(boundJson.path).toBe(taken.path);
    expect(boundJson.profile).toBeUndefined();
    expect(await exists(taken.path.replace(/\.clip$/, '.profile'))).toBe(false);
    const mount = await startMount(tag, await tempDir('profile-bound-mnt'), [], { env: { CLIP_ARCHIVE_CACHE: cache } });
    mounts.push(mount);
    expect((await readFile(join(mount.mountpoint, TOOL.slice(1)))).equals(GENUINE_TOOL)).toBe(true);
    const metrics = await mount.stop();
    expect(mount.stderr()).not.toMatch(/applying the access profile/);
    expect(metrics?.['profileFiles'] ?? 0).toBe(0);

    // By manifest digest with --verify-key: the archive signature verifies, the profile has none.
    const signed = await cli(cache, ['pull-archive', byManifest, '--verify-key', keys.publicPem, '--json']);
    expect(signed.code, signed.stderr).toBe(0);
    expect(signed.stderr).toMatch(
      new RegExp(`skipping invalid archive referrer.*artifact=${forged}.*its profile layer is not signed \\(profile ${sha256(evil)}\\)`),
    );
    const signedJson = JSON.parse(signed.out) as PulledJson;
    expect(signedJson).toMatchObject({ artifactDigest: summary.archive.artifactDigest, trust: 'signature' });
    expect(signedJson.profile).toBeUndefined();
    expect(await exists(taken.path.replace(/\.clip$/, '.profile'))).toBe(false);
  }, 180_000);

  it('through a hosts.toml mirror: the archive is accepted; one storing its layers in another repository is refused', async () => {
    const repo = 'trust/mirrored';
    const { summary, genuine } = await publishLayout(work, layout, registry, repo);
    const elsewhere = altered(genuine, (c) => (c.metadata.storage = { ...c.metadata.storage!, repository: 'trust/other' }));
    const forged = await pushForged(registry, repo, layout, elsewhere, summary.archive.artifactDigest);
    const mirror = await startRegistry({ proxy: { remoteUrl: registry.url } });
    try {
      const hostsDir = join(work, 'certs.d');
      await mkdir(join(hostsDir, `${registry.host.replace(':', '_')}_`), { recursive: true });
      await writeFile(
        join(hostsDir, `${registry.host.replace(':', '_')}_`, 'hosts.toml'),
        `server = "http://${registry.host}"\n\n[host."http://${mirror.host}"]\n  capabilities = ["pull", "resolve"]\n`,
      );
      const tag = `${registry.host}/${repo}:v1`;
      const byManifest = `${registry.host}/${repo}@${layout.image.manifestDigest}`;

      // The bound archive, fetched from the mirror, names the origin repository: accepted.
      const viaMirror = await cli(await freshCache(work), ['cat', tag, TOOL, '--hosts-dir', hostsDir]);
      expect(viaMirror.code, viaMirror.stderr).toBe(0);
      expect(viaMirror.stdout.equals(GENUINE_TOOL)).toBe(true);
      expect(viaMirror.stderr).toMatch(/trust=bound-index via=index/);
      expect(mirror.logs()).toContain(`GET /v2/${repo}/blobs/${summary.archive.blobDigest}`);

      // Trusting referrers through the mirror: the other repository's archive is skipped by name.
      const trusting = await cli(await freshCache(work), ['cat', byManifest, TOOL, '--trust-referrers', '--hosts-dir', hostsDir]);
      expect(trusting.code, trusting.stderr).toBe(0);
      expect(trusting.stdout.equals(GENUINE_TOOL)).toBe(true);
      expect(trusting.stderr).toMatch(
        new RegExp(
          `skipping invalid archive referrer.*artifact=${forged}.*stores its layers in ${registry.host}/trust/other, but it was found through ${registry.host}/${repo}`,
        ),
      );
      expect(trusting.stderr).not.toMatch(/archive pull from a registry host failed/);
      // It was the mirror's copy that was checked.
      expect(mirror.logs()).toContain(`GET /v2/${repo}/blobs/${sha256(elsewhere)}`);

      // pull-archive --list reads through the mirror too, and says why the forged one is not used.
      const manifestGets = () => mirror.logs().split(`GET /v2/${repo}/manifests/${forged}`).length;
      const before = manifestGets();
      const list = await cli(await freshCache(work), ['pull-archive', byManifest, '--list', '--trust-referrers', '--hosts-dir', hostsDir]);
      expect(list.code, list.stderr).toBe(0);
      expect(list.out).toMatch(new RegExp(`^use +${summary.archive.artifactDigest} via `, 'm'));
      expect(list.out).toMatch(new RegExp(`^no +${forged} via .*stores its layers in ${registry.host}/trust/other`, 'm'));
      expect(manifestGets()).toBeGreaterThan(before);

      // Pinned through the mirror: refused, nothing served.
      const pinned = await cli(await freshCache(work), [
        'cat',
        byManifest,
        TOOL,
        '--archive-digest',
        sha256(elsewhere),
        '--hosts-dir',
        hostsDir,
      ]);
      expect(pinned.code).toBe(1);
      expect(pinned.stdout.length).toBe(0);
      expect(pinned.stderr).toMatch(/stores its layers in .*\/trust\/other, but it was found through .*\[CLIP_E_ARCHIVE_UNTRUSTED\]/);
    } finally {
      await mirror.stop();
    }
  }, 120_000);
});
