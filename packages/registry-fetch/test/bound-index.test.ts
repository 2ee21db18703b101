// The binding index clip publish writes at the tag, and how a worker reads it back: unit tests
// over the bytes (the end-to-end paths are in apps/cli/test/archive-trust.test.ts).
import { describe, expect, it } from 'vitest';
import type { Digest } from '@clip/shared';
import { BOUND_MANIFEST_ANNOTATION, bindIndexBytes, boundArtifacts } from '../src/archive-trust/bound-index.js';
import { selectPlatform } from '../src/platform.js';
import { parseIndexEntries } from '../src/resolve.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const ARTIFACT = { mediaType: OCI_MANIFEST, digest: d('a'), size: 655 };

describe('bound index', () => {
  it('turns a single manifest into a one-platform index plus the archive entry, which platform matching skips', () => {
    const bytes = bindIndexBytes({
      top: { digest: d('1'), mediaType: OCI_MANIFEST, bytes: new Uint8Array() },
      manifest: { digest: d('1'), mediaType: OCI_MANIFEST, size: 400, platform: { os: 'linux', architecture: 'amd64' } },
      artifact: ARTIFACT,
    });
    const entries = parseIndexEntries(bytes, 'bound index');
    expect(entries).toEqual([
      { mediaType: OCI_MANIFEST, digest: d('1'), size: 400, platform: { os: 'linux', architecture: 'amd64' } },
      {
        mediaType: OCI_MANIFEST,
        digest: d('a'),
        size: 655,
        platform: { os: 'unknown', architecture: 'unknown' },
        annotations: { [BOUND_MANIFEST_ANNOTATION]: d('1') },
      },
    ]);
    expect(selectPlatform(entries, { os: 'linux', architecture: 'amd64' }).digest).toBe(d('1'));
    expect(boundArtifacts(entries, d('1')).map((e) => e.digest)).toEqual([d('a')]);
    // Bound to that manifest only.
    expect(boundArtifacts(entries, d('2'))).toEqual([]);
  });

  it('keeps every platform and annotation of a source index and replaces an older archive of the same manifest', () => {
    const source = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: d('1'), size: 400, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: OCI_MANIFEST, digest: d('2'), size: 401, platform: { os: 'linux', architecture: 'arm64' } },
        {
          mediaType: OCI_MANIFEST,
          digest: d('b'),
          size: 600,
          platform: { os: 'unknown', architecture: 'unknown' },
          annotations: { [BOUND_MANIFEST_ANNOTATION]: d('2') },
        },
        {
          mediaType: OCI_MANIFEST,
          digest: d('c'),
          size: 600,
          platform: { os: 'unknown', architecture: 'unknown' },
          annotations: { [BOUND_MANIFEST_ANNOTATION]: d('1') },
        },
      ],
      annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' },
    };
    const bytes = bindIndexBytes({
      top: { digest: d('9'), mediaType: OCI_INDEX, bytes: new TextEncoder().encode(JSON.stringify(source)) },
      manifest: { digest: d('1'), mediaType: OCI_MANIFEST, size: 400 },
      artifact: ARTIFACT,
    });
    const parsed = JSON.parse(Buffer.from(bytes).toString()) as { annotations: unknown };
    expect(parsed.annotations).toEqual(source.annotations);
    const entries = parseIndexEntries(bytes, 'bound index');
    expect(entries.map((e) => e.digest)).toEqual([d('1'), d('2'), d('b'), d('a')]);
    expect(boundArtifacts(entries, d('1')).map((e) => e.digest)).toEqual([d('a')]);
    expect(boundArtifacts(entries, d('2')).map((e) => e.digest)).toEqual([d('b')]);
    expect(selectPlatform(entries, { os: 'linux', architecture: 'arm64' }).digest).toBe(d('2'));
  });
});
