// What the push service worker shows for a Web Push and where a click leads (src/pushview.ts).
import assert from "node:assert/strict";
import { test } from "node:test";

import { clickMessage, clickTarget, parsePayload, shownFor, type PushedNotification } from "../src/pushview.js";

const SCOPE = "https://site.example/app/";

function pushed(kind: string, data: Record<string, unknown>, id = "n1"): PushedNotification {
  return { id, kind, title: "Title", body: "Body", data, created_at: "2026-11-30T12:00:00Z" };
}

test("a message push: one notification per conversation, opening that conversation", () => {
  const payload = { notification: pushed("message", { conversation_id: "dm_1", count: 2 }), unread_count: 3 };
  const shown = shownFor(payload, SCOPE);
  assert.equal(shown.title, "Title");
  assert.equal(shown.options.body, "Body");
  assert.equal(shown.options.tag, "conversation:dm_1");
  assert.equal(shown.options.data.url, "https://site.example/app/?conversation=dm_1&notification=n1");
  assert.equal(shown.options.data.unread_count, 3);
  const later = shownFor({ notification: pushed("message", { conversation_id: "dm_1" }, "n1") }, SCOPE);
  assert.equal(later.options.tag, shown.options.tag, "a newer message of the conversation replaces it");
  assert.equal(later.options.data.unread_count, null);
});

test("job alerts open the job's page on the site, else the app with the job; applications likewise", () => {
  const onSite = shownFor({ notification: pushed("job_alert", { job_id: "j1", url: "/jobs/j1" }, "n2") }, SCOPE);
  assert.equal(onSite.options.data.url, "https://site.example/jobs/j1");
  assert.equal(onSite.options.tag, "notification:n2");
  const elsewhere = shownFor({ notification: pushed("job_alert", { job_id: "j1", url: "https://evil.example/x" }) }, SCOPE);
  assert.equal(elsewhere.options.data.url, "https://site.example/app/?job=j1&notification=n1");
  const application = shownFor({ notification: pushed("application_status", { application_id: "a9" }) }, SCOPE);
  assert.equal(application.options.data.url, "https://site.example/app/?application=a9&notification=n1");
});

test("anything but our payload shows nothing", () => {
  assert.equal(parsePayload(null), null);
  assert.equal(parsePayload("not json"), null);
  assert.equal(parsePayload('{"title": "x"}'), null);
  assert.equal(parsePayload('{"notification": {"id": 1, "title": "x"}}'), null);
  const payload = parsePayload('{"notification": {"id": "n", "kind": "message", "title": "t", "body": "b"}}');
  assert.equal(payload?.notification.id, "n");
});

test("a click focuses an open window of the site and tells it, else opens the page", () => {
  const elsewhere = "https://other.example/app/";
  assert.equal(clickTarget([elsewhere, "https://site.example/app/?x=1", "https://site.example/app/"], SCOPE), 1);
  assert.equal(clickTarget([elsewhere, "https://site.example/"], SCOPE), -1, "outside the worker's scope");
  const data = shownFor({ notification: pushed("message", { conversation_id: "g" }) }, SCOPE).options.data;
  assert.deepEqual(clickMessage(data), { type: "notification.click", url: data.url, notification: data.notification });
});
