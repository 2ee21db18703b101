// Prometheus text for the snapshotter: fallbacks by reason (the "is it actually lazy?"
// answer), remote layers, lazy mounts, and each image mount's own counters (bytes fetched,
// cache hits...) scraped from its `clip mount --metrics` endpoint and labelled by image.
import { createServer, type Server } from 'node:http';
import type { FallbackReason } from './decision.js';
import type { ImageMountInfo } from './image-mounts.js';

export class SnapshotterMetrics {
  readonly fallbacks = new Map<FallbackReason, number>();
  remoteLayers = 0;
  lazyMountStarts = 0;
  lazyMountReuses = 0;

  fallback(reason: FallbackReason): void {
    this.fallbacks.set(reason, (this.fallbacks.get(reason) ?? 0) + 1);
  }

  async prometheus(mounts: ImageMountInfo[], snapshots: Record<string, number>): Promise<string> {
    const lines: string[] = [
      '# HELP clip_snapshotter_fallbacks_total Layers unpacked by containerd instead of served lazily, by reason.',
      '# TYPE clip_snapshotter_fallbacks_total counter',
    ];
    for (const reason of [
      'missing_labels',
      'no_archive',
      'untrusted_archive',
      'image_changed',
      'registry_error',
      'archive_error',
      'mount_failed',
    ] as const) {
      lines.push(`clip_snapshotter_fallbacks_total{reason="${reason}"} ${this.fallbacks.get(reason) ?? 0}`);
    }
    lines.push('# TYPE clip_snapshotter_remote_layers_total counter', `clip_snapshotter_remote_layers_total ${this.remoteLayers}`);
    lines.push(
      '# TYPE clip_snapshotter_lazy_mount_starts_total counter',
      `clip_snapshotter_lazy_mount_starts_total ${this.lazyMountStarts}`,
    );
    lines.push(
      '# TYPE clip_snapshotter_lazy_mount_reuses_total counter',
      `clip_snapshotter_lazy_mount_reuses_total ${this.lazyMountReuses}`,
    );
    lines.push('# TYPE clip_snapshotter_lazy_mounts gauge', `clip_snapshotter_lazy_mounts ${mounts.length}`);
    lines.push('# TYPE clip_snapshotter_snapshots gauge');
    for (const [kind, count] of Object.entries(snapshots)) lines.push(`clip_snapshotter_snapshots{kind="${kind.toLowerCase()}"} ${count}`);
    for (const mount of mounts) {
      if (!mount.metrics) continue;
      const text = await fetch(`http://${mount.metrics}/metrics`, { signal: AbortSignal.timeout(2000) }).then(
        (r) => r.text(),
        () => '',
      );
      const image = mount.imageRef.replace(/["\\\n]/g, '_');
      for (const line of text.split('\n')) {
        // Re-export each sample with the image as a label; HELP/TYPE lines are left out.
        const match = /^(clip_[a-z0-9_]+)(\{([^}]*)\})? (.+)$/.exec(line);
        if (!match) continue;
        const labels = match[3] ? `${match[3]},image="${image}"` : `image="${image}"`;
        lines.push(`${match[1]}{${labels}} ${match[4]}`);
      }
    }
    return `${lines.join('\n')}\n`;
  }
}

export async function serveMetrics(
  host: string,
  port: number,
  render: () => Promise<string>,
): Promise<{ address: string; close(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    if (request.url !== '/metrics' && request.url !== '/') {
      response.writeHead(404).end();
      return;
    }
    render().then(
      (text) => {
        response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        response.end(text);
      },
      (error: unknown) => {
        response.writeHead(500).end(String(error));
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  return { address: `${host}:${actual}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
