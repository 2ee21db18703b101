// Worker A for the eStargz peer: converts a pushed bench image to eStargz in a private build
// containerd (`ctr-remote image convert --estargz --oci`, and `ctr-remote image optimize`,
// which runs the workload once and puts the files it touched first, behind the prefetch
// landmark), pushes both to the bench registry (unshaped, like skopeo's push of the original)
// and measures conversion time and the extra registry storage.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PublishedImage } from '../scenarios/context.js';
import { scratch, type BenchContext } from '../scenarios/context.js';
import { CommandError, run } from '../util/exec.js';
import { type Containerd, startContainerd } from './containerd.js';

export interface ConvertedImage {
  /** Reference runtime workers use (through the proxy). */
  clientRef: string;
  /** Wall time of the conversion command alone (the source is already in the content store). */
  convertSeconds: number;
  /** Bytes the registry stores for this variant beyond the original image: new layers, config, manifest. */
  extraBytes: number;
  /** How this variant differs from a plain run of the command, when it does. */
  note?: string;
}

export interface EstargzImages {
  plain: ConvertedImage;
  /** undefined when the image's workload has no command to profile. */
  optimized?: ConvertedImage;
  optimizeSkipped?: string;
}

const MANIFEST_TYPES = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';

interface Manifest {
  config: { digest: string; size: number };
  layers: { digest: string; size: number }[];
}

async function manifestOf(
  context: BenchContext,
  host: string,
  repository: string,
  tag: string,
): Promise<{ manifest: Manifest; bytes: number }> {
  const fetched = await run('curl', ['-sf', '-H', `Accept: ${MANIFEST_TYPES}`, `http://${host}/v2/${repository}/manifests/${tag}`], {
    netns: context.link.netns,
  });
  return { manifest: JSON.parse(fetched.stdout) as Manifest, bytes: Buffer.byteLength(fetched.stdout) };
}

/** Blobs (and the manifest) of `tag` that the original image does not already store. */
async function extraStorage(context: BenchContext, repository: string, originalTag: string, tag: string): Promise<number> {
  const original = await manifestOf(context, context.link.registryHost, repository, originalTag);
  const stored = new Set([original.manifest.config.digest, ...original.manifest.layers.map((layer) => layer.digest)]);
  const converted = await manifestOf(context, context.link.registryHost, repository, tag);
  const blobs = [converted.manifest.config, ...converted.manifest.layers].filter((blob) => !stored.has(blob.digest));
  return converted.bytes + blobs.reduce((sum, blob) => sum + blob.size, 0);
}

export async function convertToEstargz(context: BenchContext, image: PublishedImage): Promise<EstargzImages> {
  const repository = `bench/${image.bench.name}`;
  const source = `${context.link.registryHost}/${repository}:latest`;
  const target = (tag: string) => `${context.link.registryHost}/${repository}:${tag}`;
  const containerd = await startContainerd({ dir: await scratch(context, `estargz-build-${image.bench.name}`), netns: context.link.netns });
  try {
    await containerd.ctr(['image', 'pull', '--plain-http', source]);
    const convert = async (tag: string, command: string[], from = source): Promise<ConvertedImage> => {
      context.log(`  eStargz: ${command[0]} ${image.bench.name} → :${tag}`);
      const converted = await containerd.ctr(['image', ...command, from, target(tag)], { tool: 'ctr-remote' });
      await containerd.ctr(['image', 'push', '--plain-http', target(tag)]);
      return {
        clientRef: `${context.link.clientHost}/${repository}:${tag}`,
        convertSeconds: converted.seconds,
        extraBytes: await extraStorage(context, repository, 'latest', tag),
      };
    };
    const plain = await convert('esgz', ['convert', '--estargz', '--oci']);
    const workload = image.bench.workload.command;
    if (!workload) return { plain, optimizeSkipped: 'the workload is not a command in the image' };
    const optimize = (from: string) =>
      convert(
        'esgz-opt',
        ['optimize', '--oci', '--period', '10', '--entrypoint', '["/bin/sh","-c"]', '--args', JSON.stringify([workload])],
        from,
      );
    try {
      return { plain, optimized: await optimize(source) };
    } catch (error) {
      const reason = `ctr-remote image optimize failed: ${lastLine(error)}`;
      context.log(`  ${reason}`);
      // 0.12 cannot reorder a layer whose tar leaves a parent directory of a file the workload
      // read implied (OCI allows it; the bench's dpkg-split layers do it): what an eStargz user
      // would do is rebuild the image with those entries, so optimize a copy that has them.
      if (!/not found/.test(reason)) return { plain, optimizeSkipped: reason };
      try {
        const from = await withParentDirectories(context, image, containerd, repository);
        return { plain, optimized: { ...(await optimize(from)), note: `optimized from a copy with parent directory entries (${reason})` } };
      } catch (retry) {
        return { plain, optimizeSkipped: `${reason}; also from a copy with parent directory entries: ${lastLine(retry)}` };
      }
    }
  } finally {
    await containerd.stop();
  }
}

function lastLine(error: unknown): string {
  const text = error instanceof CommandError ? error.result.stderr : String(error);
  return text.trim().split('\n').at(-1)?.slice(0, 300) ?? '';
}

const ADD_PARENTS = fileURLToPath(new URL('../../tools/add-parent-dirs.py', import.meta.url));

/** The image with every implied parent directory written into its layers, pushed as `:parents` and pulled into `containerd`. */
async function withParentDirectories(
  context: BenchContext,
  image: PublishedImage,
  containerd: Containerd,
  repository: string,
): Promise<string> {
  const layout = join(await scratch(context, `parents-${image.bench.name}`), 'layout');
  context.log(`  eStargz: adding implied parent directories to ${image.bench.name}'s layers for optimize`);
  const added = await run('nice', ['-n', '10', 'python3', ADD_PARENTS, image.bench.image.layoutDir, image.bench.image.tag, layout], {
    timeoutMs: 60 * 60_000,
  });
  context.log(`  eStargz: ${added.stdout.trim()}`);
  const ref = `${context.link.registryHost}/${repository}:parents`;
  await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:${image.bench.image.tag}`, `docker://${ref}`], {
    netns: context.link.netns,
    timeoutMs: 30 * 60_000,
  });
  await containerd.ctr(['image', 'pull', '--plain-http', ref]);
  return ref;
}
