// One clip mount per mountpoint. Two `clip mount`s of one directory started together both
// passed the "already mounted?" check and stacked two FUSE mounts. The lock is a Linux
// abstract unix socket named after the mountpoint's real path: binding is atomic, only one
// process can hold the name, and the kernel frees it when the holder exits, even on SIGKILL
// (no stale lock files). The holder answers connections with its pid, for the message.
// Scope: abstract sockets live in a network namespace; mounts made from different network
// namespaces do not see each other's locks (the mountinfo check still applies).
import { createHash } from 'node:crypto';
import { createConnection, createServer, type Server } from 'node:net';
import { MountpointError } from './errors.js';

export interface MountLock {
  release(): Promise<void>;
}

function lockName(realPath: string): string {
  return `\0clip-mount-${createHash('sha256').update(realPath).digest('hex').slice(0, 32)}`;
}

/** Takes the lock for `realPath` or throws MountpointError naming the holder's pid. */
export async function lockMountpoint(realPath: string): Promise<MountLock> {
  const name = lockName(realPath);
  const server: Server = createServer((socket) => socket.end(`${process.pid}\n`));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(name, () => resolve());
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    const pid = await holderPid(name);
    throw new MountpointError(
      realPath,
      `mountpoint ${realPath} is busy: another clip mount${pid ? ` (pid ${pid})` : ''} is mounting or serving it`,
    );
  }
  // The lock must not keep the process alive by itself.
  server.unref();
  return { release: () => new Promise((resolve) => server.close(() => resolve())) };
}

async function holderPid(name: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection(name);
    let text = '';
    const done = () => {
      socket.destroy();
      resolve(/^\d+/.exec(text)?.[0]);
    };
    socket.setTimeout(500, done);
    socket.on('data', (chunk) => (text += chunk.toString()));
    socket.on('end', done);
    socket.on('error', done);
  });
}
