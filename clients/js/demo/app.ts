// The SDK demo (served by the gateway under /dev/ in development): conversation list with
// unread counts, chat window with ticks, typing and presence, history paging, edits, deletions,
// reactions and replies, groups (create, members, roles, rename, leave), search, the
// notification bell and Web Push, and what to show when the server ends the connection for good
// (the account erased, or replaced by a newer connection of the user), built only on the SDK's
// public API. Query parameters:
// ?user=<id> signs in with a development token, ?auth=cookie uses the site's session cookie,
// ?tabs=shared-worker|leader|none forces how tabs share the connection, ?chat=<conversation id
// or @user> opens a chat, ?page=<n> and ?history=<n> set the page sizes of the conversation list
// and of history.

import {
  conversationList,
  createClient,
  enablePush,
  hasOlder,
  membership,
  timeline,
  typists,
  unreadCount,
  type ConnectionEnded,
  type ConversationView,
  type MultiTabMode,
  type RealtimeClient,
  type State,
  type TimelineItem,
} from "../dist/index.js";

const params = new URLSearchParams(location.search);
const $ = <T extends HTMLElement>(selector: string): T => document.querySelector(selector) as T;
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
const TICKS: Record<string, string> = { pending: "sending…", failed: "not sent", sent: "✓", delivered: "✓✓", read: "✓✓" };
const REACTION = "❤";

let client: RealtimeClient;
let openChat: string | null = params.get("chat") ?? params.get("conversation");
/** What the composer does besides sending: editing a message, or replying to one. */
let composing: { mode: "edit" | "reply"; messageId: string; label: string } | null = null;
let scheduled = false;
const historyPage = Number(params.get("history") ?? "");

