// The console's only script (served from the package, allowed by the CSP as 'self'): copying a
// new key, confirming destructive actions, and a "back" link. The pages work without it.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // A page that showed a key once answers a POST; point the address bar at the plain page so a
  // reload fetches it afresh (without the key) instead of posting again.
  const replace = document.body.dataset.replaceUrl;
  if (replace) {
    history.replaceState(null, "", replace);
  }

  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      const text = source.textContent.trim();
      try {
        await navigator.clipboard.writeText(text);
      } catch (err) {
        // No clipboard permission (plain http): select the text so Ctrl-C copies it.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }

  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }
});
