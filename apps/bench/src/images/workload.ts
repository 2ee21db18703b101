// What a "container start" does once its root filesystem is available.
import { sh, type RunResult } from '../util/exec.js';

export interface Workload {
  description: string;
  /** The shell command run inside the image, when there is one (container runtimes run it as `sh -c`). */
  command?: string;
  /** Runs the workload against a root filesystem directory. */
  run(rootDir: string): Promise<RunResult>;
}

/** Runs a command chrooted into the root filesystem (the image's own interpreter). */
export function chrootWorkload(description: string, command: string): Workload {
  return {
    description,
    command,
    run: (rootDir) => sh(`chroot '${rootDir}' /bin/sh -c ${JSON.stringify(command)}`, { env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8' } }),
  };
}

/** Reads a list of files (for images without a userland, e.g. the synthetic one). */
export function readFilesWorkload(description: string, listFile: string): Workload {
  return {
    description,
    run: (rootDir) => sh(`cd '${rootDir}' && xargs -d '\\n' cat < '${listFile}' > /dev/null`),
  };
}
