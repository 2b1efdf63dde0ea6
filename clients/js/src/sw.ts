/// <reference lib="webworker" />
/**
 * Service worker for Web Push (register it with `enablePush`). A push is shown at once, one per
 * conversation for messages; a click focuses a window of the site (telling it which
 * notification was clicked) or opens the page the notification is about. What is shown and
 * where a click leads are decided in `pushview.ts` (pure, unit-tested).
 *
 * Built as a classic script (esbuild bundles `pushview.ts` in): every browser with Web Push
 * runs a classic service worker, not all of them a module one.
 */

import { clickMessage, clickTarget, parsePayload, shownFor, type Shown } from "./pushview.js";

const worker = self as unknown as ServiceWorkerGlobalScope;

worker.addEventListener("push", (event) => {
  let text: string | null = null;
  try {
    text = event.data?.text() ?? null;
  } catch {
    return;
  }
  const payload = parsePayload(text);
  if (!payload) return;
  const shown = shownFor(payload, worker.registration.scope);
  event.waitUntil(worker.registration.showNotification(shown.title, shown.options));
});

worker.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data as Shown["options"]["data"];
  event.waitUntil(
    (async () => {
      const windows = await worker.clients.matchAll({ type: "window", includeUncontrolled: true });
      const index = clickTarget(
        windows.map((client) => client.url),
        worker.registration.scope,
      );
      const open = windows[index];
      if (open) {
        // Told first: the page opens the conversation even where focusing is refused (focus
        // needs the user activation of a real click).
        open.postMessage(clickMessage(data));
        await open.focus();
        return;
      }
      await worker.clients.openWindow(data.url);
    })(),
  );
});
