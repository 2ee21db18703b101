// A plain gRPC client of the snapshots service, for requests containerd would never send.
import * as grpc from '@grpc/grpc-js';
import { loadSnapshotsService } from '../src/grpc-service.js';

export interface CallResult {
  code: number;
  details: string;
  response?: Record<string, unknown>;
}

export function snapshotsClient(socket: string): {
  call(method: string, request: Record<string, unknown>): Promise<CallResult>;
  list(filters: string[]): Promise<CallResult>;
  close(): void;
} {
  const Client = grpc.makeGenericClientConstructor(loadSnapshotsService(), 'Snapshots');
  const client = new Client(`unix://${socket}`, grpc.credentials.createInsecure()) as unknown as Record<
    string,
    (req: unknown, cb: (err: grpc.ServiceError | null, res?: Record<string, unknown>) => void) => void
  > &
    grpc.Client;
  return {
    call: (method, request) =>
      new Promise((resolve) => {
        const fn = client[method];
        if (!fn) throw new Error(`no method ${method}`);
        fn.call(client, request, (error, response) => {
          resolve(error ? { code: error.code, details: error.details } : { code: 0, details: '', ...(response ? { response } : {}) });
        });
      }),
    list: (filters) =>
      new Promise((resolve) => {
        const stream = (client as unknown as { List(req: unknown): grpc.ClientReadableStream<{ info: unknown[] }> }).List({ filters });
        const infos: unknown[] = [];
        stream.on('data', (m: { info: unknown[] }) => infos.push(...m.info));
        stream.on('error', (error: grpc.ServiceError) => resolve({ code: error.code, details: error.details }));
        stream.on('end', () => resolve({ code: 0, details: '', response: { info: infos } }));
      }),
    close: () => client.close(),
  };
}
