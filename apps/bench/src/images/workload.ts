// What a "container start" does once its root filesystem is available.
import { sh, type RunResult } from '../util/exec.js';

export interface Workload {
  description: string;
  /** Runs the workload against a root filesystem directory. */
  run(rootDir: string): Promise<RunResult>;
  /** The shell command inside the image (`/bin/sh -c`), for container runs; absent without a userland. */
  command?: string;
}

/** Runs a command chrooted into the root filesystem (the image's own interpreter). */
export function chrootWorkload(description: string, command: string): Workload {
  return {
    description,
    command,
    run: (rootDir) =>
      sh(`chroot '${rootDir}' /bin/sh -c ${JSON.stringify(command)}`, {
        env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8' },
      }),
  };
}

/** Reads a list of files (for images without a userland, e.g. the synthetic one). */
export function readFilesWorkload(description: string, listFile: string): Workload {
  return {
    description,
    run: (rootDir) => sh(`cd '${rootDir}' && xargs -d '\\n' cat < '${listFile}' > /dev/null`),
  };
}
