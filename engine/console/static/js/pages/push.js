// Developer > Credential Management > Push Notification, as seed 002 shows it: "Update Firebase
// Credentials" (project name, client email, private key), "Test Firebase Credentials" (App ID,
// public API key, sender ID, device token, and the box that obtains this browser's FCM token with
// the Firebase JS SDK), and the read-back, which shows only a few characters of the email and key.
//
// The private key and the email are sent once and never come back: after Update the inputs are
// emptied, so neither stays in the page.
import { ApiFailure, api, button, clear, field, formatTime, h, may, menu, pageHeader, route, section, text, toast } from "../core.js";

menu("Developer", "Push Notification", "#/developer/push", "push.read");

const TITLE = "Developer > Credential Management > Push Notification";
const FIREBASE_PROBE = "https://firebaseinstallations.googleapis.com/";
const SDK = ["vendor/firebase/firebase-app-compat.js", "vendor/firebase/firebase-messaging-compat.js"];

route("developer/push", async (_params, main) => {
  main.appendChild(pageHeader(TITLE));
  const readBack = h("div", { class: "readback", dataset: { test: "push-readback" } });
  const state = { projectId: "" };
  const refresh = async () => {
    clear(readBack);
    try {
      const creds = await api("GET", "/admin/push/credentials");
      state.projectId = creds.project_id;
      readBack.appendChild(shownCredentials(creds));
    } catch (e) {
      if (e instanceof ApiFailure && e.status === 404) {
        readBack.appendChild(h("p", { class: "empty", dataset: { test: "push-none" } }, "No Firebase credentials are configured yet."));
      } else readBack.appendChild(h("p", { class: "form-error" }, e.message));
    }
  };
  await refresh();
  const panes = h("div", { class: "grid-2 push-panes" });
  main.appendChild(panes);
  panes.appendChild(updatePane(readBack, refresh, state));
  panes.appendChild(testPane(state));
});

function shownCredentials(c) {
  return h("dl", { class: "record" },
    h("dt", {}, "Project name"), h("dd", { dataset: { test: "shown-project" } }, text(c.project_id)),
    h("dt", {}, "Client email"), h("dd", { class: "mono", dataset: { test: "shown-email" } }, text(c.client_email)),
    h("dt", {}, "Private key"), h("dd", { class: "mono", dataset: { test: "shown-key" } }, text(c.private_key)),
    h("dt", {}, "Updated"), h("dd", {}, formatTime(c.updated_at)),
    h("dt", {}, "Status"), h("dd", { class: c.status === "failing" ? "bad" : c.status === "ok" ? "ok" : "" },
      text(c.status), c.status_reason ? ": " + c.status_reason : ""));
}

function updatePane(readBack, refresh, state) {
  const editable = may("push.write");
  const pane = section("Update Firebase Credentials",
    h("p", { class: "muted" }, "Once saved, only a few characters of the client email and the private key are shown again: "
      + "the full values stay in your service account file (Firebase console > Project settings > Service accounts)."),
    readBack);
  pane.dataset.test = "push-update";
  if (!editable) return pane;
  const project = h("input", { name: "project_name", type: "text", autocomplete: "off", spellcheck: "false", placeholder: "fcm-client-11959", value: state.projectId });
  const email = h("input", { name: "client_email", type: "email", autocomplete: "off", spellcheck: "false", placeholder: "firebase-adminsdk-…@….iam.gserviceaccount.com" });
  const key = h("textarea", { name: "private_key", rows: 6, autocomplete: "off", spellcheck: "false", placeholder: "-----BEGIN PRIVATE KEY-----" });
  const error = h("p", { class: "form-error", role: "alert", dataset: { test: "push-update-error" } });
  const update = async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const answer = await api("PUT", "/admin/push/credentials",
        { project_id: project.value.trim(), client_email: email.value.trim(), private_key: key.value });
      email.value = "";
      key.value = "";
      toast(answer.result || "credentials updated", "ok");
      await refresh();
    } catch (e) {
      error.textContent = e.message;
      toast(e.message, "error");
    }
  };
  pane.appendChild(h("form", { onsubmit: update, dataset: { test: "push-update-form" }, novalidate: true, autocomplete: "off" },
    field("Project name", project, "The Firebase project ID, exactly as in Project settings > General."),
    field("Client email", email, "client_email of the service account file."),
    field("Private key", key, "private_key of the service account file (the PEM text)."),
    error,
    h("div", { class: "actions" }, button("Update", null, { kind: "primary", type: "submit", test: "push-update-button" }))));
  return pane;
}

