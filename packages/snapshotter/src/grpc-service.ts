// containerd.services.snapshots.v1.Snapshots over gRPC: decodes requests, calls the
// snapshotter, encodes answers, and turns errors into the status codes containerd's
// errdefs.FromGRPC maps back (NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, ...). A bug
// becomes INTERNAL for that request, never a crash of the server.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { isClipError, type Logger } from '@clip/shared';
import { GrpcCode, SnapshotError } from './errors.js';
import type { ClipSnapshotter, SnapshotInfo } from './snapshotter.js';

const PROTO_ROOT = fileURLToPath(new URL('../proto', import.meta.url));
const SERVICE_PROTO = 'github.com/containerd/containerd/api/services/snapshots/v1/snapshots.proto';

interface Timestamp {
  seconds: number;
  nanos: number;
}
interface InfoMessage {
  name: string;
  parent: string;
  kind: string;
  created_at: Timestamp;
  updated_at: Timestamp;
  labels: Record<string, string>;
}
interface KeyRequest {
  key: string;
}
interface CreateRequest {
  key: string;
  parent: string;
  labels: Record<string, string>;
}

export function loadSnapshotsService(): grpc.ServiceDefinition {
  const definition = protoLoader.loadSync(SERVICE_PROTO, {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    containerd: { services: { snapshots: { v1: { Snapshots: grpc.ServiceClientConstructor } } } };
  };
  return pkg.containerd.services.snapshots.v1.Snapshots.service;
}

function timestamp(ns: bigint): Timestamp {
  return { seconds: Number(ns / 1_000_000_000n), nanos: Number(ns % 1_000_000_000n) };
}

function toMessage(info: SnapshotInfo): InfoMessage {
  return {
    name: info.name,
    parent: info.parent,
    kind: info.kind,
    created_at: timestamp(info.createdAt),
    updated_at: timestamp(info.updatedAt),
    labels: info.labels,
  };
}

function toStatus(error: unknown, method: string, logger: Logger): Partial<grpc.StatusObject> {
  if (error instanceof SnapshotError) return { code: error.grpcCode, details: error.message };
  if (isClipError(error)) return { code: GrpcCode.UNAVAILABLE, details: `${error.message} [${error.code}]` };
  logger.error('snapshot request failed unexpectedly', {
    method,
    error: error instanceof Error ? (error.stack ?? error.message) : String(error),
  });
  return { code: GrpcCode.INTERNAL, details: `clip snapshotter: ${method}: ${error instanceof Error ? error.message : String(error)}` };
}

type Unary<Req, Res> = (request: Req) => Promise<Res> | Res;

export function snapshotsHandlers(snapshotter: ClipSnapshotter, logger: Logger): grpc.UntypedServiceImplementation {
  const unary =
    <Req, Res>(method: string, fn: Unary<Req, Res>) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
      logger.debug('request', { method, request: JSON.stringify(call.request) });
      Promise.resolve()
        .then(() => fn(call.request))
        .then(
          (response) => callback(null, response),
          (error: unknown) => {
            const status = toStatus(error, method, logger);
            if (status.code !== GrpcCode.ALREADY_EXISTS)
              logger.debug('request refused', { method, code: status.code, details: status.details });
            callback(status, null);
          },
        );
    };
  return {
    Prepare: unary('Prepare', async (r: CreateRequest) => ({ mounts: await snapshotter.prepare(r.key, r.parent, r.labels ?? {}) })),
    View: unary('View', async (r: CreateRequest) => ({ mounts: await snapshotter.view(r.key, r.parent, r.labels ?? {}) })),
    Mounts: unary('Mounts', async (r: KeyRequest) => ({ mounts: await snapshotter.mounts(r.key) })),
    Commit: unary('Commit', async (r: { name: string; key: string; labels: Record<string, string> }) => {
      await snapshotter.commit(r.name, r.key, r.labels ?? {});
      return {};
    }),
    Remove: unary('Remove', async (r: KeyRequest) => {
      await snapshotter.remove(r.key);
      return {};
    }),
    Stat: unary('Stat', (r: KeyRequest) => ({ info: toMessage(snapshotter.stat(r.key)) })),
    Update: unary('Update', async (r: { info: InfoMessage | null; update_mask: { paths: string[] } | null }) => {
      const info = r.info ?? { name: '', labels: {} };
      const updated = await snapshotter.update({ name: info.name, labels: info.labels ?? {} }, r.update_mask?.paths ?? []);
      return { info: toMessage(updated) };
    }),
    Usage: unary('Usage', async (r: KeyRequest) => snapshotter.usage(r.key)),
    Cleanup: unary('Cleanup', async () => {
      const freed = await snapshotter.cleanup();
      logger.info('cleanup', { directories: freed.directories, mounts: freed.mounts });
      return {};
    }),
    List: (call: grpc.ServerWritableStream<{ filters: string[] }, { info: InfoMessage[] }>) => {
      try {
        const infos = snapshotter.list(call.request.filters ?? []).map(toMessage);
        // Batches keep each message well under gRPC's 4 MiB default.
        for (let i = 0; i < infos.length; i += 100) call.write({ info: infos.slice(i, i + 100) });
        call.end();
      } catch (error) {
        call.emit('error', toStatus(error, 'List', logger));
      }
    },
  };
}
