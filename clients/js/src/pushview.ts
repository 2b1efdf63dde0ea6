/**
 * What the push service worker (`sw.ts`) shows for a Web Push and where a click on it leads:
 * pure, so Node's test runner checks it (a browser here can deliver a push to the worker, but
 * nothing can click a system notification in a headless browser).
 *
 * A push carries `{"notification": {id, kind, title, body, data, created_at}, "unread_count": n}`
 * (protocol part 2). Messages show one notification per conversation (the tag), as the server's
 * `Topic` keeps one push per conversation; a newer one replaces the older.
 */

export interface PushedNotification {
  id: string;
  kind: string;
  title: string;
  body: string;
  data?: Record<string, unknown>;
  created_at?: string;
}

export interface PushPayload {
  notification: PushedNotification;
  unread_count?: number;
}

/** What `showNotification` gets. */
export interface Shown {
  title: string;
  options: {
    body: string;
    tag: string;
    data: { url: string; notification: PushedNotification; unread_count: number | null };
  };
}

/** The payload of a push, or null when it is not one of ours (nothing is shown then). */
export function parsePayload(text: string | null): PushPayload | null {
  if (!text) return null;
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch {
    return null;
  }
  const notification = (payload as Partial<PushPayload> | null)?.notification;
  if (!notification || typeof notification.id !== "string" || typeof notification.title !== "string") return null;
  return payload as PushPayload;
}

export function notificationTag(notification: PushedNotification): string {
  const conversation = notification.data?.conversation_id;
  return notification.kind === "message" && typeof conversation === "string"
    ? `conversation:${conversation}`
    : `notification:${notification.id}`;
}

/** The page a notification opens, inside the worker's scope (a job on the site: its own page). */
export function notificationUrl(notification: PushedNotification, scope: string): string {
  const url = new URL(scope);
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

export function shownFor(payload: PushPayload, scope: string): Shown {
  const notification = payload.notification;
  return {
    title: notification.title,
    options: {
      body: notification.body ?? "",
      tag: notificationTag(notification),
      data: { url: notificationUrl(notification, scope), notification, unread_count: payload.unread_count ?? null },
    },
  };
}

/**
 * Where a click goes: the index of an open window of the site (inside the scope) to focus and
 * tell, or -1 to open the notification's page in a new one.
 */
export function clickTarget(windowUrls: readonly string[], scope: string): number {
  return windowUrls.findIndex((url) => url.startsWith(scope));
}

/** What the focused window is told (the demo opens the conversation). */
export function clickMessage(data: Shown["options"]["data"]): {
  type: "notification.click";
  url: string;
  notification: PushedNotification;
} {
  return { type: "notification.click", url: data.url, notification: data.notification };
}
