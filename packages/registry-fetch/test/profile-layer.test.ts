// The access profile layer of an archive artifact: which layer it is, its size bound, and its
// signature next to the archive's (the end-to-end paths are in packages/runtime/test/profile.test.ts).
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Digest } from '@clip/shared';
import {
  checkProfileSignature,
  countProfileFiles,
  MAX_PROFILE_BYTES,
  PROFILE_LAYER_MEDIA_TYPE,
  profileLayer,
  profileSidecarPath,
  signProfile,
} from '../src/archive-artifact/profile.js';
import type { ArtifactManifest } from '../src/referrers.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const ARCHIVE = { mediaType: 'application/vnd.clip.archive.v2', digest: d('a'), size: 1000 };
const manifest = (...layers: ArtifactManifest['layers']): ArtifactManifest => ({
  config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: d('e'), size: 2 },
  layers,
});

describe('profile layer', () => {
  it('is found by media type after the archive (other layers ignored), or absent', () => {
    const profile = { mediaType: PROFILE_LAYER_MEDIA_TYPE, digest: d('b'), size: 300 };
    const windows = { mediaType: 'application/vnd.clip.windows.v1', digest: d('c'), size: 5000 };
    expect(profileLayer(manifest(ARCHIVE, windows, profile), 'artifact')).toEqual(profile);
    expect(profileLayer(manifest(ARCHIVE), 'artifact')).toBeUndefined();
  });

  it('refuses more than one profile layer and a profile over 16 MiB, naming it', () => {
    const profile = { mediaType: PROFILE_LAYER_MEDIA_TYPE, digest: d('b'), size: 300 };
    expect(() => profileLayer(manifest(ARCHIVE, profile, { ...profile, digest: d('c') }), 'artifact X')).toThrow(
      'artifact X has 2 profile layers, expected at most 1',
    );
    expect(() => profileLayer(manifest(ARCHIVE, { ...profile, size: MAX_PROFILE_BYTES + 1 }), 'artifact X')).toThrow(
      `artifact X: profile blob ${d('b')} is ${MAX_PROFILE_BYTES + 1} bytes, more than the ${MAX_PROFILE_BYTES} bytes a profile may have`,
    );
  });

  it('counts listed files and sits next to the archive', () => {
    expect(countProfileFiles(Buffer.from('# comment\n/bin/sh\t0-65536\n\n/etc/passwd\n'))).toBe(2);
    expect(profileSidecarPath('/cache/sha256-ab.clip')).toBe('/cache/sha256-ab.profile');
    expect(profileSidecarPath('/x/app')).toBe('/x/app.profile');
  });

  it('is signed together with its archive: another profile, archive or key does not verify', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const other = generateKeyPairSync('ed25519').publicKey;
    const binding = {
      profileDigest: d('b'),
      archiveDigest: d('a'),
      manifestDigest: d('1'),
      storage: { registry: 'r.example', repository: 'app' },
    };
    const annotations = signProfile(binding, privateKey);
    expect(checkProfileSignature(annotations, binding, [publicKey]).ok).toBe(true);
    expect(checkProfileSignature(annotations, { ...binding, profileDigest: d('c') }, [publicKey])).toEqual({
      ok: false,
      reason: 'the profile signature does not verify with the --verify-key key(s)',
    });
    expect(checkProfileSignature(annotations, { ...binding, archiveDigest: d('c') }, [publicKey]).ok).toBe(false);
    expect(checkProfileSignature(annotations, binding, [other]).ok).toBe(false);
    expect(checkProfileSignature({}, binding, [publicKey])).toEqual({ ok: false, reason: 'its profile layer is not signed' });
  });
});
