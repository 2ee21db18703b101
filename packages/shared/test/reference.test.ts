import { describe, expect, it } from 'vitest';
import { InvalidReferenceError } from '../src/errors.js';
import {
  formatImageReference,
  isLoopbackRegistry,
  parseImageReference,
  parseRegistryReference,
  registryEndpointHost,
  type ImageReference,
} from '../src/reference.js';

const D = `sha256:${'ab'.repeat(32)}` as const;

const valid: Array<[string, ImageReference, string]> = [
  ['ubuntu', { kind: 'registry', registry: 'docker.io', repository: 'library/ubuntu', tag: 'latest' }, 'docker.io/library/ubuntu:latest'],
  [
    'ubuntu:22.04',
    { kind: 'registry', registry: 'docker.io', repository: 'library/ubuntu', tag: '22.04' },
    'docker.io/library/ubuntu:22.04',
  ],
  [
    'library/ubuntu',
    { kind: 'registry', registry: 'docker.io', repository: 'library/ubuntu', tag: 'latest' },
    'docker.io/library/ubuntu:latest',
  ],
  ['someone/app:v1', { kind: 'registry', registry: 'docker.io', repository: 'someone/app', tag: 'v1' }, 'docker.io/someone/app:v1'],
  [
    'docker.io/ubuntu',
    { kind: 'registry', registry: 'docker.io', repository: 'library/ubuntu', tag: 'latest' },
    'docker.io/library/ubuntu:latest',
  ],
  [
    'index.docker.io/ubuntu',
    { kind: 'registry', registry: 'docker.io', repository: 'library/ubuntu', tag: 'latest' },
    'docker.io/library/ubuntu:latest',
  ],
  [`ubuntu@${D}`, { kind: 'registry', registry: 'docker.io', repository: 'library/ubuntu', digest: D }, `docker.io/library/ubuntu@${D}`],
  [
    `ubuntu:22.04@${D}`,
    { kind: 'registry', registry: 'docker.io', repository: 'library/ubuntu', tag: '22.04', digest: D },
    `docker.io/library/ubuntu:22.04@${D}`,
  ],
  ['localhost/app', { kind: 'registry', registry: 'localhost', repository: 'app', tag: 'latest' }, 'localhost/app:latest'],
  ['localhost:5000/a/b/c:t', { kind: 'registry', registry: 'localhost:5000', repository: 'a/b/c', tag: 't' }, 'localhost:5000/a/b/c:t'],
  ['127.0.0.1:5000/app', { kind: 'registry', registry: '127.0.0.1:5000', repository: 'app', tag: 'latest' }, '127.0.0.1:5000/app:latest'],
  ['[::1]:5000/app:x', { kind: 'registry', registry: '[::1]:5000', repository: 'app', tag: 'x' }, '[::1]:5000/app:x'],
  ['ghcr.io/org/app:1.0', { kind: 'registry', registry: 'ghcr.io', repository: 'org/app', tag: '1.0' }, 'ghcr.io/org/app:1.0'],
  ['docker://quay.io/a/b', { kind: 'registry', registry: 'quay.io', repository: 'a/b', tag: 'latest' }, 'quay.io/a/b:latest'],
  [
    'my-reg.example.com/a_b/c__d/e-f.g',
    { kind: 'registry', registry: 'my-reg.example.com', repository: 'a_b/c__d/e-f.g', tag: 'latest' },
    'my-reg.example.com/a_b/c__d/e-f.g:latest',
  ],
  ['oci:/tmp/layout', { kind: 'oci-layout', dir: '/tmp/layout' }, 'oci:/tmp/layout'],
  ['oci:/tmp/layout:v1', { kind: 'oci-layout', dir: '/tmp/layout', tag: 'v1' }, 'oci:/tmp/layout:v1'],
  ['oci:rel/dir:latest', { kind: 'oci-layout', dir: 'rel/dir', tag: 'latest' }, 'oci:rel/dir:latest'],
  [`oci:/tmp/layout@${D}`, { kind: 'oci-layout', dir: '/tmp/layout', digest: D }, `oci:/tmp/layout@${D}`],
  ['oci:/tmp/a@b:t', { kind: 'oci-layout', dir: '/tmp/a@b', tag: 't' }, 'oci:/tmp/a@b:t'],
  ['oci-archive:/tmp/img.tar', { kind: 'oci-archive', file: '/tmp/img.tar' }, 'oci-archive:/tmp/img.tar'],
  ['oci-archive:/tmp/img.tar:v2', { kind: 'oci-archive', file: '/tmp/img.tar', tag: 'v2' }, 'oci-archive:/tmp/img.tar:v2'],
];

const invalid: Array<[string, RegExp]> = [
  ['', /empty/],
  ['   ', /empty/],
  ['Ubuntu', /lowercase/],
  ['ghcr.io/Org/app', /lowercase/],
  ['ubuntu:', /bad tag/],
  ['ubuntu:bad/tag', /bad registry host/],
  ['ubuntu:-x', /bad tag/],
  [`ubuntu:${'a'.repeat(129)}`, /bad tag/],
  ['ubuntu@sha256:1234', /bad digest/],
  ['ubuntu@', /bad digest/],
  ['a//b', /repository path component/],
  ['localhost:5000/', /missing repository|path component/],
  ['ghcr.io/a b', /whitespace/],
  ['oci:', /missing layout directory/],
  ['oci::tag', /missing layout directory/],
  ['oci:/x:', /bad tag/],
  [`oci:/x:t@${D}`, /either a tag or a digest/],
  ['oci:/x@sha256:zz', /bad digest/],
  ['oci-archive:', /missing archive file/],
  ['http://example.com/a', /unsupported transport/],
  ['docker-archive:/x.tar', /unsupported transport/],
  ['bad_host.example.com:99999999/a', /bad registry host/],
];

describe('parseImageReference', () => {
  it.each(valid)('parses %s', (text, expected, formatted) => {
    const ref = parseImageReference(text);
    expect(ref).toEqual(expected);
    expect(formatImageReference(ref)).toBe(formatted);
    // formatting is canonical: parsing the formatted text gives the same reference
    expect(parseImageReference(formatted)).toEqual(expected);
  });

  it.each(invalid)('rejects %j', (text, message) => {
    let caught: unknown;
    try {
      parseImageReference(text);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidReferenceError);
    expect((caught as InvalidReferenceError).code).toBe('CLIP_E_REFERENCE');
    expect((caught as InvalidReferenceError).message).toMatch(message);
  });

  it('parseRegistryReference refuses local references', () => {
    expect(() => parseRegistryReference('oci:/tmp/x')).toThrow(/expected a registry reference/);
    expect(parseRegistryReference('ubuntu').repository).toBe('library/ubuntu');
  });

  it('maps docker.io to its API endpoint and detects loopback registries', () => {
    expect(registryEndpointHost('docker.io')).toBe('registry-1.docker.io');
    expect(registryEndpointHost('ghcr.io')).toBe('ghcr.io');
    for (const host of ['localhost', 'localhost:5000', '127.0.0.1', '127.1.2.3:80', '[::1]', '[::1]:5000']) {
      expect(isLoopbackRegistry(host), host).toBe(true);
    }
    for (const host of ['docker.io', 'ghcr.io:443', '10.0.0.1:5000', 'localhost.example.com', '128.0.0.1']) {
      expect(isLoopbackRegistry(host), host).toBe(false);
    }
  });
});
