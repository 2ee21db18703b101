// Image references: where an image comes from. Three kinds, as in skopeo's transports:
//   oci:<dir>[:<tag>|@<digest>]          a local OCI layout directory
//   oci-archive:<file.tar>[:<tag>]       a tarball of an OCI layout
//   [docker://]host[:port]/repo[:tag][@digest]   a registry (Docker normalisation rules)
import { InvalidReferenceError } from './errors.js';
import type { Digest } from './digest.js';

export type OciLayoutReference = { kind: 'oci-layout'; dir: string; tag?: string; digest?: Digest };
export type OciArchiveReference = { kind: 'oci-archive'; file: string; tag?: string };
export type RegistryReference = {
  kind: 'registry';
  /** Registry host as written (normalised: `docker.io` for Docker Hub), with port if any. */
  registry: string;
  /** Repository path, e.g. `library/ubuntu`. */
  repository: string;
  tag?: string;
  digest?: Digest;
};
export type ImageReference = OciLayoutReference | OciArchiveReference | RegistryReference;

export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

// Grammar from distribution/reference (the Go package docker and containerd use).
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_RE =
  /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const MAX_NAME_LENGTH = 255;

function fail(text: string, why: string): never {
  throw new InvalidReferenceError(`invalid image reference ${JSON.stringify(text)}: ${why}`);
}

function checkDigest(text: string, digest: string): Digest {
  if (!DIGEST_RE.test(digest)) fail(text, `bad digest ${JSON.stringify(digest)} (expected sha256:<64 lowercase hex>)`);
  return digest as Digest;
}

/** Splits a trailing `@<algorithm>:<hex>` off, if the text has one. */
function splitDigest(text: string, body: string): [string, Digest | undefined] {
  const at = body.lastIndexOf('@');
  if (at < 0) return [body, undefined];
  const candidate = body.slice(at + 1);
  // Only treat it as a digest when it names a digest algorithm; a dir may contain '@'.
  if (!/^sha(?:256|384|512):/.test(candidate)) return [body, undefined];
  return [body.slice(0, at), checkDigest(text, candidate)];
}

/** `<path>[:<tag>]`, split at the first colon like skopeo's oci transports. */
function splitPathAndTag(text: string, body: string, what: string): [string, string | undefined] {
  const colon = body.indexOf(':');
  const path = colon < 0 ? body : body.slice(0, colon);
  const tag = colon < 0 ? undefined : body.slice(colon + 1);
  if (path === '') fail(text, `missing ${what} path`);
  if (tag !== undefined && (tag === '' || /[\s@]/.test(tag))) fail(text, `bad tag ${JSON.stringify(tag)}`);
  return [path, tag];
}

function parseLayout(text: string, body: string): OciLayoutReference {
  const [rest, digest] = splitDigest(text, body);
  const [dir, tag] = splitPathAndTag(text, rest, 'layout directory');
  if (tag !== undefined && digest !== undefined) fail(text, 'give either a tag or a digest for an OCI layout, not both');
  return { kind: 'oci-layout', dir, ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}) };
}

function parseArchive(text: string, body: string): OciArchiveReference {
  const [file, tag] = splitPathAndTag(text, body, 'archive file');
  return { kind: 'oci-archive', file, ...(tag !== undefined ? { tag } : {}) };
}

