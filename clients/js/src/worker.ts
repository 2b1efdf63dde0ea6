/**
 * The SharedWorker that holds a user's one connection for every tab of the browser
 * (`new SharedWorker(<this file>, {type: "module", name: "realtime:<key>"})`, done by
 * `createClient`). The first tab to attach configures it; it lives while any tab does.
 */

import { EngineHost, type FromHost, type HostConfig, type ToHost } from "./hub.js";
import { initialState } from "./state.js";
import { openIndexedDb } from "./storage.js";

const ports = new Set<MessagePort>();
const tabs = new Map<string, MessagePort>();

function broadcast(message: FromHost): void {
  if ((message.k === "snapshot" && message.to !== null) || message.k === "reply") {
    tabs.get(message.to ?? "")?.postMessage(message);
    return;
  }
  for (const port of ports) port.postMessage(message);
}

let starting: Promise<EngineHost> | null = null;

async function startHost(config: HostConfig): Promise<EngineHost> {
  const persistence = openIndexedDb(config.dbName);
  const host = new EngineHost(config, persistence, broadcast);
  const saved = await persistence.loadState().catch(() => null);
  host.start(saved ?? initialState());
  return host;
}

(self as unknown as { onconnect: (event: MessageEvent) => void }).onconnect = (event) => {
  const port = event.ports[0]!;
  ports.add(port);
  port.onmessage = (incoming: MessageEvent<ToHost>) => {
    const message = incoming.data;
    if (message.k === "attach") tabs.set(message.tab, port);
    if (message.k === "detach") {
      tabs.delete(message.tab);
      ports.delete(port);
    }
    if (!starting) {
      if (message.k !== "attach") return;
      starting = startHost(message.config);
    }
    // Chained on one promise: messages reach the host in the order they arrived.
    void starting.then((host) => host.handle(message));
  };
  port.start();
};
