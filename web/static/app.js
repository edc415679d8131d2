// Conveniences only: every page works without this file.
// A button with data-copy="ID" copies the text of the element ID.
"use strict";
document.addEventListener("click", function (ev) {
  var b = ev.target.closest("button[data-copy]");
  if (!b) return;
  var el = document.getElementById(b.getAttribute("data-copy"));
  if (!el) return;
  var text = el.value !== undefined && el.tagName !== "CODE" ? el.value : el.textContent;
  var done = function () {
    var old = b.textContent;
    b.textContent = "Copied";
    setTimeout(function () { b.textContent = old; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, function () { select(el); });
  } else {
    select(el);
    try { document.execCommand("copy"); done(); } catch (e) {}
  }
});
function select(el) {
  if (el.select) { el.select(); return; }
  var r = document.createRange();
  r.selectNodeContents(el);
  var s = window.getSelection();
  s.removeAllRanges();
  s.addRange(r);
}
// Copy buttons are hidden until this script runs (no JS: no dead button).
document.documentElement.classList.add("js");
