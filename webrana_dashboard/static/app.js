// Webrana console: the only script. Everything works without it; it adds copy buttons, a print button and,
// when Midtrans' snap.js is on the page, the Snap pop-up instead of a full-page redirect.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) { return; }
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        var label = button.textContent;
        button.textContent = button.getAttribute("data-done") || label;
        setTimeout(function () { button.textContent = label; }, 2000);
      });
    });
  });

  document.querySelectorAll("button.print").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });

  document.querySelectorAll("form[data-snap]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.snap || typeof window.snap.pay !== "function" || !window.fetch) { return; }
      event.preventDefault();
      var data = new URLSearchParams(new FormData(form));
      fetch(form.action, {
        method: "POST", body: data, credentials: "same-origin",
        headers: { "Accept": "application/json", "X-CSRF-Token": data.get("csrf_token") || "" }
      }).then(function (response) {
        if (!response.ok) { throw new Error("subscribe failed"); }
        return response.json();
      }).then(function (answer) {
        var done = function () { window.location.assign(answer.result_url); };
        window.snap.pay(answer.token, { onSuccess: done, onPending: done, onError: done, onClose: done });
      }).catch(function () { form.submit(); });
    });
  });
});
