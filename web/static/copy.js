// Copy buttons: a button with data-copy="ID" copies the text of element ID.
// The buttons are hidden in the HTML and shown here, so that without this
// script (or without a clipboard) no button does nothing. "Copied" is
// announced to screen readers through the page's live region.
(function () {
  "use strict";
  if (!navigator.clipboard || !window.isSecureContext) {
    return;
  }
  var status = document.getElementById("copy-status");
  function announce(text) {
    if (!status) { return; }
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 50);
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        button.textContent = "Copied";
        announce("Copied");
        window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
      }, function () {
        announce("Could not copy: select the text and copy it by hand.");
      });
    });
  });
  // A form reporting errors takes focus to their summary.
  var summary = document.querySelector("[data-error-summary]");
  if (summary) { summary.focus(); }
}());
