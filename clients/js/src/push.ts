/**
 * Web Push (protocol part 2): `enablePush` asks the user's permission, registers the service
 * worker (`sw.js` of this package: it shows the notification from the push payload and
 * focuses or opens the right page on click), subscribes with the server's VAPID key and sends
 * `push.subscribe`. Where does the key come from: `hello.push.vapid_public_key`, else
 * `GET /v1/push/vapid-public-key` on the gateway.
 */

import type { RealtimeClient } from "./client.js";
import type { PushSubscriptionJson } from "./protocol.js";

export interface PushOptions {
  /** URL of the service worker script (this package's `sw.js`, served from the site). */
  serviceWorkerUrl: string | URL;
  /** Its scope (default: the script's folder). */
  scope?: string;
  /** The gateway's WebSocket URL, to fetch the VAPID key when hello had none. */
  gatewayUrl?: string;
}

export class PushUnavailable extends Error {
  constructor(
    readonly reason: "unsupported" | "denied" | "no-key",
    message: string,
  ) {
    super(message);
    this.name = "PushUnavailable";
  }
}

export async function enablePush(client: RealtimeClient, options: PushOptions): Promise<PushSubscription> {
  if (!("serviceWorker" in navigator) || typeof PushManager === "undefined") {
    throw new PushUnavailable("unsupported", "this browser has no Web Push");
  }
  const key = client.getState().vapidKey ?? (options.gatewayUrl ? await fetchVapidKey(options.gatewayUrl) : null);
  if (!key) throw new PushUnavailable("no-key", "the server announced no VAPID key");
  const permission = await Notification.requestPermission();
  if (permission !== "granted") throw new PushUnavailable("denied", `notification permission ${permission}`);
  const registration = await navigator.serviceWorker.register(
    options.serviceWorkerUrl,
    options.scope ? { scope: options.scope } : {},
  );
  await navigator.serviceWorker.ready;
  const existing = await registration.pushManager.getSubscription();
  const subscription =
    existing ??
    (await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: base64UrlToBytes(key),
    }));
  await client.pushSubscribe(subscription.toJSON() as PushSubscriptionJson);
  return subscription;
}

/** `GET /v1/push/vapid-public-key` on the gateway that serves `wsUrl`. */
export async function fetchVapidKey(wsUrl: string): Promise<string | null> {
  const url = new URL("/v1/push/vapid-public-key", wsUrl.replace(/^ws/, "http"));
  const response = await fetch(url);
  if (!response.ok) return null;
  const body = (await response.json()) as { vapid_public_key?: string };
  return body.vapid_public_key ?? null;
}

export function base64UrlToBytes(value: string): Uint8Array<ArrayBuffer> {
  const base64 = value.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (value.length % 4)) % 4);
  const binary = atob(base64);
  const bytes = new Uint8Array(new ArrayBuffer(binary.length));
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
