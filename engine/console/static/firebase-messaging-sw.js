// The Push Notification page's service worker (served from /ui/, so its scope is the console):
// Firebase Cloud Messaging hands it the test notifications while the page is in the background.
// The Firebase app it joins is named in its address (the page registers
// firebase-messaging-sw.js?apiKey=...&appId=...&messagingSenderId=...&projectId=...): a worker
// cannot read the page's variables, and these values are public app identifiers, not secrets.
importScripts("vendor/firebase/firebase-app-compat.js", "vendor/firebase/firebase-messaging-compat.js");

const params = new URL(self.location.href).searchParams;
const config = {
  apiKey: params.get("apiKey") || "",
  appId: params.get("appId") || "",
  messagingSenderId: params.get("messagingSenderId") || "",
  projectId: params.get("projectId") || undefined,
};

if (config.apiKey && config.appId && config.messagingSenderId) {
  self.firebase.initializeApp(config);
  // Messages with a "notification" part are shown by the SDK itself; data-only ones here.
  self.firebase.messaging().onBackgroundMessage((payload) => {
    if (payload.notification) return undefined;
    const data = payload.data || {};
    return self.registration.showNotification(data.event || "Callback", { body: data.text || JSON.stringify(data) });
  });
}
