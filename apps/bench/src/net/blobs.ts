// Minimal registry blob helpers over curl (run inside the namespace): upload a probe blob and
// time downloads of whole blobs or byte ranges.
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { run } from '../util/exec.js';

export async function uploadBlob(netns: string, host: string, repository: string, file: string, digest: string): Promise<void> {
  const started = await run('curl', ['-s', '-i', '-X', 'POST', `http://${host}/v2/${repository}/blobs/uploads/`], { netns });
  const location = /^location:\s*(\S+)/im.exec(started.stdout)?.[1];
  if (!location) throw new Error(`registry gave no upload location:\n${started.stdout}`);
  const url = new URL(location, `http://${host}`);
  url.searchParams.set('digest', digest);
  const put = await run(
    'curl',
    [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-X',
      'PUT',
      '-H',
      'Content-Type: application/octet-stream',
      '--data-binary',
      `@${file}`,
      url.toString(),
    ],
    { netns },
  );
  if (put.stdout !== '201') throw new Error(`blob upload failed with HTTP ${put.stdout}`);
}

/** Writes `size` random (incompressible) bytes to `file` and returns their digest. */
export async function writeRandomBlob(file: string, size: number): Promise<string> {
  const data = randomBytes(size);
  await writeFile(file, data);
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface Download {
  bytes: number;
  seconds: number;
  /** Time to first byte. */
  ttfbSeconds: number;
}

export async function curlDownload(netns: string, url: string, range?: string): Promise<Download> {
  const args = ['-s', '-f', '-o', '/dev/null', '-w', '%{size_download} %{time_total} %{time_starttransfer}'];
  if (range) args.push('-r', range);
  const result = await run('curl', [...args, url], { netns });
  const [bytes, total, ttfb] = result.stdout.trim().split(' ').map(Number);
  return { bytes: bytes ?? 0, seconds: total ?? 0, ttfbSeconds: ttfb ?? 0 };
}
