// The console's entry point: sign in (an API key becomes an HttpOnly session cookie), the top
// bar and menu, then the page the address names. Page modules register themselves on import.
import { ApiFailure, api, drawMenu, onSignedOut, render, session } from "./core.js";
// Pages (one import each; their order is the menu's order within a group).
import "./pages/callbacks.js";
import "./pages/queues.js";
import "./pages/flows.js";
import "./pages/services.js";
import "./pages/transaction_lists.js";
import "./pages/push.js";
import "./pages/dead_letters.js";
import "./pages/simulator.js";
import "./pages/reports.js";
import "./pages/call_ins.js";
import "./pages/keys.js";

const $ = (id) => document.getElementById(id);

function signedIn(answer) {
  Object.assign(session, { name: answer.name, role: answer.role, csrf: answer.csrf, may: answer.may || {} });
  $("who-name").textContent = answer.name;
  $("who-role").textContent = answer.role;
  $("signin").hidden = true;
  $("app").hidden = false;
  drawMenu();
  render();
}

function showSignIn(message) {
  Object.assign(session, { name: "", role: "", csrf: "", may: {} });
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  $("signin-key").value = "";
  $("signin-key").focus();
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("signin-key").value.trim();
  $("signin-error").textContent = "";
  try {
    signedIn(await api("POST", "/ui/session", { key }, { quiet401: true }));
  } catch (e) {
    $("signin-error").textContent = e instanceof ApiFailure && e.status === 401 ? "That API key is not valid." : e.message;
    $("signin-key").select();
  }
});

$("signout").addEventListener("click", async () => {
  try { await api("DELETE", "/ui/session"); } catch (e) { /* signed out either way */ }
  showSignIn("You are signed out.");
});

$("menu-toggle").addEventListener("click", () => {
  const open = document.body.classList.toggle("menu-open");
  $("menu-toggle").setAttribute("aria-expanded", String(open));
});
$("menu").addEventListener("click", (e) => {
  if (e.target.closest("a")) {
    document.body.classList.remove("menu-open");
    $("menu-toggle").setAttribute("aria-expanded", "false");
  }
});

onSignedOut((message) => showSignIn("Your session ended: " + message));
window.addEventListener("hashchange", () => { if (!$("app").hidden) render(); });

api("GET", "/ui/session", undefined, { quiet401: true }).then(signedIn, () => showSignIn(""));
