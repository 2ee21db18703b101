// What clip's own peer runners start from: the bench image published with `clip publish` to
// a repository of its own through the link (archive as a referrer, bound at the tag), so a
// fresh worker finds everything from the reference alone, as an eStargz worker does from its
// TOC. Two variants, matching eStargz's: without a profile, and with the access profile
// `clip publish --profile` records by running the workload once (#17), when the CLI has it.
import type { BenchContext, PublishedImage } from '../scenarios/context.js';
import { run } from '../util/exec.js';

export type ClipVariant = 'no profile' | 'profile';

export interface ClipPublisher {
  /** One line saying why `variant` cannot be published with this CLI; undefined when it can. */
  unavailable(variant: ClipVariant): Promise<string | undefined>;
  /** The client reference of `image` published as `variant` (published once per image and variant). */
  ref(image: PublishedImage, variant: ClipVariant): Promise<string>;
  /** Wall time of each publish, for the report: `<image> <variant>` → seconds. */
  readonly seconds: Map<string, number>;
}

/**
 * The bench workloads exit on their own, so the limit only has to let them finish: optimize
 * runs the workload from local content (its `--period 10` is enough), clip's recorder runs it
 * on a lazy mount through the shaped link on a loaded machine, where 10 s cut node-app's short.
 */
const PROFILE_SECONDS = 120;

export function clipPublisher(context: BenchContext): ClipPublisher {
  const published = new Map<string, Promise<string>>();
  const seconds = new Map<string, number>();
  let profileProbe: Promise<string | undefined> | undefined;

  const profileUnavailable = () => {
    profileProbe ??= run(process.execPath, [context.clip.path, 'publish', '--help'], { allowFailure: true, timeoutMs: 30_000 }).then(
      (help) => {
        if (!/--profile\b/.test(help.stdout)) return '`clip publish --profile` not available in this build (#17): no profiled clip column';
        return undefined;
      },
    );
    return profileProbe;
  };

  const publish = async (image: PublishedImage, variant: ClipVariant): Promise<string> => {
    const command = image.bench.workload.command;
    if (!command) throw new Error(`${image.bench.name}: the workload is not a command in the image`);
    const repository = `bench/${image.bench.name}-clip${variant === 'profile' ? '-profile' : ''}`;
    const target = `${context.link.clientHost}/${repository}:latest`;
    const args = [context.clip.path, 'publish', image.bench.image.reference, target, '--json', '--no-progress'];
    if (variant === 'profile') {
      const help = (await run(process.execPath, [context.clip.path, 'publish', '--help'])).stdout;
      if (/--profile-seconds\b/.test(help)) args.push('--profile-seconds', String(PROFILE_SECONDS));
      args.push('--profile', '--', '/bin/sh', '-c', command);
    }
    context.log(`  clip publish ${image.bench.name} (${variant}) → ${repository}`);
    const result = await run(process.execPath, args, { netns: context.link.netns, timeoutMs: 60 * 60_000 });
    seconds.set(`${image.bench.name} ${variant}`, result.seconds);
    return target;
  };

  return {
    seconds,
    unavailable: async (variant) => {
      const reason = await context.clip.unavailable('publish');
      if (reason) return reason;
      return variant === 'profile' ? profileUnavailable() : undefined;
    },
    ref: (image, variant) => {
      const key = `${image.bench.name} ${variant}`;
      let ref = published.get(key);
      if (!ref) {
        ref = publish(image, variant);
        published.set(key, ref);
      }
      return ref;
    },
  };
}
