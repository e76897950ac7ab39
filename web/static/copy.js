// The portal's one script, loaded as a file (the CSP allows no inline
// script); every page works without it.
//
// Copy buttons: a button with data-copy="ID" copies the text of element ID.
// The buttons are hidden in the HTML and shown here, so that without this
// script (or without a clipboard) no button does nothing. "Copied" is
// announced to screen readers through the page's live region.
(function () {
  "use strict";
  var canCopy = navigator.clipboard && window.isSecureContext;
  var status = document.getElementById("copy-status");
  function announce(text) {
    if (!status) { return; }
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 50);
  }
  document.querySelectorAll(canCopy ? "button[data-copy]" : "none").forEach(function (button) {
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
  // The request form shows only the chosen cluster's policy and note.
  var cluster = document.getElementById("cluster");
  if (cluster) {
    var showPolicy = function () {
      document.querySelectorAll(".cluster-policy").forEach(function (li) {
        li.hidden = cluster.value !== "" && li.id !== "policy-" + cluster.value;
      });
    };
    cluster.addEventListener("change", showPolicy);
    showPolicy();
  }
  // A form reporting errors takes focus to their summary.
  var summary = document.querySelector("[data-error-summary]");
  if (summary) { summary.focus(); }
}());
