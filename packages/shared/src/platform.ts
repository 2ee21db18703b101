// An image platform, as OCI image indexes name it: `os/arch[/variant]`, e.g. `linux/amd64`
// or `linux/arm64/v8`. Parsing and matching live in @clip/registry-fetch (platform.ts).
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}
