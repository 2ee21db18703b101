// Platforms (`os/arch[/variant]`) and choosing one manifest out of an image index.
import { formatPlatform, PlatformNotFoundError } from '@clip/shared';
import type { Descriptor, Platform } from './image-source.js';

const NODE_ARCH_TO_OCI: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
};

/** The platform of this machine, `linux/<arch>` in OCI spelling. */
export function hostPlatform(): Platform {
  return { os: 'linux', architecture: NODE_ARCH_TO_OCI[process.arch] ?? process.arch };
}

// arm64 images usually say v8 or nothing; both mean the same thing.
function normalisedVariant(platform: Platform): string | undefined {
  if (platform.architecture === 'arm64' && (platform.variant === undefined || platform.variant === 'v8')) return undefined;
  return platform.variant;
}

function matches(candidate: Platform, wanted: Platform): boolean {
  if (candidate.os !== wanted.os || candidate.architecture !== wanted.architecture) return false;
  // No variant asked for: any variant of the architecture will do.
  if (wanted.variant === undefined) return true;
  return normalisedVariant(candidate) === normalisedVariant(wanted);
}

/** Attestation manifests (BuildKit) sit in indexes as `unknown/unknown`; they are not images. */
function isImageEntry(descriptor: Descriptor): boolean {
  return descriptor.platform?.os !== 'unknown';
}

/**
 * Picks the index entry for `wanted`. An index whose entries carry no platform at all and has
 * exactly one entry yields that entry. Throws PlatformNotFoundError listing what is there.
 */
export function selectPlatform(entries: Descriptor[], wanted: Platform): Descriptor {
  const images = entries.filter(isImageEntry);
  const found = images.find((entry) => entry.platform && matches(entry.platform, wanted));
  if (found) return found;
  if (images.length === 1 && images[0] && !images[0].platform) return images[0];
  const available = images.map((entry) => (entry.platform ? formatPlatform(entry.platform) : `(no platform: ${entry.digest})`));
  throw new PlatformNotFoundError(formatPlatform(wanted), available);
}
