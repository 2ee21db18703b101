// Orders the range requests of one LayerReader: reads a workload is blocked on ("demand")
// go before background work (prefetch lists, readahead, first-run guesses), which otherwise
// would hold the registry client's few connections in arrival order. Background work keeps
// progressing: it may use up to `backgroundSlots` of the `slots` requests in flight and
// always gets one when none of its own runs. A queued background request whose span a demand
// read then needs is promoted (its Urgency is shared by every fetch of that span's decode).
//
// Optionally, queued requests of one class for touching or overlapping ranges of the same
// blob go out as one request (fewer round trips and request overheads); each caller gets
// its own slice of the answer (its pieces are verified by the caller as before).
import type { Digest } from '@clip/shared';
import type { FetchRange } from '@clip/archive-format';

/** Shared by the fetches of one span's decode; a demand read joining it promotes them. */
export class Urgency {
  constructor(
    public demand: boolean,
    private readonly onPromote?: () => void,
  ) {}

  /** Marks the work as blocking a read; queued fetches then go first. */
  promote(): void {
    if (this.demand) return;
    this.demand = true;
    this.onPromote?.();
  }
}

export interface FetchSchedulerOptions {
  /** Requests in flight at once (default 8: the registry client's connections per host). */
  slots?: number;
  /** Of those, at most this many background requests (default slots - 2, at least 1). */
  backgroundSlots?: number;
  /** Classes matter (default); false: arrival order, no background bound (for measurements). */
  priorities?: boolean;
  /** Merge queued requests of touching ranges of one blob into one request (default off). */
  coalesce?: boolean;
  /** Largest merged request, bytes (default 8 MiB). */
  maxCoalescedBytes?: number;
}

export interface FetchSchedulerStats {
  demandRequests: number;
  backgroundRequests: number;
  /** Queued background requests started as demand because a read needed them. */
  promoted: number;
  /** Requests saved by merging. */
  coalesced: number;
}

interface Task {
  digest: Digest;
  start: number;
  end: number;
  urgency: Urgency;
  /** Class when queued (to count promotions). */
  queuedAsDemand: boolean;
  resolve: (bytes: Uint8Array) => void;
  reject: (error: unknown) => void;
}

export const DEFAULT_FETCH_SLOTS = 8;
export const DEFAULT_MAX_COALESCED_BYTES = 8 * 2 ** 20;

export class FetchScheduler {
  readonly #fetchRange: FetchRange;
  readonly #slots: number;
  readonly #backgroundSlots: number;
  readonly #coalesce: boolean;
  readonly #priorities: boolean;
  readonly #maxCoalesced: number;
  /** Arrival order; picked by class at start time (a promotion changes a task's class). */
  readonly #queue: Task[] = [];
  #inFlight = 0;
  #closed = false;
  #backgroundInFlight = 0;
  readonly #stats: FetchSchedulerStats = { demandRequests: 0, backgroundRequests: 0, promoted: 0, coalesced: 0 };

  constructor(fetchRange: FetchRange, options: FetchSchedulerOptions = {}) {
    this.#fetchRange = fetchRange;
    this.#slots = Math.max(1, options.slots ?? DEFAULT_FETCH_SLOTS);
    this.#backgroundSlots = Math.max(1, Math.min(this.#slots, options.backgroundSlots ?? this.#slots - 2));
    this.#coalesce = options.coalesce ?? false;
    this.#priorities = options.priorities ?? true;
    this.#maxCoalesced = options.maxCoalescedBytes ?? DEFAULT_MAX_COALESCED_BYTES;
  }

  get stats(): Readonly<FetchSchedulerStats> {
    return this.#stats;
  }

  /** An Urgency whose promotion lets this scheduler start the promoted work at once. */
  urgency(demand: boolean): Urgency {
    return new Urgency(demand, () => this.#pump());
  }

  /** Fails every queued request and every later one (requests in flight finish): unmounting. */
  close(): void {
    this.#closed = true;
    for (const task of this.#queue.splice(0)) task.reject(new Error('the reader is closed'));
  }

  /** Fetches bytes [start, end) of a blob when its class's turn comes. */
  fetch(digest: Digest, start: number, end: number, urgency: Urgency): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new Error('the reader is closed'));
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#queue.push({ digest, start, end, urgency, queuedAsDemand: urgency.demand, resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#inFlight < this.#slots) {
      const index = this.#pick();
      if (index < 0) return;
      const [task] = this.#queue.splice(index, 1);
      this.#start(task!);
    }
  }

  /** Index of the next task to start, or -1. */
  #pick(): number {
    if (!this.#priorities) return this.#queue.length > 0 ? 0 : -1;
    let firstBackground = -1;
    for (let i = 0; i < this.#queue.length; i++) {
      if (this.#queue[i]!.urgency.demand) {
        // Background work that has nothing in flight gets its turn first: it never starves.
        if (firstBackground >= 0 && this.#backgroundInFlight === 0) return firstBackground;
        return i;
      }
      if (firstBackground < 0) firstBackground = i;
    }
    return firstBackground >= 0 && this.#backgroundInFlight < this.#backgroundSlots ? firstBackground : -1;
  }

  #start(first: Task): void {
    const tasks = this.#coalesce ? this.#gather(first) : [first];
    const demand = tasks.some((task) => task.urgency.demand);
    const start = Math.min(...tasks.map((task) => task.start));
    const end = Math.max(...tasks.map((task) => task.end));
    this.#inFlight++;
    if (!demand) this.#backgroundInFlight++;
    if (demand) this.#stats.demandRequests++;
    else this.#stats.backgroundRequests++;
    for (const task of tasks) if (task.urgency.demand && !task.queuedAsDemand) this.#stats.promoted++;
    this.#stats.coalesced += tasks.length - 1;
    let request: Promise<Uint8Array>;
    try {
      request = this.#fetchRange(first.digest, start, end);
    } catch (error) {
      request = Promise.reject(error);
    }
    request
      .then(
        (bytes) => {
          for (const task of tasks) task.resolve(tasks.length === 1 ? bytes : bytes.subarray(task.start - start, task.end - start));
        },
        (error: unknown) => {
          for (const task of tasks) task.reject(error);
        },
      )
      .finally(() => {
        this.#inFlight--;
        if (!demand) this.#backgroundInFlight--;
        this.#pump();
      });
  }

  /** `first` plus queued tasks of its class and blob whose ranges touch the growing range. */
  #gather(first: Task): Task[] {
    const tasks = [first];
    let start = first.start;
    let end = first.end;
    for (let grew = true; grew; ) {
      grew = false;
      for (let i = 0; i < this.#queue.length; i++) {
        const task = this.#queue[i]!;
        if (task.digest !== first.digest || (this.#priorities && task.urgency.demand !== first.urgency.demand)) continue;
        if (task.start > end || task.end < start) continue;
        const nextStart = Math.min(start, task.start);
        const nextEnd = Math.max(end, task.end);
        if (nextEnd - nextStart > this.#maxCoalesced) continue;
        start = nextStart;
        end = nextEnd;
        tasks.push(task);
        this.#queue.splice(i, 1);
        i--;
        grew = true;
      }
    }
    return tasks;
  }
}
