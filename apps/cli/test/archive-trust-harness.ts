// Tools of the issue #15 attack tests (archive-trust*.test.ts): what an attacker with push
// access to a repository builds with the project's own codec and pushes as a referrer of the
// published manifest, the way clip publish pushes its own artifact.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { encodeArchive, openArchive, type ArchiveContents } from '@clip/archive-format';
import type { PublishSummary } from '@clip/indexer';
import type { Digest } from '@clip/shared';
import { openRegistryTarget, pushReferrer, type Descriptor } from '@clip/registry-fetch';
import { archiveContents, type BuiltLayout, type RunningRegistry } from '@clip/testkit';
import { runCli } from './mount-harness.js';

export const ARTIFACT_TYPE = 'application/vnd.clip.archive.v2';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const TOOL = '/usr/bin/tool';
export const README = '/usr/share/doc/pkg/README';
/** TOOL's bytes in the 'basic' fixture. */
export const GENUINE_TOOL = Buffer.from('#!/bin/sh\necho tool\n');

export const sha256 = (bytes: Uint8Array): Digest => `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
/** The OCI empty descriptor (config of every artifact). */
const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(Buffer.from('{}')), size: 2 };

/** A fresh worker's empty archive cache. */
export const freshCache = (work: string) => mkdtemp(join(work, 'cache-'));

/** Runs the cli as a worker with its own archive cache. */
export async function cliWithCache(cache: string, args: string[]) {
  process.env['CLIP_ARCHIVE_CACHE'] = cache;
  const result = await runCli(args, { timeoutMs: 90_000 });
  return { ...result, out: result.stdout.toString() };
}

/** `clip publish layout registry/repo:v1`; the summary and the genuine archive bytes. */
export async function publishLayout(
  work: string,
  layout: BuiltLayout,
  registry: RunningRegistry,
  repo: string,
  extra: string[] = [],
): Promise<{ summary: PublishSummary; genuine: Buffer }> {
  const out = join(work, `${registry.port}-${repo.replace(/\//g, '_')}.clip`);
  const result = await runCli(['publish', layout.ref, `${registry.host}/${repo}:v1`, '--json', '--no-progress', '-o', out, ...extra], {
    timeoutMs: 120_000,
  });
  expect(result.stderr).not.toMatch(/clip: (internal )?error/);
  expect(result.code).toBe(0);
  return { summary: JSON.parse(result.stdout.toString()) as PublishSummary, genuine: await readFile(out) };
}

/** The subject every forged referrer points at: the published image manifest. */
export function imageSubject(layout: BuiltLayout): Descriptor {
  return { mediaType: OCI_MANIFEST, digest: layout.image.manifestDigest, size: layout.image.manifestSize };
}

/** A further artifact layer: new bytes, or a blob already in the repository. */
type ExtraBlob = { bytes: Uint8Array; mediaType: string } | { existing: { digest: Digest; size: number }; mediaType: string };

const descriptorOf = (blob: ExtraBlob) =>
  'existing' in blob
    ? { mediaType: blob.mediaType, digest: blob.existing.digest, size: blob.existing.size }
    : { mediaType: blob.mediaType, digest: sha256(blob.bytes), size: blob.bytes.length };

/** The artifact manifest pushReferrer writes, byte for byte (checked against its answer below). */
function artifactManifestDigest(
  subject: Descriptor,
  blob: Uint8Array,
  extraBlobs: readonly ExtraBlob[],
  annotations: Record<string, string>,
): Digest {
  return sha256(
    new TextEncoder().encode(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: ARTIFACT_TYPE,
        config: EMPTY_CONFIG,
        layers: [{ mediaType: ARTIFACT_TYPE, digest: sha256(blob), size: blob.length }, ...extraBlobs.map(descriptorOf)],
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
        annotations,
      }),
    ),
  );
}

/**
 * Pushes `blob` (and `extraBlobs`, e.g. a profile layer) as an archive referrer of the image
 * whose artifact digest sorts before `before` (workers try referrers in digest order), so it is
 * tried first. `annotations` (e.g. copied signatures) are kept; a nonce annotation is added.
 */
export async function pushForged(
  registry: RunningRegistry,
  repo: string,
  layout: BuiltLayout,
  blob: Uint8Array,
  before: Digest,
  options: { extraBlobs?: ExtraBlob[]; annotations?: Record<string, string> } = {},
): Promise<Digest> {
  const subject = imageSubject(layout);
  const extraBlobs = options.extraBlobs ?? [];
  let annotations: Record<string, string> = {};
  for (let nonce = 0; nonce < 5_000_000; nonce++) {
    annotations = { ...options.annotations, 'org.example.nonce': String(nonce) };
    if (artifactManifestDigest(subject, blob, extraBlobs, annotations) < before) break;
  }
  const target = openRegistryTarget(`${registry.host}/${repo}:v1`);
  try {
    const pushed = await pushReferrer(target, {
      artifactType: ARTIFACT_TYPE,
      subject,
      blob: { bytes: blob, mediaType: ARTIFACT_TYPE },
      ...(extraBlobs.length ? { extraBlobs } : {}),
      annotations,
    });
    expect(pushed.manifest.digest).toBe(artifactManifestDigest(subject, blob, extraBlobs, annotations));
    expect(pushed.manifest.digest < before).toBe(true);
    return pushed.manifest.digest;
  } finally {
    await target.close();
  }
}

export function contentsOf(bytes: Uint8Array): ArchiveContents {
  return archiveContents(openArchive(bytes));
}

/** The genuine archive with TOOL's entry pointing at README's bytes in the same layer. */
export function remapped(genuine: Uint8Array): Uint8Array {
  const contents = contentsOf(genuine);
  const ino = (path: string) => contents.entries.find((entry) => entry.path === path)!.ino;
  const tool = contents.inodes[ino(TOOL) - 1]!;
  const readme = contents.inodes[ino(README) - 1]!;
  tool.data = { ...readme.data! };
  tool.size = readme.size;
  return encodeArchive(contents);
}

/** The genuine archive with its storage reference (or a layer field) changed. */
export function altered(genuine: Uint8Array, change: (contents: ArchiveContents) => void): Uint8Array {
  const contents = contentsOf(genuine);
  change(contents);
  return encodeArchive(contents);
}
