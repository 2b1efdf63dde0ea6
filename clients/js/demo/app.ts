// The SDK demo (served by the gateway under /dev/ in development): conversation list, chat
// window with ticks, typing and presence, group creation and the notification bell, built only
// on the SDK's public API. Query parameters: ?user=<id> signs in with a development token,
// ?auth=cookie uses the site's session cookie, ?tabs=shared-worker|leader|none forces how tabs
// share the connection, ?chat=<conversation id or @user> opens a chat.

import {
  conversationList,
  createClient,
  timeline,
  typists,
  unreadCount,
  type MultiTabMode,
  type RealtimeClient,
  type State,
} from "../dist/index.js";

const params = new URLSearchParams(location.search);
const $ = <T extends HTMLElement>(selector: string): T => document.querySelector(selector) as T;
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
const TICKS: Record<string, string> = { pending: "sending…", failed: "not sent", sent: "✓", delivered: "✓✓", read: "✓✓" };

let client: RealtimeClient;
let openChat: string | null = params.get("chat") ?? params.get("conversation");
let scheduled = false;

function start(): void {
  const user = params.get("user");
  const cookie = params.get("auth") === "cookie";
  if (!user && !cookie) {
    $("#signin").hidden = false;
    return;
  }
  $("#app").hidden = false;
  client = createClient({
    url: wsUrl,
    key: user ?? "cookie-session",
    multiTab: (params.get("tabs") as MultiTabMode | null) ?? "auto",
    ...(user ? { token: () => devToken(user) } : {}),
  });
  client.subscribe(() => {
    if (scheduled) return;
    scheduled = true;
    setTimeout(() => {
      scheduled = false;
      render(client.getState());
    }, 0);
  });
  // A click on a push notification (sw.js) focuses this page and names the conversation.
  navigator.serviceWorker?.addEventListener("message", (event: MessageEvent) => {
    const conversation = (event.data?.notification?.data as { conversation_id?: string } | undefined)?.conversation_id;
    if (conversation) selectChat(conversation);
  });
  wireForms();
  render(client.getState());
}

async function devToken(user: string): Promise<string> {
  const response = await fetch(`token?sub=${encodeURIComponent(user)}`, { cache: "no-store" });
  if (!response.ok) throw new Error(`dev token: HTTP ${response.status}`);
  return ((await response.json()) as { token: string }).token;
}

function wireForms(): void {
  $("#signin-form").onsubmit = (event) => event.preventDefault();
  $<HTMLFormElement>("#new-chat").onsubmit = (event) => {
    event.preventDefault();
    const input = $<HTMLInputElement>("#new-chat input");
    const peer = input.value.trim();
    if (!peer) return;
    input.value = "";
    selectChat(client.getState().directPeers[peer] ?? `@${peer}`);
  };
  $<HTMLFormElement>("#new-group").onsubmit = async (event) => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const data = new FormData(form);
    const members = String(data.get("members")).split(",").map((m) => m.trim()).filter(Boolean);
    const note = $("#groups-note");
    try {
      const created = await client.createGroup(String(data.get("title")), members);
      form.reset();
      if (created) selectChat(created.id);
    } catch (error) {
      note.hidden = false;
      note.textContent = `could not create the group: ${(error as Error).message}`;
    }
  };
  $<HTMLFormElement>("#composer").onsubmit = (event) => {
    event.preventDefault();
    const input = $<HTMLInputElement>("#text");
    const body = input.value.trim();
    if (!body || !openChat) return;
    input.value = "";
    const conversation = currentConversation(client.getState());
    if (conversation) client.stopTyping(conversation);
    void client.send(openChat, body);
  };
  $<HTMLInputElement>("#text").oninput = () => {
    const conversation = currentConversation(client.getState());
    if (conversation) client.typing(conversation);
  };
  $<HTMLSelectElement>("#presence").onchange = (event) => {
    void client.setPresence((event.target as HTMLSelectElement).value as "online");
  };
  $("#bell").onclick = () => {
    $("#bell-menu").hidden = !$("#bell-menu").hidden;
  };
  $("#read-all").onclick = () => void client.markNotificationsRead("all");
  $("#load-older").onclick = () => {
    const conversation = currentConversation(client.getState());
    if (conversation) void client.loadOlder(conversation).catch(() => undefined);
  };
  document.addEventListener("visibilitychange", () => render(client.getState()));
}

function selectChat(key: string): void {
  openChat = key;
  render(client.getState());
  $<HTMLInputElement>("#text").focus();
}

function currentConversation(state: State): string | null {
  if (!openChat) return null;
  return openChat.startsWith("@") ? (state.directPeers[openChat.slice(1)] ?? null) : openChat;
}

function chatName(state: State, id: string): string {
  const conversation = state.conversations[id];
  if (!conversation) return id;
  if (conversation.kind === "group") return conversation.title ?? "group";
  return conversation.peer ?? "direct conversation";
}

function presenceOf(state: State, user: string | null): string {
  return user ? (state.presence[user]?.status ?? "offline") : "offline";
}

