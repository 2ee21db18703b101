// Durable snapshot metadata: containerd's snapshotter model (View/Active/Committed, parent
// chain, labels, usage) kept in memory and written as one JSON document with
// write-temp-fsync-rename-fsync(dir) after every change, so a crash leaves the previous or the next
// state, never a mix. Directories are created before a record names them and deleted after
// it is gone; Cleanup removes directories no record names (left by a crash in between).
import { open, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomically } from '@clip/shared';
import { SnapshotArgumentError, SnapshotExistsError, SnapshotNotFoundError, SnapshotterSetupError } from './errors.js';

export type SnapshotKind = 'VIEW' | 'ACTIVE' | 'COMMITTED';

/** A committed snapshot served by a lazy image mount instead of unpacked files. */
export interface RemoteLayer {
  imageRef: string;
  manifestDigest: string;
  /** Local path of the verified archive (what the lazy mount serves). */
  archivePath: string;
  layerDigest: string;
  layerIndex: number;
  layerCount: number;
}

export interface SnapshotRecord {
  id: number;
  /** The key (active/view) or name (committed). */
  name: string;
  kind: SnapshotKind;
  parent: string;
  labels: Record<string, string>;
  /** Nanoseconds since the epoch, decimal. */
  createdAt: string;
  updatedAt: string;
  remote?: RemoteLayer;
  /** Image mount (pool image key) this snapshot holds: remote layers and snapshots on them; released on Remove. */
  imageMount?: string;
  /** Committed snapshots: bytes and inodes of their own directory, measured at commit. */
  usage?: { size: number; inodes: number };
}

interface StoreDocument {
  version: 1;
  nextId: number;
  snapshots: SnapshotRecord[];
}

const MAX_KEY_LENGTH = 4096;

/** The metadata file's document; a corrupt or newer one stops the snapshotter with a ClipError, not a crash. */
function parseDocument(file: string, text: string): StoreDocument {
  let doc: Partial<StoreDocument> | null;
  try {
    doc = JSON.parse(text) as Partial<StoreDocument> | null;
  } catch (error) {
    throw new SnapshotterSetupError('root', `${file} is not valid JSON (${(error as Error).message})`, { cause: error });
  }
  if (doc?.version !== 1) {
    throw new SnapshotterSetupError('root', `${file}: unsupported metadata version ${String(doc?.version)} (this clip reads version 1)`);
  }
  if (!Number.isInteger(doc.nextId) || !Array.isArray(doc.snapshots)) {
    throw new SnapshotterSetupError('root', `${file}: malformed metadata (nextId or snapshots missing)`);
  }
  return doc as StoreDocument;
}

export function checkKey(key: string, what = 'key'): void {
  if (!key) throw new SnapshotArgumentError(`snapshot ${what} must not be empty`);
  if (key.length > MAX_KEY_LENGTH || key.includes('\0'))
    throw new SnapshotArgumentError(`invalid snapshot ${what} ${JSON.stringify(key.slice(0, 80))}`);
}

export class MetadataStore {
  private readonly byName = new Map<string, SnapshotRecord>();
  private nextId = 1;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly file: string) {}

  static async open(root: string): Promise<MetadataStore> {
    const store = new MetadataStore(join(root, 'metadata.json'));
    const text = await readFile(store.file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw new SnapshotterSetupError('root', `cannot read ${store.file}: ${error.message}`, { cause: error });
    });
    if (text !== undefined) {
      const doc = parseDocument(store.file, text);
      store.nextId = doc.nextId;
      for (const record of doc.snapshots) store.byName.set(record.name, record);
    }
    return store;
  }

  get(name: string): SnapshotRecord | undefined {
    return this.byName.get(name);
  }

  require(name: string): SnapshotRecord {
    const record = this.byName.get(name);
    if (!record) throw new SnapshotNotFoundError(`snapshot ${JSON.stringify(name)} does not exist`);
    return record;
  }

  all(): SnapshotRecord[] {
    return [...this.byName.values()];
  }

  children(name: string): SnapshotRecord[] {
    return this.all().filter((r) => r.parent === name);
  }

  /** Parent chain, nearest first. */
  ancestors(record: SnapshotRecord): SnapshotRecord[] {
    const chain: SnapshotRecord[] = [];
    for (let parent = record.parent; parent; ) {
      const p = this.require(parent);
      chain.push(p);
      parent = p.parent;
    }
    return chain;
  }

  allocateId(): number {
    return this.nextId++;
  }

  /** Ids up to `max` are taken (e.g. by directories on disk). */
  reserveIdsUpTo(max: number): void {
    this.nextId = Math.max(this.nextId, max + 1);
  }

  /** Runs `fn` exclusively; its changes (made through `put`/`delete`) are persisted before it resolves. */
  transaction<T>(fn: (tx: StoreTransaction) => T | Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      const changes = new Map<string, SnapshotRecord | null>();
      const tx: StoreTransaction = {
        put: (record) => {
          changes.set(record.name, record);
        },
        create: (record) => {
          if (this.byName.has(record.name) || changes.get(record.name))
            throw new SnapshotExistsError(`snapshot ${JSON.stringify(record.name)} already exists`);
          changes.set(record.name, record);
        },
        delete: (name) => {
          changes.set(name, null);
        },
      };
      const result = await fn(tx);
      if (changes.size > 0) {
        const previous = new Map(this.byName);
        for (const [name, record] of changes) {
          if (record) this.byName.set(name, record);
          else this.byName.delete(name);
        }
        try {
          await this.persist();
        } catch (error) {
          this.byName.clear();
          for (const [name, record] of previous) this.byName.set(name, record);
          throw error;
        }
      }
      return result;
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async persist(): Promise<void> {
    const doc: StoreDocument = { version: 1, nextId: this.nextId, snapshots: this.all() };
    await writeFileAtomically(this.file, Buffer.from(JSON.stringify(doc)));
    // The rename itself must reach the disk before we answer containerd: after a power loss
    // its own (fsynced) metadata would otherwise name snapshots we no longer know.
    const directory = await open(dirname(this.file), 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }
}

export interface StoreTransaction {
  /** Adds a record whose name must be new (ALREADY_EXISTS otherwise). */
  create(record: SnapshotRecord): void;
  /** Replaces a record. */
  put(record: SnapshotRecord): void;
  delete(name: string): void;
}