function start(): void {
  const user = params.get("user");
  const cookie = params.get("auth") === "cookie";
  if (!user && !cookie) {
    $("#signin").hidden = false;
    return;
  }
  $("#app").hidden = false;
  const page = Number(params.get("page") ?? "");
  client = createClient({
    url: wsUrl,
    key: user ?? "cookie-session",
    multiTab: (params.get("tabs") as MultiTabMode | null) ?? "auto",
    ...(user ? { token: () => devToken(user) } : {}),
    ...(page > 0 ? { conversationsPage: page } : {}),
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
  navigator.serviceWorker?.startMessages();
  client.on("account.erased", showEnded);
  client.on("connection.replaced", showEnded);
  wireForms();
  render(client.getState());
}

async function devToken(user: string): Promise<string> {
  const response = await fetch(`token?sub=${encodeURIComponent(user)}`, { cache: "no-store" });
  if (!response.ok) throw new Error(`dev token: HTTP ${response.status}`);
  return ((await response.json()) as { token: string }).token;
}

/** Told once per end, in every tab (also in a tab opened afterwards). */
function showEnded(notice: ConnectionEnded): void {
  const box = $("#ended");
  box.hidden = false;
  box.dataset.reason = notice.type;
  const erased = notice.type === "account.erased";
  $("#ended-text").textContent = erased
    ? "This account was deleted. Nothing of it is kept in this browser any more."
    : "This account was opened in too many places at once, so this page was disconnected.";
  $("#reconnect-here").hidden = erased;
  // Nothing of an erased account is left to show or to do.
  $("#app").hidden = erased;
}

function csv(value: FormDataEntryValue | null): string[] {
  return String(value ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
}

/** Run an SDK action; a refusal shows in the note under the chat (never a body, only the code). */
function act(action: Promise<unknown>): void {
  const note = $("#action-note");
  note.textContent = "";
  action.catch((error: Error & { code?: string }) => {
    note.textContent = `refused: ${error.code ?? "error"} (${error.message})`;
  });
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
    const note = $("#groups-note");
    try {
      const created = await client.createGroup(String(data.get("title")), csv(data.get("members")));
      form.reset();
      note.hidden = true;
      if (created) selectChat(created.id);
    } catch (error) {
      note.hidden = false;
      note.textContent = `could not create the group: ${(error as Error).message}`;
    }
  };
  $<HTMLFormElement>("#search").onsubmit = async (event) => {
    event.preventDefault();
    const query = $<HTMLInputElement>("#search input").value.trim();
    if (!query) return;
    const results = $("#search-results");
    try {
      const found = await client.search(query);
      const state = client.getState();
      results.replaceChildren(
        ...found.map((message) => {
          const li = document.createElement("li");
          li.dataset.chat = message.conversation_id;
          li.dataset.messageId = message.id;
          li.textContent = `${chatName(state, message.conversation_id)} · ${message.sender_id}: ${message.body}`;
          li.onclick = () => selectChat(message.conversation_id);
          return li;
        }),
      );
      results.dataset.count = String(found.length);
    } catch (error) {
      results.replaceChildren(`search refused: ${(error as Error).message}`);
    }
  };
  $("#more-conversations").onclick = () => act(client.loadMoreConversations());
  $<HTMLFormElement>("#composer").onsubmit = (event) => {
    event.preventDefault();
    const input = $<HTMLInputElement>("#text");
    const body = input.value.trim();
    const conversation = currentConversation(client.getState());
    if (!body || !openChat) return;
    input.value = "";
    if (conversation) client.stopTyping(conversation);
    const doing = composing;
    composing = null;
    if (doing?.mode === "edit" && conversation) act(client.edit(conversation, doing.messageId, body));
    else void client.send(openChat, body, doing?.mode === "reply" ? { replyTo: doing.messageId } : undefined);
    render(client.getState());
  };
  $("#cancel-compose").onclick = () => {
    composing = null;
    $<HTMLInputElement>("#text").value = "";
    render(client.getState());
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
  $("#reconnect-here").onclick = () => act(client.reconnect());
  $("#enable-push").onclick = async () => {
    const status = $("#push-status");
    try {
      await enablePush(client, { serviceWorkerUrl: "sw.js", gatewayUrl: wsUrl });
      status.dataset.state = "on";
      status.textContent = "push is on for this browser";
    } catch (error) {
      status.dataset.state = "failed";
      status.textContent = `push: ${(error as Error).name}: ${(error as Error).message}`;
    }
  };
  $("#load-older").onclick = () => {
    const conversation = currentConversation(client.getState());
    if (conversation) act(client.loadOlder(conversation, historyPage > 0 ? historyPage : undefined));
  };
  $<HTMLFormElement>("#rename").onsubmit = (event) => {
    event.preventDefault();
    const conversation = currentConversation(client.getState());
    const title = $<HTMLInputElement>("#rename input").value.trim();
    if (conversation && title) act(client.rename(conversation, title));
  };
  $<HTMLFormElement>("#add-members").onsubmit = (event) => {
    event.preventDefault();
    const conversation = currentConversation(client.getState());
    const input = $<HTMLInputElement>("#add-members input");
    const users = csv(input.value);
    input.value = "";
    if (conversation && users.length) act(client.addMembers(conversation, users));
  };
  $("#leave").onclick = () => {
    const conversation = currentConversation(client.getState());
    if (conversation) act(client.leave(conversation));
  };
  document.addEventListener("visibilitychange", () => render(client.getState()));
}

function selectChat(key: string): void {
  if (key !== openChat) composing = null;
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

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text = ""): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text) element.textContent = text;
  return element;
}

function button(action: string, label: string, onClick: () => void): HTMLButtonElement {
  const element = el("button", "action", label);
  element.type = "button";
  element.dataset.action = action;
  element.onclick = (event) => {
    event.stopPropagation();
    onClick();
  };
  return element;
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
  // Reconnected (from this tab or another): the end is over.
  if (state.connection.ended === null) $("#ended").hidden = true;
  $("#mode").textContent = `tabs: ${client.mode}`;
  $("#mode").dataset.mode = client.mode;

  renderBell(state);
  renderConversations(state, resolved);
  const groups = state.capabilities.conversations;
  $<HTMLButtonElement>("#new-group button").disabled = groups === false;
  if (groups === false) {
    const note = $("#groups-note");
    note.hidden = false;
    note.textContent = "Groups are not available on this server.";
  }
  $("#search").hidden = state.capabilities.search !== true;

  const footer = $("#sync-info");
  footer.dataset.held = JSON.stringify(state.cursor);
  if (state.lastSync) {
    footer.dataset.cursor = JSON.stringify(state.lastSync.cursor);
    footer.dataset.events = String(state.lastSync.events);
    footer.dataset.at = String(state.lastSync.at);
    footer.textContent = `last sync from ${JSON.stringify(state.lastSync.cursor)}: ${state.lastSync.events} frames · cursor ${JSON.stringify(state.cursor)}`;
  }

  renderChat(state, resolved, now);
}

function renderBell(state: State): void {
  // Greyed out, with the reason, when the server has no notifications.
  const unavailable = state.capabilities.notifications === false;
  const bell = $<HTMLButtonElement>("#bell");
  bell.disabled = unavailable;
  bell.dataset.available = String(!unavailable);
  bell.title = unavailable ? "notifications are not available on this server yet" : "notifications";
  $("#enable-push").hidden = !state.capabilities.push;
  const count = $("#bell-count");
  count.dataset.count = String(state.notifications.unread);
  count.textContent = state.notifications.unread ? String(state.notifications.unread) : "";
  $("#notifications").replaceChildren(
    ...state.notifications.items.map((n) => {
      const li = el("li", n.read ? "" : "unread", `${n.title}${n.body ? ` — ${n.body}` : ""}`);
      li.dataset.id = n.id;
      li.onclick = () => {
        void client.markNotificationsRead([n.id]);
        const conversation = (n.data as { conversation_id?: string }).conversation_id;
        if (conversation) selectChat(conversation);
      };
      return li;
    }),
  );
}

function renderConversations(state: State, resolved: string | null): void {
  $("#conversations").replaceChildren(
    ...conversationList(state).map((conversation: ConversationView) => {
      const li = el("li", conversation.id === resolved ? "active" : "");
      li.dataset.chat = conversation.id;
      li.dataset.peer = conversation.peer ?? "";
      li.dataset.kind = conversation.kind;
      li.dataset.left = String(conversation.left);
      const dot = el("span", "dot");
      dot.dataset.presence = conversation.kind === "group" ? "group" : presenceOf(state, conversation.peer);
      const name = el("span", "name", chatName(state, conversation.id));
      const last = conversation.lastMessage;
      const preview = el("span", "preview");
      preview.textContent = conversation.left
        ? "you are no longer a member"
        : last?.deleted
          ? "message deleted"
          : (last?.body ?? "");
      name.append(preview);
      li.append(dot, name);
      const unread = unreadCount(state, conversation.id);
      if (unread && !conversation.left) {
        const badge = el("span", "unread-badge", String(unread));
        badge.dataset.unread = String(unread);
        li.append(badge);
      }
      li.onclick = () => selectChat(conversation.id);
      return li;
    }),
  );
  $("#more-conversations").hidden = !state.conversationPages.hasMore;
}

function renderChat(state: State, resolved: string | null, now: number): void {
  const chat = $("#chat");
  chat.dataset.chat = openChat ?? "";
  const conversation = resolved ? state.conversations[resolved] : undefined;
  const left = Boolean(conversation?.left);
  $<HTMLInputElement>("#text").disabled = !openChat || left;
  $<HTMLButtonElement>("#send").disabled = !openChat || left;
  $("#left-note").hidden = !left;
  $("#compose-mode").hidden = composing === null;
  $("#compose-label").textContent = composing?.label ?? "";
  $("#compose-mode").dataset.mode = composing?.mode ?? "";
  renderGroupPanel(state, conversation);
  if (!openChat) return;
  const peer = openChat.startsWith("@") ? openChat.slice(1) : (conversation?.peer ?? null);
  $("#chat-title").textContent = resolved ? chatName(state, resolved) : (peer ?? openChat);
  $("#peer-dot").dataset.presence = conversation?.kind === "group" ? "group" : presenceOf(state, peer);
  const typing = resolved ? typists(state, resolved, now) : [];
  $("#typing").dataset.typing = typing.join(",");
  $("#typing").textContent = typing.length ? `${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…` : "";
  $("#load-older").hidden = !(resolved && !left && state.capabilities.conversations && hasOlder(state, resolved));
  const mayModerate = resolved ? membership(state, resolved).canManage : false;
  const list = $("#messages");
  list.replaceChildren(...timeline(state, openChat).map((item) => messageLine(item, resolved, left, mayModerate)));
  list.scrollTop = list.scrollHeight;
  // The user sees this chat: it is read (the SDK sends the receipt once per new message).
  if (resolved && !left && document.visibilityState === "visible") client.markRead(resolved);
}

function messageLine(item: TimelineItem, conversation: string | null, left: boolean, mayModerate: boolean): HTMLLIElement {
  const li = el("li", `${item.mine ? "mine" : ""}${item.deleted ? " deleted" : ""}`);
  li.dataset.clientMsgId = item.clientMsgId;
  li.dataset.messageId = item.messageId ?? "";
  li.dataset.seq = item.seq === null ? "" : String(item.seq);
  li.dataset.status = item.status ?? "";
  li.dataset.edited = String(item.edited);
  li.dataset.deleted = String(item.deleted);
  li.append(el("span", "sender", item.mine ? "" : item.senderId));
  if (item.replyTo) {
    const quoted = item.replyTo.deleted ? "deleted message" : (item.replyTo.body ?? "an earlier message");
    const reply = el("span", "reply", `↪ ${item.replyTo.senderId ?? ""}: ${quoted}`);
    reply.dataset.replyTo = item.replyTo.messageId;
    li.append(reply);
  }
  li.append(el("span", "body", item.body));
  if (item.deleted) li.append(el("span", "note", "message deleted"));
  if (item.edited && !item.deleted) li.append(el("span", "note edited", "(edited)"));
  const reactions = Object.entries(item.reactions);
  if (reactions.length) {
    const shown = el("span", "reactions", reactions.map(([emoji, users]) => `${emoji} ${users.length}`).join(" "));
    shown.dataset.reactions = JSON.stringify(item.reactions);
    li.append(shown);
  }
  if (item.status) li.append(el("span", "ticks", TICKS[item.status] ?? ""));
  const messageId = item.messageId;
  if (conversation && messageId && !item.deleted && !left) {
    const actions = el("span", "actions");
    actions.append(
      button("reply", "reply", () => startComposing("reply", messageId, `replying to ${item.senderId}: ${item.body}`)),
      button("react", REACTION, () => {
        const mine = (item.reactions[REACTION] ?? []).includes(client.getState().me ?? "");
        act(client.react(conversation, messageId, REACTION, !mine));
      }),
    );
    if (item.mine) {
      actions.append(button("edit", "edit", () => startComposing("edit", messageId, "editing your message", item.body)));
    }
    if (item.mine || mayModerate) {
      actions.append(button("delete", "delete", () => act(client.deleteMessage(conversation, messageId))));
    }
    li.append(actions);
  }
  return li;
}

function startComposing(mode: "edit" | "reply", messageId: string, label: string, text = ""): void {
  composing = { mode, messageId, label };
  const input = $<HTMLInputElement>("#text");
  if (mode === "edit") input.value = text;
  input.focus();
  render(client.getState());
}

function renderGroupPanel(state: State, conversation: ConversationView | undefined): void {
  const panel = $("#group-panel");
  const isGroup = conversation?.kind === "group";
  panel.hidden = !isGroup;
  if (!conversation || !isGroup) return;
  const { members, canManage } = membership(state, conversation.id);
  panel.dataset.manage = String(canManage);
  $("#rename").hidden = !canManage;
  $("#add-members").hidden = !canManage;
  $<HTMLButtonElement>("#leave").hidden = conversation.left;
  $("#members").replaceChildren(
    ...members.map((member) => {
      const li = el("li", "");
      li.dataset.user = member.user_id;
      li.dataset.role = member.role;
      const dot = el("span", "dot");
      dot.dataset.presence = presenceOf(state, member.user_id);
      li.append(dot, el("span", "member-name", member.user_id === state.me ? `${member.user_id} (you)` : member.user_id));
      li.append(el("span", "role", member.role));
      if (canManage && member.user_id !== state.me) {
        const next = member.role === "admin" ? "member" : "admin";
        li.append(
          button("role", next === "admin" ? "make admin" : "make member", () =>
            act(client.setRole(conversation.id, member.user_id, next)),
          ),
          button("remove", "remove", () => act(client.removeMember(conversation.id, member.user_id))),
        );
      }
      return li;
    }),
  );
}

start();
