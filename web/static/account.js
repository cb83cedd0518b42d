// The account side of the page: linking this browser as a device of an existing account
// (the first screen), groups made from the chat list, members added to the open group, and a
// device that turned out not to exist any more after a failed unlock.
import { Request } from "./messages.js";

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

/**
 * Wires the account forms. `app` gives the page's `device` channel, `show(state, text)`,
 * `enter(opened)`, `showChats(chats)`, `openChat()` (the open chat's name) and `status`
 * (the status line). Returns `{unlockFailed}`, for the unlock form's errors.
 */
export function setupAccount(app) {
  const { device, show, enter, showChats, openChat, status } = app;
  /** Contacts and groups as last listed: `{name, user}` / `{name, group}`. */
  let chats = [];

  const linkBox = document.getElementById("link-device");
  const linkForm = document.getElementById("link-start");
  const waiting = document.getElementById("link-waiting");
  // The link form sits next to "Create account": shown whenever the welcome screen is.
  const syncLinkBox = () => {
    const state = document.body.dataset.state;
    linkBox.hidden = state !== "welcome" && state !== "linking";
    linkForm.hidden = state === "linking";
    waiting.hidden = state !== "linking";
  };
  new MutationObserver(syncLinkBox).observe(document.body, { attributeFilter: ["data-state"] });

  linkForm.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    link().catch((error) => {
      show("welcome", `${error.message || error}`);
    });
  });

  async function link() {
    const passphrase = byTestId("link-passphrase");
    const relay = byTestId("link-relay").value.trim();
    status.textContent = "starting the link…";
    const { code } = await device.request(Request.LINK_START, { relay });
    byTestId("link-code").value = code;
    show("linking", "waiting for your other device to approve this one");
    const secret = passphrase.value;
    passphrase.value = "";
    await enter(await device.request(Request.LINK_FINISH, { passphrase: secret }));
  }

  const members = byTestId("group-members");
  const legend = members.querySelector("legend");
  const addSelect = byTestId("add-member-name");
  const addForm = document.getElementById("add-member");

  /** Member checkboxes for every contact (keeping what is ticked). */
  function renderMembers() {
    const ticked = new Set(Array.from(members.querySelectorAll("input:checked"))
      .map((box) => box.dataset.name));
    const boxes = chats.filter((chat) => chat.user).map((contact) => {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.dataset.testid = "group-member";
      box.dataset.name = contact.name;
      box.checked = ticked.has(contact.name);
      label.append(box, ` ${contact.name}`);
      return label;
    });
    members.replaceChildren(legend, ...boxes);
  }

  /** The add-member form, for an open group only: every contact as a choice. */
  function renderAddMember() {
    const open = openChat();
    const group = chats.find((chat) => chat.group && chat.name === open);
    addForm.hidden = !group;
    if (!group) {
      return;
    }
    addSelect.replaceChildren(...chats.filter((chat) => chat.user).map((contact) => {
      const option = document.createElement("option");
      option.value = contact.name;
      option.textContent = contact.name;
      return option;
    }));
  }

  async function refresh() {
    chats = await device.request(Request.CHATS);
    renderMembers();
    renderAddMember();
  }
  const report = (error) => {
    status.textContent = `${error.message || error}`;
  };
  // The chat list is redrawn whenever contacts or groups change; so are these forms.
  new MutationObserver(() => refresh().catch(report))
    .observe(byTestId("chat-list"), { childList: true });
  new MutationObserver(() => refresh().catch(report))
    .observe(byTestId("chat-title"), { childList: true, characterData: true, subtree: true });

  document.getElementById("new-group").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const name = byTestId("group-name");
    const picked = Array.from(members.querySelectorAll("input:checked"))
      .map((box) => box.dataset.name);
    status.textContent = `creating the group ${name.value.trim()}…`;
    device.request(Request.CREATE_GROUP, { name: name.value.trim(), members: picked })
      .then((listed) => {
        name.value = "";
        for (const box of members.querySelectorAll("input:checked")) {
          box.checked = false;
        }
        status.textContent = "group created";
        return showChats(listed);
      })
      .catch(report);
  });

  addForm.addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const group = openChat();
    const who = addSelect.value;
    status.textContent = `adding ${who} to ${group}…`;
    device.request(Request.ADD_TO_GROUP, { group, members: [who] })
      .then((listed) => {
        status.textContent = `${who} added to ${group}`;
        return showChats(listed);
      })
      .catch(report);
  });

  return {
    /** After a failed unlock: a device removed meanwhile (an unfinished link) means start again. */
    async unlockFailed(error) {
      if (!(await device.request(Request.EXISTS))) {
        show("welcome");
      }
      throw error;
    },
  };
}
