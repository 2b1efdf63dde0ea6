/// <reference lib="webworker" />
/**
 * Service worker for Web Push (register it with `enablePush`). A push carries
 * `{"notification": {id, kind, title, body, data, created_at}, "unread_count": n}`
 * (protocol part 2): it is shown at once, one per conversation for messages (a newer one
 * replaces the older, as the server's `Topic` does); a click focuses a window of the site
 * (telling it which notification was clicked) or opens the page the notification is about.
 */

// A classic script (no import/export): every browser with Web Push runs it as a service worker.
const worker = self as unknown as ServiceWorkerGlobalScope;

interface PushedNotification {
  id: string;
  kind: string;
  title: string;
  body: string;
  data?: Record<string, unknown>;
  created_at?: string;
}

interface PushPayload {
  notification: PushedNotification;
  unread_count?: number;
}

/** The page a notification opens, inside this worker's scope. */
function targetUrl(notification: PushedNotification): string {
  const url = new URL(worker.registration.scope);
  const data = notification.data ?? {};
  if (notification.kind === "message" && typeof data.conversation_id === "string") {
    url.searchParams.set("conversation", data.conversation_id);
  } else if (notification.kind === "job_alert" && typeof data.url === "string") {
    const job = new URL(data.url, url);
    if (job.origin === url.origin) return job.href;
    url.searchParams.set("job", String(data.job_id ?? ""));
  } else if (notification.kind === "application_status" && typeof data.application_id === "string") {
    url.searchParams.set("application", data.application_id);
  }
  url.searchParams.set("notification", notification.id);
  return url.href;
}

function tagOf(notification: PushedNotification): string {
  const conversation = notification.data?.conversation_id;
  return notification.kind === "message" && typeof conversation === "string"
    ? `conversation:${conversation}`
    : `notification:${notification.id}`;
}

worker.addEventListener("push", (event) => {
  let payload: PushPayload;
  try {
    payload = event.data?.json() as PushPayload;
  } catch {
    return;
  }
  if (!payload?.notification) return;
  const notification = payload.notification;
  event.waitUntil(
    worker.registration.showNotification(notification.title, {
      body: notification.body,
      tag: tagOf(notification),
      data: { url: targetUrl(notification), notification, unread_count: payload.unread_count ?? null },
    }),
  );
});

worker.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data as { url: string; notification: PushedNotification };
  event.waitUntil(
    (async () => {
      const windows = await worker.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = windows.find((client) => client.url.startsWith(worker.registration.scope));
      if (open) {
        await open.focus();
        open.postMessage({ type: "notification.click", url: data.url, notification: data.notification });
        return;
      }
      await worker.clients.openWindow(data.url);
    })(),
  );
});
