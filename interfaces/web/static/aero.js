// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  // Users: the "Show" filter applies as soon as it changes (the Apply button stays).
  document.querySelectorAll("form[data-auto-apply] select").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  // Register for 2FA: a click in the secret key selects all of it, for copying.
  document.querySelectorAll("input.secret").forEach(function (input) {
    input.addEventListener("focus", function () { input.select(); });
  });
})();
