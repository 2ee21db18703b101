// pull-archive refuses archives that do not belong to the image: a valid archive of another
// image published as a referrer, and a referrer that is not an archive artifact. The image is
// pushed without clip publish's bound index, so referrers are only considered on request.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createArchive } from '@clip/indexer';
import { openImageSource, openRegistryTarget, pushImage, pushReferrer } from '@clip/registry-fetch';
import { buildFixture, type RunningRegistry, startRegistry } from '@clip/testkit';
import { removeAll, runCli, tempDir } from './mount-harness.js';

const ARTIFACT_TYPE = 'application/vnd.clip.archive.v2';

let work: string;
let registry: RunningRegistry;

beforeAll(async () => {
  work = await tempDir('publish-verify');
  registry = await startRegistry();
});

afterAll(async () => {
  await registry?.stop();
  await removeAll(work);
});

describe('clip pull-archive verification', () => {
  it('rejects an archive of another image and ignores referrers of another type', async () => {
    const basic = await buildFixture('basic', join(work, 'basic'));
    const special = await buildFixture('special', join(work, 'special'));
    const target = `${registry.host}/verify/basic:v1`;
    const source = await openImageSource(basic.ref);
    try {
      await pushImage(source, target);
    } finally {
      await source.close();
    }
    const subject = {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: basic.image.manifestDigest,
      size: basic.image.manifestSize,
    };
    const destination = openRegistryTarget(target);
    try {
      // Only a referrer of another type: "not published".
      await pushReferrer(destination, {
        artifactType: 'application/vnd.example.sbom',
        subject,
        blob: { bytes: Buffer.from('{}'), mediaType: 'application/json' },
      });
      const none = await runCli(['pull-archive', target, '--cache-dir', join(work, 'cache1')]);
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/no clip archive is published .*\[CLIP_E_ARCHIVE_NOT_PUBLISHED\]/);

      // A real archive, but of the other image.
      const wrong = join(work, 'special.clip');
      await createArchive({ source: special.ref, storageRef: target, output: wrong, workers: false });
      await pushReferrer(destination, {
        artifactType: ARTIFACT_TYPE,
        subject,
        blob: { bytes: await readFile(wrong), mediaType: ARTIFACT_TYPE },
      });
    } finally {
      await destination.close();
    }
    const unbound = await runCli(['pull-archive', target, '--cache-dir', join(work, 'cache2'), '-o', join(work, 'out.clip')]);
    expect(unbound.code).toBe(1);
    expect(unbound.stderr).toMatch(/no archive is bound to .*1 archive referrer\(s\) exist.*\[CLIP_E_ARCHIVE_UNBOUND\]/);
    const rejected = await runCli([
      'pull-archive',
      target,
      '--trust-referrers',
      '--cache-dir',
      join(work, 'cache2'),
      '-o',
      join(work, 'out.clip'),
    ]);
    expect(rejected.code).toBe(1);
    expect(rejected.stderr).toMatch(
      new RegExp(
        `no valid clip archive .* among 1 referrer\\(s\\): sha256:[0-9a-f]{64}: .*indexes manifest ${special.image.manifestDigest}, not the image's ${basic.image.manifestDigest}.*\\[CLIP_E_ARCHIVE_NOT_PUBLISHED\\]`,
      ),
    );
    expect(await readFile(join(work, 'out.clip')).catch(() => undefined)).toBeUndefined();
  });
});
