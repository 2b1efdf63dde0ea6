/**
 * Persistence in IndexedDB: the state snapshot (cursor and stores, one record, so the cursor
 * never runs ahead of what is stored with it) and the outbox (one record per entry, written by
 * the tab that sends BEFORE the engine hears of it, so a tab or engine that dies loses nothing).
 *
 * One database per SDK key (`realtime:<key>`, the user id by convention). An erased user's
 * database is deleted whole, name included (`destroy`); every open handle on it (the engine's,
 * each tab's) closes when asked to and never opens it again, so nothing recreates it.
 */

import type { OutboxEntry } from "./outbox.js";
import type { State } from "./state.js";

export interface Persistence {
  loadState(): Promise<State | null>;
  saveState(state: State): Promise<void>;
  loadOutbox(): Promise<OutboxEntry[]>;
  putOutbox(entry: OutboxEntry): Promise<void>;
  deleteOutbox(clientMsgId: string): Promise<void>;
  /** Everything, for a sign-out or another user signing in. */
  clear(): Promise<void>;
  /**
   * Delete the database itself (the user was erased). Afterwards reads find nothing, writes
   * of the state or deletions do nothing, and `putOutbox` rejects (a send must not pretend
   * to be kept). Resolves once the browser deleted it (it waits for other handles to close).
   */
  destroy(): Promise<void>;
}

const VERSION = 1;
const STATE = "state";
const OUTBOX = "outbox";

/** Raised by writes that must not silently vanish once the database was deleted. */
export class StorageGone extends Error {
  constructor() {
    super("the local database was deleted (account erased)");
    this.name = "StorageGone";
  }
}

export function openIndexedDb(name: string): Persistence {
  let opened: Promise<IDBDatabase> | null = null;
  // Deleted (by this handle or another): never opened again, or it would come back empty.
  let gone = false;
  let deleting: Promise<void> | null = null;
  const db = (): Promise<IDBDatabase> => {
    opened ??= new Promise((resolve, reject) => {
      const request = indexedDB.open(name, VERSION);
      request.onupgradeneeded = () => {
        const database = request.result;
        if (!database.objectStoreNames.contains(STATE)) database.createObjectStore(STATE);
        if (!database.objectStoreNames.contains(OUTBOX)) {
          database.createObjectStore(OUTBOX, { keyPath: "client_msg_id" });
        }
      };
      request.onsuccess = () => {
        const database = request.result;
        // Another handle deletes the database (newVersion null) or upgrades it: let it.
        database.onversionchange = (event) => {
          database.close();
          opened = null;
          if (event.newVersion === null) gone = true;
        };
        resolve(database);
      };
      request.onerror = () => reject(request.error);
    });
    return opened;
  };
  const run = async <T>(
    store: string,
    mode: IDBTransactionMode,
    body: (objects: IDBObjectStore) => IDBRequest<T> | void,
  ): Promise<T | undefined> => {
    if (gone) return undefined;
    const transaction = (await db()).transaction(store, mode);
    const request = body(transaction.objectStore(store));
    return new Promise((resolve, reject) => {
      // Resolved on commit: a write is durable once this returns.
      transaction.oncomplete = () => resolve(request ? request.result : undefined);
      transaction.onerror = () => reject(transaction.error);
      transaction.onabort = () => reject(transaction.error);
    });
  };
  return {
    async loadState() {
      return ((await run<State>(STATE, "readonly", (s) => s.get("state"))) as State | undefined) ?? null;
    },
    async saveState(state) {
      await run(STATE, "readwrite", (s) => {
        s.put(state, "state");
      });
    },
    async loadOutbox() {
      return ((await run<OutboxEntry[]>(OUTBOX, "readonly", (s) => s.getAll())) as OutboxEntry[]) ?? [];
    },
    async putOutbox(entry) {
      if (gone) throw new StorageGone();
      await run(OUTBOX, "readwrite", (s) => {
        s.put(entry);
      });
    },
    async deleteOutbox(clientMsgId) {
      await run(OUTBOX, "readwrite", (s) => {
        s.delete(clientMsgId);
      });
    },
    async clear() {
      await run(STATE, "readwrite", (s) => {
        s.clear();
      });
      await run(OUTBOX, "readwrite", (s) => {
        s.clear();
      });
    },
    destroy() {
      gone = true;
      deleting ??= (async () => {
        const open = opened;
        opened = null;
        // Closing waits for this handle's transactions in flight (a write-behind save).
        if (open) (await open.catch(() => null))?.close();
        await new Promise<void>((resolve, reject) => {
          const request = indexedDB.deleteDatabase(name);
          request.onsuccess = () => resolve();
          request.onerror = () => reject(request.error);
        });
      })();
      return deleting;
    },
  };
}

/** For environments without IndexedDB: nothing survives a reload. */
export function memoryPersistence(): Persistence {
  let saved: State | null = null;
  const outbox = new Map<string, OutboxEntry>();
  return {
    loadState: async () => saved,
    saveState: async (state) => {
      saved = state;
    },
    loadOutbox: async () => [...outbox.values()],
    putOutbox: async (entry) => {
      outbox.set(entry.client_msg_id, entry);
    },
    deleteOutbox: async (id) => {
      outbox.delete(id);
    },
    clear: async () => {
      saved = null;
      outbox.clear();
    },
    destroy: async () => {
      saved = null;
      outbox.clear();
    },
  };
}