function testPane(state) {
  const pane = section("Test Firebase Credentials");
  pane.dataset.test = "push-test";
  if (!may("push.write")) {
    pane.appendChild(h("p", { class: "muted" }, "Testing the credentials needs the developer or administrator role."));
    return pane;
  }
  const appId = h("input", { name: "app_id", type: "text", autocomplete: "off", spellcheck: "false", placeholder: "1:<sender id>:web:<hex>" });
  const apiKey = h("input", { name: "api_key", type: "text", autocomplete: "off", spellcheck: "false", placeholder: "AIza…" });
  const sender = h("input", { name: "sender_id", type: "text", inputmode: "numeric", autocomplete: "off", placeholder: "digits" });
  const device = h("input", { name: "device_token", type: "text", autocomplete: "off", spellcheck: "false" });
  const enable = h("input", { name: "enable_browser_push", type: "checkbox", id: "enable-browser-push", dataset: { test: "push-enable" } });
  const fcmStatus = h("p", { class: "muted", dataset: { test: "fcm-status" }, "aria-live": "polite" });
  const result = h("p", { class: "push-result", dataset: { test: "push-test-result" }, "aria-live": "polite" });
  const run = h("button", { type: "submit", class: "primary", disabled: true, dataset: { test: "push-test-button" } }, "Test");
  enable.addEventListener("change", async () => {
    run.disabled = !enable.checked;
    if (!enable.checked) { fcmStatus.textContent = ""; return; }
    fcmStatus.textContent = "Asking Firebase for this browser's token…";
    try {
      const token = await browserToken({ appId: appId.value.trim(), apiKey: apiKey.value.trim(), senderId: sender.value.trim(), projectId: state.projectId });
      device.value = token;
      fcmStatus.textContent = "This browser's FCM token is in Device token: the test addresses a notification to it, as a dry run (FCM checks it; nothing is shown).";
    } catch (e) {
      fcmStatus.textContent = `This browser's token could not be obtained (${e.message || e}); the test uses the device token typed above, if any.`;
    }
  });
  const test = async (event) => {
    event.preventDefault();
    result.textContent = "";
    result.className = "push-result";
    const body = { app_id: appId.value.trim(), api_key: apiKey.value.trim(), sender_id: sender.value.trim() };
    if (device.value.trim()) body.device_token = device.value.trim();
    let answer;
    try {
      answer = await api("POST", "/admin/push/credentials/test", body);
    } catch (e) {
      answer = { result: "failure", reason: e.message };
    }
    const ok = answer.result === "successful configuration";
    result.textContent = ok ? "successful configuration" : `failure: ${answer.reason || "no reason given"}`;
    result.classList.add(ok ? "ok" : "bad");
    toast(result.textContent, ok ? "ok" : "error");
  };
  pane.appendChild(h("form", { onsubmit: test, dataset: { test: "push-test-form" }, novalidate: true, autocomplete: "off" },
    h("p", { class: "muted" }, "From your app's settings in the Firebase console (Project settings > General > Your apps)."),
    field("App ID", appId), field("Public API key", apiKey), field("Sender ID", sender),
    field("Device token", device, "An FCM registration token to send a test notification to (a dry run: nothing is shown on the device). Filled in by the box below where Firebase is reachable."),
    h("div", { class: "checkbox" }, enable, h("label", { for: enable.id }, "Enable this app to deliver push notifications to your browser")),
    fcmStatus,
    h("div", { class: "actions" }, run),
    result));
  return pane;
}

// -- this browser's FCM token (the vendored Firebase JS SDK, loaded only when the box is ticked) --
let sdkLoading = null;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src; // served from /ui/, allowed by script-src 'self'
    script.onload = () => resolve();
    script.onerror = () => reject(new Error(`${src} did not load`));
    document.head.appendChild(script);
  });
}

function loadSdk() {
  if (!sdkLoading) {
    sdkLoading = SDK.reduce((chain, src) => chain.then(() => loadScript(src)), Promise.resolve())
      .catch((e) => { sdkLoading = null; throw e; });
  }
  return sdkLoading;
}

async function browserToken({ appId, apiKey, senderId, projectId }) {
  if (!appId || !apiKey || !senderId) throw new Error("fill in App ID, public API key and sender ID first");
  if (!("serviceWorker" in navigator) || !("Notification" in window)) throw new Error("this browser has no service workers or notifications");
  if (!window.isSecureContext) throw new Error("push needs a secure page (https or localhost)");
  const permission = await Notification.requestPermission();
  if (permission !== "granted") throw new Error(`notifications are ${permission === "denied" ? "blocked" : "not allowed"} for this site in the browser's settings`);
  await loadSdk();
  const config = { apiKey, appId, messagingSenderId: senderId, projectId: projectId || undefined };
  // The worker learns the app from its address (it cannot read this page's variables).
  const workerUrl = "firebase-messaging-sw.js?" + new URLSearchParams({ apiKey, appId, messagingSenderId: senderId, projectId: projectId || "" });
  await navigator.serviceWorker.register(workerUrl, { scope: "./" });
  // Subscribing needs the worker active: ready answers once the one for this page's scope is.
  const registration = await withTimeout(navigator.serviceWorker.ready, 10000, "the service worker did not start");
  await firebaseReachable();
  const firebase = window.firebase;
  const app = firebase.apps.find((a) => a.name === "console-push-test");
  if (app) await app.delete();
  const messaging = firebase.initializeApp(config, "console-push-test").messaging();
  const token = await withTimeout(messaging.getToken({ serviceWorkerRegistration: registration }), 15000, "Firebase did not answer within 15 s");
  if (!token) throw new Error("Firebase gave no token");
  return token;
}

// Asking for a token with Firebase out of reach waits a long time before failing; one request
// to its installations service tells at once (an opaque answer is enough: it was reached).
async function firebaseReachable() {
  try {
    await withTimeout(fetch(FIREBASE_PROBE, { mode: "no-cors", cache: "no-store", credentials: "omit" }), 5000, "no answer within 5 s");
  } catch (e) {
    throw new Error(`Firebase cannot be reached from this browser: ${e.message || e}`);
  }
}

function withTimeout(promise, ms, message) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(message)), ms); })])
    .finally(() => clearTimeout(timer));
}
