// An image platform, as OCI image indexes name it: `os/arch[/variant]`, e.g. `linux/amd64`
// or `linux/arm64/v8`. Parsed and printed here; matching lives in @clip/registry-fetch (platform.ts).
import { UsageError } from './errors.js';
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export function formatPlatform(platform: Platform): string {
  return `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`;
}

export function parsePlatform(text: string): Platform {
  const parts = text.split('/');
  const [os, architecture, variant] = parts;
  if (parts.length < 2 || parts.length > 3 || !os || !architecture || (parts.length === 3 && !variant)) {
    throw new UsageError(`invalid platform ${JSON.stringify(text)}: expected os/arch[/variant], e.g. linux/amd64`);
  }
  return variant ? { os, architecture, variant } : { os, architecture };
}
