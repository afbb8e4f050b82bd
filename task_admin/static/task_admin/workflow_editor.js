/* task_admin: in the node editor, only the target a node's kind needs can be chosen. */
(function () {
  "use strict";

  function targets() {
    var data = document.getElementById("ta-node-targets");
    return data ? JSON.parse(data.textContent) : null;
  }

  function update(row, map) {
    var kind = row && row.querySelector("select[name$='-kind']");
    if (!kind) {
      return;
    }
    ["invocation", "reuse"].forEach(function (name) {
      var select = row.querySelector("select[name$='-" + name + "']");
      if (!select) {
        return;
      }
      var needed = map[kind.value] === name;
      select.disabled = !needed;
      var cell = select.closest("td");
      if (cell) {
        cell.classList.toggle("ta-unused", !needed);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var map = targets();
    if (!map) {
      return;
    }
    document.querySelectorAll("#nodes-group tr.form-row").forEach(function (row) {
      update(row, map);
    });
    document.addEventListener("change", function (event) {
      if (event.target.matches("#nodes-group select[name$='-kind']")) {
        update(event.target.closest("tr"), map);
      }
    });
    document.addEventListener("formset:added", function (event) {
      update(event.target, map);
    });
  });
})();
