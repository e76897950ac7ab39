// The browser way to use age, for people without the age command: making a
// key on the request form and opening a credential on its page. Loaded as a
// module file (the CSP allows no inline script) on those two pages only;
// both pages work without it, leading with the age commands.
//
// The private key stays in this page's memory: it is never sent (the only
// request made here fetches the encrypted file) and never stored (no
// localStorage, no cookie). It is dropped when the person leaves the page.
import { Decrypter, generateX25519Identity, identityToRecipient } from "./age.js";

// keyFile is key.txt exactly as age-keygen writes it: the creation time in
// RFC 3339 (Go's time.RFC3339, local time, no fractions), the public key as
// a comment, then the secret key.
function keyFile(secret, recipient, now) {
  const pad = (n) => String(n).padStart(2, "0");
  const off = -now.getTimezoneOffset();
  const zone = off === 0 ? "Z" : (off > 0 ? "+" : "-") + pad(Math.floor(Math.abs(off) / 60)) + ":" + pad(Math.abs(off) % 60);
  const created = now.getFullYear() + "-" + pad(now.getMonth() + 1) + "-" + pad(now.getDate()) +
    "T" + pad(now.getHours()) + ":" + pad(now.getMinutes()) + ":" + pad(now.getSeconds()) + zone;
  return "# created: " + created + "\n# public key: " + recipient + "\n" + secret + "\n";
}

// Make a key: on the request form.
const make = document.getElementById("browser-key");
if (make) {
  const start = document.getElementById("browser-key-make");
  const result = document.getElementById("browser-key-result");
  const link = document.getElementById("browser-key-download");
  const saved = document.getElementById("browser-key-saved");
  const status = document.getElementById("browser-key-status");
  const field = document.getElementById("public_key");
  let url = "";
  make.hidden = false;
  start.addEventListener("click", async () => {
    start.disabled = true;
    try {
      const began = performance.now();
      const secret = await generateX25519Identity();
      const recipient = await identityToRecipient(secret);
      make.dataset.keygenMs = String(Math.round(performance.now() - began));
      if (url) { URL.revokeObjectURL(url); }
      url = URL.createObjectURL(new Blob([keyFile(secret, recipient, new Date())], { type: "text/plain" }));
      link.href = url;
      field.value = recipient;
      saved.checked = false;
      saved.required = true; // the form is not sent until the person says key.txt is saved
      result.hidden = false;
      status.textContent = "Made a key. Download key.txt, keep it safe, and tick the box below.";
      link.focus();
    } catch (e) {
      status.textContent = "This browser could not make a key (" + e.message + "). Use age-keygen instead.";
    } finally {
      start.disabled = false;
    }
  });
  // A key typed or pasted by hand needs no confirmation.
  field.addEventListener("input", () => {
    if (result.hidden) { return; }
    result.hidden = true;
    saved.required = false;
    if (url) { URL.revokeObjectURL(url); url = ""; link.removeAttribute("href"); }
  });
  window.addEventListener("pagehide", () => {
    if (url) { URL.revokeObjectURL(url); url = ""; link.removeAttribute("href"); }
  });
}

// Open it here: on the credential page.
const open = document.getElementById("browser-open");
if (open) {
  const form = document.getElementById("browser-open-form");
  const picker = document.getElementById("browser-open-key");
  const status = document.getElementById("browser-open-status");
  const shown = document.getElementById("browser-open-result");
  const hide = document.getElementById("browser-open-hide");
  const fields = ["url", "username", "password"].map((f) => document.getElementById("open-" + f));
  open.hidden = false;

  const clearShown = () => {
    fields.forEach((el) => { el.textContent = ""; });
    shown.hidden = true;
  };
  const clear = () => {
    clearShown();
    picker.value = "";
  };
  // The secret key, and what it opened, exist only while the page is shown.
  window.addEventListener("pagehide", clear);
  hide.addEventListener("click", () => {
    clear();
    status.textContent = "Hidden. The password is no longer on this page.";
    picker.focus();
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearShown();
    const file = picker.files[0];
    if (!file) {
      status.textContent = "Choose your key.txt first.";
      return;
    }
    try {
      const text = await file.text(); // read here; the file is never uploaded
      if (/-----BEGIN (OPENSSH|RSA) PRIVATE KEY-----/.test(text)) {
        status.textContent = "That is an SSH key. SSH keys are not read in the browser: use the age command shown above.";
        return;
      }
      const secret = text.split(/\r?\n/).map((l) => l.trim()).find((l) => l.startsWith("AGE-SECRET-KEY-"));
      if (!secret) {
        status.textContent = "That file holds no age key. Choose the key.txt you saved, with a line starting AGE-SECRET-KEY-.";
        return;
      }
      status.textContent = "Opening…";
      const resp = await fetch(open.dataset.file, { credentials: "same-origin" });
      if (!resp.ok) {
        status.textContent = "Could not download the credential (HTTP " + resp.status + "). Reload the page and try again.";
        return;
      }
      const sealed = new Uint8Array(await resp.arrayBuffer());
      const began = performance.now();
      const d = new Decrypter();
      d.addIdentity(secret);
      let plain;
      try {
        plain = await d.decrypt(sealed, "text");
      } catch (e) {
        status.textContent = "This key.txt does not open this credential. Choose the key.txt you made when you asked for it.";
        return;
      }
      open.dataset.decryptMs = String(Math.round(performance.now() - began));
      const line = (name) => {
        const m = plain.match(new RegExp("^" + name + ":\\s*(.+)$", "m"));
        return m ? m[1].trim() : "";
      };
      fields[0].textContent = line("Prometheus URL");
      fields[1].textContent = line("Username");
      fields[2].textContent = line("Password");
      shown.hidden = false;
      status.textContent = "Opened. Press Hide when you are done.";
    } catch (e) {
      status.textContent = "Could not open the credential: " + e.message;
    }
  });
}
