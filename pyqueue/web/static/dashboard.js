// pyqueue dashboard: the only script (served as a file; the CSP allows no inline script).
// "all on this page" ticks every job checkbox of the bulk form.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input.select-all").forEach(function (box) {
    box.addEventListener("change", function () {
      var form = box.closest("form");
      form.querySelectorAll('input[name="' + box.dataset.target + '"]').forEach(function (c) {
        c.checked = box.checked;
      });
    });
  });
});
