// Issue #15, as an attacker with push access to a repository (and nothing else) would try it,
// against fresh workers and real registries: forged archives are built with the project's own
// codec and pushed as referrers of the published manifest, the way clip publish pushes its own.
// The worker must serve the genuine bytes or refuse clearly, never the forged ones.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ARCHIVE_MAGIC, type ArchiveContents, encodeDataArchive, openArchive } from '@clip/archive-format';
import type { Digest } from '@clip/shared';
import { openImageSource, pushImage } from '@clip/registry-fetch';
import {
  archiveContents,
  buildFixture,
  skopeoCopy,
  startRegistry,
  umociUnpack,
  type BuiltLayout,
  type RunningRegistry,
} from '@clip/testkit';
import {
  altered,
  cliWithCache as cli,
  freshCache,
  GENUINE_TOOL,
  publishLayout,
  pushForged as pushForgedFor,
  remapped,
  sha256,
  TOOL,
} from './archive-trust-harness.js';
import { removeAll, sh, startMount, tempDir, type RunningMount, stopMounts } from './mount-harness.js';

let work: string;
let registryA: RunningRegistry;
let registryB: RunningRegistry;
let layout: BuiltLayout;
let genuineTool: Buffer;
let keys: { privatePem: string; publicPem: string; otherPublicPem: string };
const mounts: RunningMount[] = [];

/** A fresh worker's empty archive cache. */
const fresh = () => freshCache(work);

const publish = (registry: RunningRegistry, repo: string, extra: string[] = []) => publishLayout(work, layout, registry, repo, extra);

/** A forged archive referrer of the published image, tried before the artifact `before`. */
const pushForged = (registry: RunningRegistry, repo: string, blob: Uint8Array, before: Digest) =>
  pushForgedFor(registry, repo, layout, blob, before);

