/* task_admin run page: while the run is unfinished, poll its status endpoint and update the
 * badges, each shown node's attempts, worker, started time, runtime and result, the run's own
 * times, the graph and the progress bar; reload the page once the run has finished.
 * Configuration comes from the page through json_script (#ta-run-config). No dependencies. */
(function () {
  "use strict";

  var configElement = document.getElementById("ta-run-config");
  if (!configElement) {
    return;
  }
  var config = JSON.parse(configElement.textContent);
  if (config.finished || !config.statusUrl) {
    return;
  }
  var interval = Math.max(500, Number(config.interval) || 2000);
  var labels = config.labels || {};
  var failures = 0;

  function stateClass(state) {
    return "ta-state-" + String(state || "").toLowerCase();
  }

  function setStateClass(element, state) {
    var keep = [];
    element.classList.forEach(function (name) {
      if (name.indexOf("ta-state-") !== 0) {
        keep.push(name);
      }
    });
    keep.push(stateClass(state));
    element.setAttribute("class", keep.join(" "));
  }

  function setBadge(container, state, label) {
    if (!container) {
      return;
    }
    var badge = container.querySelector(".ta-state");
    if (!badge) {
      return;
    }
    setStateClass(badge, state);
    badge.classList.add("ta-state");
    badge.title = state;
    badge.textContent = label || labels[state] || state;
  }

  function setText(container, selector, text) {
    var element = container && container.querySelector(selector);
    if (element && element.textContent !== text) {
      element.textContent = text;
    }
  }

  function byPath(selector, path) {
    var quoted = window.CSS && CSS.escape ? CSS.escape(path) : path.replace(/"/g, '\\"');
    return document.querySelectorAll(selector + '[data-path="' + quoted + '"]');
  }

  function updateProgress(data) {
    var bar = document.getElementById("ta-progress");
    if (bar) {
      var total = data.total_nodes || 0;
      bar.setAttribute("aria-valuemax", String(total));
      bar.setAttribute("aria-valuenow", String(data.finished_nodes));
      var segments = document.createDocumentFragment();
      var title = [];
      (config.progressStates || []).forEach(function (state) {
        var count = (data.counts || {})[state] || 0;
        if (!count || !total) {
          return;
        }
        var segment = document.createElement("span");
        segment.className = stateClass(state);
        segment.dataset.state = state;
        segment.style.width = (100 * count / total).toFixed(3) + "%";
        segments.appendChild(segment);
        title.push((labels[state] || state) + ": " + count);
      });
      bar.replaceChildren(segments);
      bar.title = title.join(", ");
    }
    var text = document.getElementById("ta-progress-text");
    if (text) {
      text.textContent = text.textContent.replace(
        /^\s*\d+\/\d+/, data.finished_nodes + "/" + data.total_nodes
      );
    }
  }

  function apply(data) {
    setBadge(document.getElementById("ta-run-status"), data.status, data.status_label);
    updateProgress(data);
    // The run's own times (started, duration so far...) in the admin's read-only fields.
    Object.keys(data.times || {}).forEach(function (name) {
      setText(document.querySelector(".field-" + name), ".readonly", data.times[name]);
    });
    (data.nodes || []).forEach(function (node) {
      byPath("tr", node.path).forEach(function (row) {
        setBadge(row.querySelector('[data-field="state"]'), node.state, node.state_label);
        setText(row, '[data-field="attempts"]', String(node.attempts));
        setText(row, '[data-field="worker"]', node.worker || "—");
        setText(row, '[data-field="started"]', node.started || "—");
        setText(row, '[data-field="runtime"]', node.runtime || "—");
        setText(row, '[data-field="result"]', node.result || "");
      });
    });
    // The graph shows every node; the status carries every state when the graph is drawn.
    var states = data.states || {};
    if (!data.states) {
      (data.nodes || []).forEach(function (node) {
        states[node.path] = node.state;
      });
    }
    Object.keys(states).forEach(function (path) {
      byPath(".ta-graph g", path).forEach(function (shape) {
        setStateClass(shape, states[path]);
      });
    });
    if (data.finished) {
      window.location.reload();
      return true;
    }
    return false;
  }

  // A big run's graph is drawn on demand: from then on, ask for every node's state too.
  var statusUrl = config.statusUrl;
  document.addEventListener("ta-graph-drawn", function () {
    if (statusUrl.indexOf("states=1") < 0) {
      statusUrl += (statusUrl.indexOf("?") < 0 ? "?" : "&") + "states=1";
    }
  });

  function poll() {
    fetch(statusUrl, {
      credentials: "same-origin",
      headers: {"Accept": "application/json"},
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        failures = 0;
        if (!apply(data)) {
          schedule();
        }
      })
      .catch(function () {
        // Back off while the server is unreachable; give up after a while.
        failures += 1;
        if (failures < 20) {
          schedule();
        }
      });
  }

  function schedule() {
    window.setTimeout(poll, interval * Math.min(1 + failures, 10));
  }

  schedule();
})();