function isHostComponent(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost' || component.startsWith('[');
}

function parseRegistry(text: string, body: string): RegistryReference {
  if (body === '') fail(text, 'empty reference');
  const [nameAndTag, digest] = splitDigest(text, body);
  if (body.includes('@') && digest === undefined) fail(text, 'bad digest after "@"');
  // The tag is after the last ':' that comes after the last '/' (a ':' before it is a port).
  const lastSlash = nameAndTag.lastIndexOf('/');
  const lastColon = nameAndTag.lastIndexOf(':');
  let name = nameAndTag;
  let tag: string | undefined;
  if (lastColon > lastSlash) {
    name = nameAndTag.slice(0, lastColon);
    tag = nameAndTag.slice(lastColon + 1);
    if (!TAG_RE.test(tag)) fail(text, `bad tag ${JSON.stringify(tag)} (letters, digits, '_', '.', '-'; at most 128)`);
  }
  if (name === '') fail(text, 'missing repository name');

  const slash = name.indexOf('/');
  const first = slash < 0 ? name : name.slice(0, slash);
  let registry: string;
  let repository: string;
  if (slash >= 0 && isHostComponent(first)) {
    registry = first;
    repository = name.slice(slash + 1);
    if (!DOMAIN_RE.test(registry)) fail(text, `bad registry host ${JSON.stringify(registry)}`);
  } else {
    registry = DOCKER_HUB;
    repository = name;
  }
  if (DOCKER_HUB_ALIASES.has(registry.toLowerCase())) {
    registry = DOCKER_HUB;
    if (!repository.includes('/')) repository = `library/${repository}`;
  }
  if (repository === '') fail(text, 'missing repository name');
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT_RE.test(component)) {
      fail(
        text,
        /[A-Z]/.test(component)
          ? `repository name must be lowercase (${JSON.stringify(repository)})`
          : `bad repository path component ${JSON.stringify(component)}`,
      );
    }
  }
  if (registry.length + 1 + repository.length > MAX_NAME_LENGTH) fail(text, `name longer than ${MAX_NAME_LENGTH} characters`);
  // Docker's normalisation: no tag and no digest means `:latest`.
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { kind: 'registry', registry, repository, ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** Parses an image reference; throws InvalidReferenceError naming what is wrong. */
export function parseImageReference(text: string): ImageReference {
  const trimmed = text.trim();
  if (trimmed === '') fail(text, 'empty reference');
  if (/\s/.test(trimmed)) fail(text, 'contains whitespace');
  if (trimmed.startsWith('oci:')) return parseLayout(text, trimmed.slice('oci:'.length));
  if (trimmed.startsWith('oci-archive:')) return parseArchive(text, trimmed.slice('oci-archive:'.length));
  if (trimmed.startsWith('docker://')) return parseRegistry(text, trimmed.slice('docker://'.length));
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(trimmed);
  if (scheme)
    fail(text, `unsupported transport ${JSON.stringify(scheme[1])} (use oci:, oci-archive:, docker:// or a plain registry reference)`);
  if (/^(docker-archive|docker-daemon|dir|containers-storage):/.test(trimmed)) {
    fail(text, 'unsupported transport (use oci:, oci-archive:, or a registry reference)');
  }
  return parseRegistry(text, trimmed);
}

/** Parses and requires a registry reference (for push targets and storage references). */
export function parseRegistryReference(text: string): RegistryReference {
  const ref = parseImageReference(text);
  if (ref.kind !== 'registry')
    throw new InvalidReferenceError(`expected a registry reference (host/repo:tag), got ${JSON.stringify(text)}`);
  return ref;
}

/** The canonical text of a reference; parseImageReference(formatImageReference(r)) equals r. */
export function formatImageReference(ref: ImageReference): string {
  switch (ref.kind) {
    case 'oci-layout':
      return `oci:${ref.dir}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
    case 'oci-archive':
      return `oci-archive:${ref.file}${ref.tag !== undefined ? `:${ref.tag}` : ''}`;
    case 'registry':
      return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
  }
}

/** The host to connect to: Docker Hub's API lives at registry-1.docker.io. */
export function registryEndpointHost(registry: string): string {
  return registry === DOCKER_HUB ? 'registry-1.docker.io' : registry;
}

/** Loopback registries speak plain HTTP by default (like docker's insecure default for localhost). */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.startsWith('[') ? registry.slice(0, registry.indexOf(']') + 1) : registry.replace(/:\d+$/, '');
  return host === 'localhost' || host === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(host);
}
