/**
 * Persistence in IndexedDB: the state snapshot (cursor and stores, one record, so the cursor
 * never runs ahead of what is stored with it) and the outbox (one record per entry, written by
 * the tab that sends BEFORE the engine hears of it, so a tab or engine that dies loses nothing).
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
}

const VERSION = 1;
const STATE = "state";
const OUTBOX = "outbox";

export function openIndexedDb(name: string): Persistence {
  let opened: Promise<IDBDatabase> | null = null;
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
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    return opened;
  };
  const run = async <T>(
    store: string,
    mode: IDBTransactionMode,
    body: (objects: IDBObjectStore) => IDBRequest<T> | void,
  ): Promise<T | undefined> => {
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
  };
}
