/* task_admin run page: a node's details (traceback, result, attempts) load when its "details"
 * disclosure opens, into a row as wide as the table; a big run's graph is drawn when asked for.
 * Everything inserted comes from JSON and goes in as text (never as HTML), except the graph,
 * which the server draws and escapes. Labels come from #ta-details-labels (json_script). */
(function () {
  "use strict";

  var labelsElement = document.getElementById("ta-details-labels");
  var labels = labelsElement ? JSON.parse(labelsElement.textContent) : {};

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function section(container, title, text, preformatted) {
    if (!text) {
      return;
    }
    container.appendChild(element("h4", "ta-detail-title", title));
    container.appendChild(element(preformatted ? "pre" : "p", preformatted ? "ta-pre" : "", text));
  }

  function attemptsTable(attempts) {
    var table = element("table", "ta-attempts-table");
    var head = element("tr");
    ["#", labels.state, labels.worker, labels.started, labels.finished, labels.reason,
      labels.next_eta].forEach(function (title) {
      head.appendChild(element("th", "", title));
    });
    table.appendChild(element("thead")).appendChild(head);
    var body = table.appendChild(element("tbody"));
    attempts.forEach(function (attempt) {
      var row = element("tr");
      var state = element("span", "ta-state ta-state-" + String(attempt.state).toLowerCase(),
        attempt.state_label);
      var stateCell = element("td");
      stateCell.appendChild(state);
      row.appendChild(element("td", "", attempt.number));
      row.appendChild(stateCell);
      [attempt.worker || "—", attempt.started, attempt.finished, attempt.reason || "—",
        attempt.next_eta].forEach(function (value) {
        row.appendChild(element("td", "", value));
      });
      body.appendChild(row);
      if (attempt.traceback) {
        var traceRow = element("tr");
        var cell = element("td");
        cell.colSpan = 7;
        cell.appendChild(element("pre", "ta-pre", attempt.traceback));
        traceRow.appendChild(cell);
        body.appendChild(traceRow);
      }
    });
    return table;
  }

  function render(data) {
    var box = element("div", "ta-detail");
    var facts = element("p", "ta-detail-facts");
    facts.textContent = [
      labels.task_id + ": " + data.task_id,
      labels.received + ": " + data.received,
      labels.started + ": " + data.started,
      labels.finished + ": " + data.finished,
      labels.runtime + ": " + data.runtime,
    ].join(" · ");
    box.appendChild(facts);
    section(box, labels.exception, data.exception, false);
    section(box, labels.traceback, data.traceback, true);
    section(box, labels.result, data.result, true);
    if (data.attempts && data.attempts.length) {
      box.appendChild(element("h4", "ta-detail-title", labels.attempts));
      box.appendChild(attemptsTable(data.attempts));
    }
    return box;
  }

  function detailRow(row) {
    var next = row.nextElementSibling;
    if (next && next.classList.contains("ta-detail-row")) {
      return next;
    }
    var detail = element("tr", "ta-detail-row");
    var cell = element("td");
    cell.colSpan = row.children.length;
    detail.appendChild(cell);
    row.parentNode.insertBefore(detail, row.nextSibling);
    return detail;
  }

  function toggled(event) {
    var details = event.target;
    var row = details.closest("tr");
    if (!row) {
      return;
    }
    if (!details.open) {
      var next = row.nextElementSibling;
      if (next && next.classList.contains("ta-detail-row")) {
        next.remove();
      }
      return;
    }
    var cell = detailRow(row).firstChild;
    cell.replaceChildren(element("p", "help", labels.loading));
    fetch(details.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        cell.replaceChildren(render(data));
      })
      .catch(function () {
        cell.replaceChildren(element("p", "errornote", labels.failed));
      });
  }

  document.querySelectorAll("details.ta-node-details").forEach(function (details) {
    details.addEventListener("toggle", toggled);
  });

  var graphButton = document.getElementById("ta-graph-load");
  if (graphButton) {
    graphButton.addEventListener("click", function () {
      var holder = document.getElementById("ta-run-graph");
      graphButton.disabled = true;
      fetch(holder.dataset.url, {credentials: "same-origin"})
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.text();
        })
        .then(function (svg) {
          holder.innerHTML = svg;  // drawn and escaped by the server (task_admin.graph)
          document.dispatchEvent(new CustomEvent("ta-graph-drawn"));
        })
        .catch(function () {
          holder.replaceChildren(element("p", "errornote", labels.graph_failed));
        });
    });
  }
})();