function render(state: State): void {
  const now = Date.now();
  // A chat opened by user id switches to its conversation id once the first ack tells it.
  const resolved = currentConversation(state);
  if (openChat?.startsWith("@") && resolved) openChat = resolved;

  $("#me").textContent = state.me ? `signed in as ${state.me}` : "";
  $("#presence").hidden = state.me === null;
  const status = $("#status");
  status.dataset.status = state.connection.status;
  status.textContent = state.connection.status;
  $("#mode").textContent = `tabs: ${client.mode}`;
  $("#mode").dataset.mode = client.mode;

  // Bell: greyed out, with the reason, when the server has no notifications yet.
  const unavailable = state.capabilities.notifications === false;
  const bell = $<HTMLButtonElement>("#bell");
  bell.disabled = unavailable;
  bell.dataset.available = String(!unavailable);
  bell.title = unavailable ? "notifications are not available on this server yet" : "notifications";
  const count = $("#bell-count");
  count.dataset.count = String(state.notifications.unread);
  count.textContent = state.notifications.unread ? String(state.notifications.unread) : "";
  $("#notifications").replaceChildren(
    ...state.notifications.items.map((n) => {
      const li = document.createElement("li");
      li.className = n.read ? "" : "unread";
      li.dataset.id = n.id;
      li.textContent = `${n.title}${n.body ? ` — ${n.body}` : ""}`;
      li.onclick = () => {
        void client.markNotificationsRead([n.id]);
        const conversation = (n.data as { conversation_id?: string }).conversation_id;
        if (conversation) selectChat(conversation);
      };
      return li;
    }),
  );

  // Conversations.
  $("#conversations").replaceChildren(
    ...conversationList(state).map((conversation) => {
      const li = document.createElement("li");
      li.dataset.chat = conversation.id;
      li.dataset.peer = conversation.peer ?? "";
      if (conversation.id === resolved) li.className = "active";
      const dot = document.createElement("span");
      dot.className = "dot";
      dot.dataset.presence = conversation.kind === "group" ? "group" : presenceOf(state, conversation.peer);
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = chatName(state, conversation.id);
      const preview = document.createElement("span");
      preview.className = "preview";
      preview.textContent = conversation.lastMessage?.body ?? "";
      name.append(preview);
      li.append(dot, name);
      const unread = unreadCount(state, conversation.id);
      if (unread) {
        const badge = document.createElement("span");
        badge.className = "unread-badge";
        badge.dataset.unread = String(unread);
        badge.textContent = String(unread);
        li.append(badge);
      }
      li.onclick = () => selectChat(conversation.id);
      return li;
    }),
  );
  const groups = state.capabilities.conversations;
  $<HTMLButtonElement>("#new-group button").disabled = groups === false;
  const note = $("#groups-note");
  if (groups === false) {
    note.hidden = false;
    note.textContent = "Groups are not available on this server yet.";
  }

  const footer = $("#sync-info");
  footer.dataset.held = JSON.stringify(state.cursor);
  if (state.lastSync) {
    footer.dataset.cursor = JSON.stringify(state.lastSync.cursor);
    footer.dataset.events = String(state.lastSync.events);
    footer.dataset.at = String(state.lastSync.at);
    footer.textContent = `last sync from ${JSON.stringify(state.lastSync.cursor)}: ${state.lastSync.events} frames · cursor ${JSON.stringify(state.cursor)}`;
  }

  // Chat window.
  const chat = $("#chat");
  chat.dataset.chat = openChat ?? "";
  $<HTMLInputElement>("#text").disabled = !openChat;
  $<HTMLButtonElement>("#send").disabled = !openChat;
  if (!openChat) return;
  const conversation = resolved ? state.conversations[resolved] : undefined;
  const peer = openChat.startsWith("@") ? openChat.slice(1) : (conversation?.peer ?? null);
  $("#chat-title").textContent = resolved ? chatName(state, resolved) : (peer ?? openChat);
  $("#peer-dot").dataset.presence = conversation?.kind === "group" ? "group" : presenceOf(state, peer);
  const typing = resolved ? typists(state, resolved, now) : [];
  $("#typing").dataset.typing = typing.join(",");
  $("#typing").textContent = typing.length ? `${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…` : "";
  $("#load-older").hidden = !(conversation?.hasOlder && state.capabilities.conversations);
  const list = $("#messages");
  const items = timeline(state, openChat);
  list.replaceChildren(
    ...items.map((item) => {
      const li = document.createElement("li");
      li.className = item.mine ? "mine" : "";
      li.dataset.clientMsgId = item.clientMsgId;
      li.dataset.seq = item.seq === null ? "" : String(item.seq);
      li.dataset.status = item.status ?? "";
      const sender = document.createElement("span");
      sender.className = "sender";
      sender.textContent = item.mine ? "" : item.senderId;
      const body = document.createElement("span");
      body.className = "body";
      body.textContent = item.body;
      li.append(sender, body);
      if (item.status) {
        const ticks = document.createElement("span");
        ticks.className = "ticks";
        ticks.textContent = TICKS[item.status] ?? "";
        li.append(ticks);
      }
      return li;
    }),
  );
  list.scrollTop = list.scrollHeight;
  // The user sees this chat: it is read (the SDK sends the receipt once per new message).
  if (resolved && document.visibilityState === "visible") client.markRead(resolved);

}

start();
