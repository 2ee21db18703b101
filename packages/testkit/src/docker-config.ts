// A docker `config.json` with one registry's `auths` entry (base64 user:password), as `docker
// login` writes it. Written atomically, as a credential rotation tool would: a client
// re-reading it never sees a half-written file.
import { join } from 'node:path';
import { writeFileAtomically } from '@clip/shared';

/** Writes `<dir>/config.json` (creating `dir`) with credentials for `host` (`host:port`). */
export async function writeDockerConfig(dir: string, host: string, username: string, password: string): Promise<void> {
  const auth = Buffer.from(`${username}:${password}`).toString('base64');
  await writeFileAtomically(join(dir, 'config.json'), Buffer.from(JSON.stringify({ auths: { [host]: { auth } } })));
}