beforeAll(async () => {
  work = await tempDir('archive-trust');
  [registryA, registryB] = await Promise.all([startRegistry(), startRegistry()]);
  layout = await buildFixture('basic', join(work, 'layout'));
  genuineTool = GENUINE_TOOL;
  const pair = generateKeyPairSync('ed25519');
  keys = {
    privatePem: join(work, 'sign.pem'),
    publicPem: join(work, 'verify.pem'),
    otherPublicPem: join(work, 'other.pem'),
  };
  await writeFile(keys.privatePem, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await writeFile(keys.publicPem, pair.publicKey.export({ type: 'spki', format: 'pem' }));
  await writeFile(keys.otherPublicPem, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
}, 120_000);

afterEach(() => stopMounts(mounts));

afterAll(async () => {
  await Promise.all([registryA?.stop(), registryB?.stop()]);
  await removeAll(work);
});

describe('archive trust', () => {
  it('remapped file table: the bound tag, a signature or a pin serve the genuine bytes; an unbound manifest digest is refused', async () => {
    const repo = 'trust/remap';
    const { summary, genuine } = await publish(registryA, repo, ['--sign-key', keys.privatePem]);
    expect(summary.archive.boundIndexDigest).toBe(summary.imageDigest);
    expect(summary.deploy).toBe(`${registryA.host}/${repo}@${summary.imageDigest}`);
    const forged = await pushForged(registryA, repo, remapped(genuine), summary.archive.artifactDigest);
    const tag = `${registryA.host}/${repo}:v1`;
    const byManifest = `${registryA.host}/${repo}@${layout.image.manifestDigest}`;

    // Sanity: the forged archive really maps TOOL to README's bytes (what the old worker served).
    const forgedFile = join(work, 'remapped.clip');
    await writeFile(forgedFile, remapped(genuine));
    const servedForged = await cli(await fresh(), ['cat', forgedFile, TOOL]);
    expect(servedForged.code).toBe(0);
    expect(servedForged.stdout.length).toBe(20_000);

    // Deployed by tag or by the bound index digest: exactly the bound archive.
    for (const reference of [tag, summary.deploy]) {
      const cat = await cli(await fresh(), ['cat', reference, TOOL]);
      expect(cat.stderr).toMatch(/trust=bound-index via=index/);
      expect(cat.code).toBe(0);
      expect(cat.stdout.equals(genuineTool)).toBe(true);
    }
    // Other tools still take the tag as an image: skopeo picks the platform, umoci unpacks it;
    // skopeo --all copies the archive artifact along.
    await skopeoCopy(`docker://${tag}`, `oci:${join(work, 'copied')}:v1`);
    const rootfs = await umociUnpack(`${join(work, 'copied')}:v1`, join(work, 'bundle'));
    expect((await readFile(join(rootfs, TOOL.slice(1)))).equals(genuineTool)).toBe(true);
    await skopeoCopy(`docker://${tag}`, `oci:${join(work, 'copied-all')}:v1`, { all: true });
    expect((await readdir(join(work, 'copied-all', 'blobs', 'sha256'))).includes(summary.archive.blobDigest.slice('sha256:'.length))).toBe(
      true,
    );

    // Through FUSE on a fresh worker too.
    const mountpoint = await tempDir('mnt');
    const mount = await startMount(tag, mountpoint);
    mounts.push(mount);
    expect((await readFile(join(mountpoint, TOOL.slice(1)))).equals(genuineTool)).toBe(true);
    // clip mount --archive-digest pins by the plain manifest digest (no binding needed).
    const pinnedMount = await startMount(byManifest, await tempDir('mnt-pinned'), ['--archive-digest', summary.archive.blobDigest], {
      env: { CLIP_ARCHIVE_CACHE: await fresh() },
    });
    mounts.push(pinnedMount);
    expect(pinnedMount.stderr()).toMatch(new RegExp(`trust=pinned via=digest .*archive=${summary.archive.blobDigest}`));
    expect((await readFile(join(pinnedMount.mountpoint, TOOL.slice(1)))).equals(genuineTool)).toBe(true);

    // By plain manifest digest: unbound, refused, naming what to do.
    const refused = await cli(await fresh(), ['cat', byManifest, TOOL]);
    expect(refused.code).toBe(1);
    expect(refused.stdout.length).toBe(0);
    expect(refused.stderr).toMatch(
      /no archive is bound to .*trust\/remap@sha256:.*--archive-digest.*--verify-key.*--trust-referrers \[CLIP_E_ARCHIVE_UNBOUND\]/,
    );

    // With a verify key: the unsigned forged referrer is skipped by name, the signed one served.
    const signed = await cli(await fresh(), ['cat', byManifest, TOOL, '--verify-key', keys.publicPem]);
    expect(signed.code).toBe(0);
    expect(signed.stdout.equals(genuineTool)).toBe(true);
    expect(signed.stderr).toMatch(new RegExp(`skipping invalid archive referrer.*artifact=${forged}.*not signed`));
    expect(signed.stderr).toMatch(/trust=signature/);
    const otherKey = await cli(await fresh(), ['cat', byManifest, TOOL, '--verify-key', keys.otherPublicPem]);
    expect(otherKey.code).toBe(1);
    expect(otherKey.stderr).toMatch(/signature does not verify with the --verify-key/);

    // Pinned: the genuine digest serves genuine bytes.
    const pinned = await cli(await fresh(), ['cat', byManifest, TOOL, '--archive-digest', summary.archive.blobDigest]);
    expect(pinned.code).toBe(0);
    expect(pinned.stdout.equals(genuineTool)).toBe(true);

    // --list shows both archives and which one the deployed tag binds.
    const list = await cli(await fresh(), ['pull-archive', tag, '--list', '--json']);
    expect(list.code).toBe(0);
    const listing = JSON.parse(list.out) as {
      candidates: Array<{ artifactDigest: string; via: string; usable: boolean; reason?: string }>;
    };
    expect(listing.candidates).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ artifactDigest: summary.archive.artifactDigest, via: 'index', usable: true, chosen: true }),
        expect.objectContaining({
          artifactDigest: forged,
          via: 'tag',
          usable: false,
          chosen: false,
          reason: expect.stringMatching(/unbound referrer/),
        }),
      ]),
    );

    // ls and inspect take the reference as well.
    const ls = await cli(await fresh(), ['ls', tag, '/usr/bin']);
    expect(ls.code).toBe(0);
    expect(ls.out.split('\n')).toEqual(expect.arrayContaining(['tool', 'tool-relative', 'tool-up']));
    const inspect = await cli(await fresh(), ['inspect', tag, '--json']);
    expect(inspect.code).toBe(0);
    expect(JSON.parse(inspect.out)).toMatchObject({
      mode: 'oci',
      metadata: { storage: { registry: registryA.host, repository: repo, manifestDigest: layout.image.manifestDigest } },
    });
  }, 180_000);

  it('containerd pulls the bound tag as the image: the archive entry is skipped by platform matching', async () => {
    const repo = 'trust/containerd';
    const { summary } = await publish(registryA, repo);
    const root = await mkdtemp(join(work, 'containerd-'));
    const socket = join(root, 'c.sock');
    await writeFile(
      join(root, 'config.toml'),
      `version = 2\nroot = "${root}/root"\nstate = "${root}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\naddress = "${socket}"\n`,
    );
    const daemon = spawn('containerd', ['--config', join(root, 'config.toml')], { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => daemon.once('exit', () => resolve()));
    try {
      const ctr = (args: string[]) => sh(`ctr -a '${socket}' ${args.join(' ')}`);
      for (let i = 0; (await ctr(['version'])).code !== 0; i++) {
        if (i > 100) throw new Error('containerd did not start');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const pulled = await ctr(['images', 'pull', '--plain-http', `${registryA.host}/${repo}:v1`]);
      expect(pulled.code).toBe(0);
      expect(pulled.stdout).toMatch(new RegExp(`unpacking linux/\\S+ ${summary.imageDigest}`));
      const content = await ctr(['content', 'ls', '-q']);
      expect(content.stdout).toContain(layout.image.layers[0]!.digest);
      // Neither the archive artifact nor the archive blob was fetched.
      expect(content.stdout).not.toContain(summary.archive.artifactDigest);
      expect(content.stdout).not.toContain(summary.archive.blobDigest);
    } finally {
      daemon.kill('SIGTERM');
      await exited;
    }
  }, 120_000);

  it('publish --no-bind leaves the tag on the image: workers then refuse unless pinned', async () => {
    const repo = 'trust/unbound';
    const { summary } = await publish(registryA, repo, ['--no-bind']);
    expect(summary.archive.boundIndexDigest).toBeUndefined();
    expect(summary.imageDigest).toBe(layout.topDigest);
    const tag = `${registryA.host}/${repo}:v1`;
    const refused = await cli(await fresh(), ['cat', tag, TOOL]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/\[CLIP_E_ARCHIVE_UNBOUND\]/);
    const pinned = await cli(await fresh(), ['cat', tag, TOOL, '--archive-digest', summary.archive.blobDigest]);
    expect(pinned.code).toBe(0);
    expect(pinned.stdout.equals(genuineTool)).toBe(true);
    expect(pinned.stderr).toMatch(/trust=pinned via=digest/);
  }, 120_000);

  it('data-carrying archive claiming the manifest: never accepted for a registry image', async () => {
    const repo = 'trust/data';
    const { summary } = await publish(registryA, repo);
    const dir = join(work, 'attacker-tree');
    await mkdir(join(dir, 'usr/bin'), { recursive: true });
    await mkdir(join(dir, 'etc'), { recursive: true });
    await writeFile(join(dir, 'etc/os-release'), 'NAME="attacker"\n');
    await writeFile(join(dir, 'usr/bin/tool'), '#!/bin/sh\necho owned\n', { mode: 0o755 });
    const made = await cli(await fresh(), ['archive', dir, '-o', join(work, 'attacker.clip')]);
    expect(made.code).toBe(0);
    const plain = await readFile(join(work, 'attacker.clip'));
    const archive = openArchive(plain);
    const contents = archiveContents(archive);
    contents.metadata.storage = { registry: registryA.host, repository: repo, manifestDigest: layout.image.manifestDigest };
    const data = plain.subarray(archive.dataSection!.offset, archive.dataSection!.offset + archive.dataSection!.length);
    const forgedBytes = encodeDataArchive(contents, data);
    const forged = await pushForged(registryA, repo, forgedBytes, summary.archive.artifactDigest);
    const byManifest = `${registryA.host}/${repo}@${layout.image.manifestDigest}`;

    // Even when the operator trusts referrers, the data archive is skipped by name.
    const trusting = await cli(await fresh(), ['cat', byManifest, TOOL, '--trust-referrers']);
    expect(trusting.code).toBe(0);
    expect(trusting.stdout.equals(genuineTool)).toBe(true);
    expect(trusting.stderr).toMatch(new RegExp(`skipping invalid archive referrer.*artifact=${forged}.*data-carrying archive`));
    expect(trusting.stderr).not.toMatch(/mode=data/);
    // A worker that requires signatures refuses this unsigned publish even through its bound tag.
    const unsigned = await cli(await fresh(), ['cat', `${registryA.host}/${repo}:v1`, TOOL, '--verify-key', keys.publicPem]);
    expect(unsigned.code).toBe(1);
    expect(unsigned.stderr).toMatch(
      new RegExp(`archive artifact ${summary.archive.artifactDigest} in .*: not signed \\[CLIP_E_ARCHIVE_UNBOUND\\]`),
    );
    // Pinned explicitly: refused, and nothing is served.
    const pinned = await cli(await fresh(), ['cat', byManifest, TOOL, '--archive-digest', sha256(forgedBytes)]);
    expect(pinned.code).toBe(1);
    expect(pinned.stdout.length).toBe(0);
    expect(pinned.stderr).toMatch(/is a data-carrying archive .*never accepted for the registry image .*\[CLIP_E_ARCHIVE_UNTRUSTED\]/);
  }, 120_000);

  it('storage elsewhere or layers that differ: refused naming what differs; a declared mirror is accepted', async () => {
    const repo = 'trust/elsewhere';
    const { summary, genuine } = await publish(registryA, repo);
    const source = await openImageSource(layout.ref);
    try {
      await pushImage(source, `${registryB.host}/mirror/basic:v1`);
    } finally {
      await source.close();
    }
    const elsewhere = altered(
      genuine,
      (c) => (c.metadata.storage = { ...c.metadata.storage!, registry: registryB.host, repository: 'mirror/basic' }),
    );
    const forged = await pushForged(registryA, repo, elsewhere, summary.archive.artifactDigest);
    const byManifest = `${registryA.host}/${repo}@${layout.image.manifestDigest}`;

    const trusting = await cli(await fresh(), ['cat', byManifest, TOOL, '--trust-referrers']);
    expect(trusting.code).toBe(0);
    expect(trusting.stdout.equals(genuineTool)).toBe(true);
    expect(trusting.stderr).toMatch(
      new RegExp(
        `artifact=${forged}.*stores its layers in ${registryB.host}/mirror/basic, but it was found through ${registryA.host}/${repo}`,
      ),
    );

    const pinned = await cli(await fresh(), ['cat', byManifest, TOOL, '--archive-digest', sha256(elsewhere)]);
    expect(pinned.code).toBe(1);
    expect(pinned.stderr).toMatch(/stores its layers in .*mirror\/basic.*\[CLIP_E_ARCHIVE_UNTRUSTED\]/);
    // Declared as a mirror, the same pin is served (layers read from the other registry).
    const mirrored = await cli(await fresh(), [
      'cat',
      byManifest,
      TOOL,
      '--archive-digest',
      sha256(elsewhere),
      '--mirror-of',
      `${registryB.host}/mirror/basic`,
    ]);
    expect(mirrored.code).toBe(0);
    expect(mirrored.stdout.equals(genuineTool)).toBe(true);

    // A layer's diffID that is not the config's.
    const wrongDiff = altered(genuine, (c) => (c.layers[0]!.diffId = sha256(Buffer.from('not the layer'))));
    await pushForged(registryA, repo, wrongDiff, summary.archive.artifactDigest);
    const diffRefused = await cli(await fresh(), ['cat', byManifest, TOOL, '--archive-digest', sha256(wrongDiff)]);
    expect(diffRefused.code).toBe(1);
    expect(diffRefused.stderr).toMatch(
      new RegExp(
        `layer 0 diffID is sha256:[0-9a-f]{64}, manifest ${layout.image.manifestDigest} of .* says ${layout.image.layers[0]!.diffId}`,
      ),
    );
    // The manifest digest, a layer's digest and its size: each refused naming both values.
    const layer = layout.image.layers[0]!;
    const otherDigest = sha256(Buffer.from('another blob'));
    const cases: Array<[(c: ArchiveContents) => void, RegExp]> = [
      [
        (c) => (c.metadata.storage = { ...c.metadata.storage!, manifestDigest: otherDigest }),
        new RegExp(`indexes manifest ${otherDigest}, not the image's ${layout.image.manifestDigest}`),
      ],
      [(c) => (c.layers[0]!.digest = otherDigest), new RegExp(`layer 0 digest is ${otherDigest}, manifest .* says ${layer.digest}`)],
      [
        (c) => (c.layers[0]!.compressedSize = layer.size + 1),
        new RegExp(`layer 0 size is ${layer.size + 1}, manifest .* says ${layer.size}`),
      ],
    ];
    for (const [change, message] of cases) {
      const wrong = altered(genuine, change);
      await pushForged(registryA, repo, wrong, summary.archive.artifactDigest);
      const refused = await cli(await fresh(), ['cat', byManifest, TOOL, '--archive-digest', sha256(wrong)]);
      expect(refused.code).toBe(1);
      expect(refused.stdout.length).toBe(0);
      expect(refused.stderr).toMatch(message);
      expect(refused.stderr).toMatch(/\[CLIP_E_ARCHIVE_UNTRUSTED\]/);
    }
  }, 120_000);

  it('junk referrers (bad magic, oversized) are skipped by name without downloading them; the genuine archive is used', async () => {
    const repo = 'trust/junk';
    const { summary } = await publish(registryA, repo);
    const junk = Buffer.alloc(5 * 1024, 0x5a);
    const zeros = Buffer.alloc(8 * 1024 * 1024);
    // Starts like an archive: only its size gives it away.
    const huge = Buffer.alloc(48 * 1024 * 1024);
    huge.set(ARCHIVE_MAGIC);
    const junkArtifact = await pushForged(registryA, repo, junk, summary.archive.artifactDigest);
    const zerosArtifact = await pushForged(registryA, repo, zeros, summary.archive.artifactDigest);
    const hugeArtifact = await pushForged(registryA, repo, huge, summary.archive.artifactDigest);
    const byManifest = `${registryA.host}/${repo}@${layout.image.manifestDigest}`;

    const pulled = await cli(await fresh(), ['pull-archive', byManifest, '--trust-referrers', '--json']);
    expect(pulled.code).toBe(0);
    const result = JSON.parse(pulled.out) as { blobDigest: string; networkBytes: number; trust: string; artifactDigest: string };
    expect(result).toMatchObject({
      blobDigest: summary.archive.blobDigest,
      artifactDigest: summary.archive.artifactDigest,
      trust: 'trusted-referrer',
    });
    expect(pulled.stderr).toMatch(new RegExp(`artifact=${junkArtifact}.*not a clip archive \\(bad magic\\)`));
    expect(pulled.stderr).toMatch(new RegExp(`artifact=${zerosArtifact}.*not a clip archive \\(bad magic\\); not downloading it`));
    expect(pulled.stderr).toMatch(
      new RegExp(`artifact=${hugeArtifact}.*is 50331648 bytes, more than the \\d+ bytes an archive of this image can need`),
    );
    // The choice is deterministic and the log says how it was made.
    expect(pulled.stderr).toMatch(
      new RegExp(
        `msg="downloaded archive".*artifact=${summary.archive.artifactDigest}.*candidates=4 chosen="first valid by artifact digest"`,
      ),
    );
    // Neither the 8 MiB nor the 48 MiB blob was downloaded.
    expect(result.networkBytes).toBeLessThan(1024 * 1024);

    // Pinned, the huge blob has no descriptor size: the download stops at the image's limit.
    const pinnedHuge = await cli(await fresh(), ['pull-archive', byManifest, '--archive-digest', sha256(huge)]);
    expect(pinnedHuge.code).toBe(1);
    expect(pinnedHuge.stderr).toMatch(
      new RegExp(`archive blob ${sha256(huge)} in .* is larger than \\d+ bytes; stopped downloading it \\[CLIP_E_ARCHIVE_UNTRUSTED\\]`),
    );

    // --list names every candidate and why it is not usable.
    const list = await cli(await fresh(), ['pull-archive', byManifest, '--list', '--trust-referrers']);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(new RegExp(`^use +${summary.archive.artifactDigest} via tag`, 'm'));
    for (const artifact of [junkArtifact, zerosArtifact, hugeArtifact])
      expect(list.out).toMatch(new RegExp(`^no +${artifact} via tag.*: `, 'm'));
  }, 120_000);

  it('archive cache: two registries serving the same image digest do not share a cached archive', async () => {
    const registryC = await startRegistry();
    try {
      const repo = 'trust/cache';
      const fromC = await publish(registryC, repo);
      const fromB = await publish(registryB, repo);
      expect(fromC.summary.manifestDigest).toBe(fromB.summary.manifestDigest);
      const cache = await tempDir('shared-cache');
      const viaC = await cli(cache, ['cat', `${registryC.host}/${repo}:v1`, TOOL]);
      expect(viaC.code).toBe(0);
      await registryC.stop();
      // C is gone; B's archive is fetched and used, not C's cached one (which would EIO).
      const viaB = await cli(cache, ['cat', `${registryB.host}/${repo}:v1`, TOOL]);
      expect(viaB.code).toBe(0);
      expect(viaB.stdout.equals(genuineTool)).toBe(true);
      expect(viaB.stderr).toMatch(/msg="downloaded archive"/);
      const dirs = (await readdir(cache)).sort();
      expect(dirs).toEqual([encodeURIComponent(registryB.host), encodeURIComponent(registryC.host)].sort());
      // Second time from B: cache hit.
      const again = await cli(cache, ['cat', `${registryB.host}/${repo}:v1`, TOOL]);
      expect(again.code).toBe(0);
      expect(again.stderr).toMatch(/msg="using cached archive"/);
      // A local user who can write the cache plants a remapped archive under the genuine name:
      // it is re-hashed, refused, and the genuine archive downloaded again.
      const planted = join(
        cache,
        encodeURIComponent(registryB.host),
        'trust',
        'cache',
        `${fromB.summary.archive.blobDigest.replace(':', '-')}.clip`,
      );
      await writeFile(planted, remapped(fromB.genuine));
      const afterPlant = await cli(cache, ['cat', `${registryB.host}/${repo}:v1`, TOOL]);
      expect(afterPlant.code).toBe(0);
      expect(afterPlant.stdout.equals(genuineTool)).toBe(true);
      expect(afterPlant.stderr).toMatch(/cached archive unusable; downloading it again.*digest mismatch/);
      expect(sha256(await readFile(planted))).toBe(fromB.summary.archive.blobDigest);
    } finally {
      await registryC.stop();
    }
  }, 120_000);
});
