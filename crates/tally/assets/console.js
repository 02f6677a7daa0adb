// Tally console: the little the pages need beyond HTML.
// - live CDR rows: a table with data-live="<url>" follows a server-sent
//   event stream whose events are ready-made table rows;
// - the webhook form shows only the fields of the chosen auth mode;
// - a select with data-autosubmit sends its form when changed.
// Every page works without this file, except that rows do not arrive live.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () {
      if (select.value !== "") select.form.submit();
    });
  });

  document.querySelectorAll("table[data-live]").forEach(function (table) {
    var body = table.tBodies[0];
    var status = document.getElementById(table.dataset.liveStatus || "");
    var source = new EventSource(table.dataset.live);
    function say(text) { if (status) status.textContent = text; }
    source.addEventListener("open", function () { say("Live: new calls appear at the top."); });
    source.addEventListener("error", function () { say("Live updates paused; reconnecting…"); });
    source.addEventListener("cdr", function (event) {
      var empty = body.querySelector("tr.empty");
      if (empty) empty.remove();
      var holder = document.createElement("tbody");
      holder.innerHTML = event.data;
      var row = holder.firstElementChild;
      if (!row || document.getElementById(row.id)) return;
      row.classList.add("fresh");
      body.insertBefore(row, body.firstElementChild);
      say("New call from " + (row.dataset.caller || "?") + " to " + (row.dataset.callee || "?") + ".");
    });
  });

  document.querySelectorAll("select[data-auth-mode]").forEach(function (select) {
    function show() {
      select.form.querySelectorAll("[data-auth-fields]").forEach(function (group) {
        var on = group.dataset.authFields.split(" ").indexOf(select.value) >= 0;
        group.hidden = !on;
        group.querySelectorAll("input").forEach(function (input) { input.disabled = !on; });
      });
    }
    select.addEventListener("change", show);
    show();
  });
});
