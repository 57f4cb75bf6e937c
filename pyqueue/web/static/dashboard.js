// pyqueue dashboard: the only script (served as a file; the CSP allows no inline script).
// "all on this page" ticks every job checkbox of the bulk form; "refresh every 5 s"
// reloads the page (remembered in localStorage) unless you are selecting or typing.
document.addEventListener("DOMContentLoaded", function () {
  var toggle = document.getElementById("auto-refresh");
  if (toggle) {
    toggle.checked = window.localStorage.getItem("pyqueue-refresh") === "1";
    toggle.addEventListener("change", function () {
      window.localStorage.setItem("pyqueue-refresh", toggle.checked ? "1" : "0");
      if (toggle.checked) schedule();
    });
    var timer = null;
    var schedule = function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        if (!toggle.checked) return;
        var busy = document.querySelector("main input:checked, main details[open]") ||
          (document.activeElement && document.activeElement.closest("main form"));
        if (busy) { schedule(); return; }
        window.location.reload();
      }, 5000);
    };
    if (toggle.checked) schedule();
  }
  document.querySelectorAll("input.select-all").forEach(function (box) {
    box.addEventListener("change", function () {
      var form = box.closest("form");
      form.querySelectorAll('input[name="' + box.dataset.target + '"]').forEach(function (c) {
        c.checked = box.checked;
      });
    });
  });
});
