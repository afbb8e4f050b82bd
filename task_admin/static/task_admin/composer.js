/* task_admin: the workflow composer.
 *
 * The whole tree lives in one JavaScript object, mirrored into the hidden "tree" field as the
 * JSON document the server checks and saves (task_admin/composer.py). Every edit re-renders the
 * tree, writes the document and asks the server for a preview (problems by node path, graph,
 * canvas); the server stays the judge, this script only composes.
 *
 * A task node runs either a saved invocation (picked by name) or a call typed here: a task and
 * one field per parameter, the fields of the invocation form (window.taArguments, from
 * arguments.js); the server stores such a call as an invocation when the workflow is saved.
 *
 * No library: a tree with a chord's header and body slots, moved by keyboard as well as by
 * buttons, is a few hundred lines of plain DOM code, while drag-and-drop libraries
 * (SortableJS and the like) bring neither typed slots nor keyboard moves. A node can also be
 * dragged by its path button (HTML5 drag and drop): dropped on a row it goes before or after
 * that node, dropped on an add bar it goes into that container, header or body.
 */
(function () {
  "use strict";

  var KINDS = ["task", "group", "chain", "chord", "workflow"];
  var CONTAINERS = { group: true, chain: true, chord: true };
  var gettext = window.gettext || function (s) { return s; };
  var ngettext = window.ngettext || function (one, many, n) { return n === 1 ? one : many; };
  var interpolate = window.interpolate || function (fmt, obj) {
    return fmt.replace(/%\((\w+)\)s/g, function (_m, key) { return String(obj[key]); });
  };
  var KIND_LABELS = {
    task: gettext("task"), group: gettext("group"), chain: gettext("chain"),
    chord: gettext("chord"), workflow: gettext("reused workflow")
  };

  // -- paths: the grammar of task_admin/canvas/paths.py --------------------------------------
  var paths = {
    ROOT: "root",
    step: function (path, i) { return path + "." + i; },
    header: function (path, i) { return path + ".header." + i; },
    body: function (path) { return path + ".body"; },
    parent: function (path) {
      if (path === "root" || path.indexOf(".") < 0) { return null; }
      var cut = path.lastIndexOf("."), head = path.slice(0, cut), last = path.slice(cut + 1);
      if (last !== "body" && /\.header$/.test(head)) { head = head.slice(0, -7); }
      return head;
    }
  };

  var uid = 0;

  function setTask(node) {
    // A new task node is a call to fill in here; "saved invocation" is one choice away.
    node.source = "call"; node.task = null; node.args = []; node.kwargs = {}; node.immutable = false;
    node.invocation = null;
  }

  function makeNode(kind) {
    var node = { uid: ++uid, kind: kind, key: "", label: "" };
    if (kind === "task") { setTask(node); }
    if (kind === "workflow") { node.reuse = null; }
    if (kind === "group" || kind === "chain") { node.children = []; }
    if (kind === "chord") { node.header = []; node.body = null; }
    return node;
  }

  function fromDocument(item) {
    if (!item) { return null; }
    var node = makeNode(item.kind);
    node.key = item.key || "";
    node.label = item.label || "";
    if (item.kind === "task" && item.task != null) {
      node.task = item.task; node.args = item.args || []; node.kwargs = item.kwargs || {};
      node.immutable = !!item.immutable;
    } else if (item.kind === "task") {
      node.source = "invocation";
      node.invocation = item.invocation == null ? null : item.invocation;
    }
    if (item.kind === "workflow") { node.reuse = item.reuse == null ? null : item.reuse; }
    if (node.children) { node.children = (item.children || []).map(fromDocument); }
    if (item.kind === "chord") {
      node.header = (item.header || []).map(fromDocument);
      node.body = fromDocument(item.body);
    }
    return node;
  }

  function toDocument(node) {
    if (!node) { return null; }
    var out = { kind: node.kind, key: node.key, label: node.label };
    if (node.kind === "task" && node.source === "call") {
      out.task = node.task; out.args = node.args; out.kwargs = node.kwargs; out.immutable = node.immutable;
    } else if (node.kind === "task") { out.invocation = node.invocation; }
    if (node.kind === "workflow") { out.reuse = node.reuse; }
    if (node.children) { out.children = node.children.map(toDocument); }
    if (node.kind === "chord") {
      out.header = node.header.map(toDocument);
      out.body = toDocument(node.body);
    }
    return out;
  }

  function changeKind(node, kind) {
    // Keep what can be kept: a container's nodes move to the new container (a chord's body last).
    var kids = [];
    if (node.children) { kids = node.children; }
    if (node.kind === "chord") { kids = node.header.concat(node.body ? [node.body] : []); }
    ["children", "header", "body", "invocation", "reuse", "source", "task", "args", "kwargs",
     "immutable", "fields", "rawArgs"].forEach(function (key) { delete node[key]; });
    node.kind = kind;
    if (kind === "task") { setTask(node); }
    if (kind === "workflow") { node.reuse = null; }
    if (kind === "group" || kind === "chain") { node.children = kids; }
    if (kind === "chord") { node.header = kids; node.body = null; }
    return kind in CONTAINERS ? [] : kids;  // what had to be dropped
  }

  function Composer(root, data, field) {
    this.root = root;
    this.data = data;
    this.field = field;
    this.editable = data.editable;
    this.problems = {};
    this.places = {};   // uid -> {list, index, parent, slot}
    this.byPath = {};   // path -> uid
    this.seq = 0;
    this.timer = null;
    var doc = {};
    try { doc = JSON.parse(field.value || "{}"); } catch (e) { doc = {}; }
    this.tree = fromDocument(doc.root || null);
    this.invocationByName = Object.create(null);  // no inherited names ("constructor")
    var self = this;
    Object.keys(data.invocations).forEach(function (id) {
      self.invocationByName[data.invocations[id].name] = Number(id);
    });
    this.loadInvocations();
    this.tasks = data.tasks || {};
    this.taskByShortName = {};
    Object.keys(this.tasks).forEach(function (name) {
      var short = name.split(".").pop();
      // A short name picks its task only when no other task has it.
      self.taskByShortName[short] = short in self.taskByShortName ? null : name;
    });
    this.workflowByName = {};
    Object.keys(data.workflows).forEach(function (id) {
      self.workflowByName[data.workflows[id]] = Number(id);
    });
    this.setProblems(data.errors || []);
    this.render();
    this.write();
    root.addEventListener("click", this.onClick.bind(this));
    root.addEventListener("change", this.onChange.bind(this));
    root.addEventListener("keydown", this.onKey.bind(this));
    root.addEventListener("input", this.onArguments.bind(this));
    root.addEventListener("dragstart", this.onDragStart.bind(this));
    root.addEventListener("dragover", this.onDragOver.bind(this));
    root.addEventListener("dragleave", this.clearDrop.bind(this));
    root.addEventListener("drop", this.onDrop.bind(this));
    root.addEventListener("dragend", this.endDrag.bind(this));
    if ((data.errors && data.errors.length) || data.bound) { this.schedulePreview(0); }
  }

  Composer.prototype.write = function () {
    this.field.value = JSON.stringify({ version: 1, root: toDocument(this.tree) });
  };

  Composer.prototype.changed = function (focus) {
    this.render(focus);
    this.write();
    this.schedulePreview(350);
  };

  // -- where each node sits ----------------------------------------------------------------

  Composer.prototype.index = function () {
    var places = {}, byPath = {};
    function visit(node, path, place) {
      if (!node) { return; }
      places[node.uid] = place;
      node.path = path;
      byPath[path] = node.uid;
      if (node.children) {
        node.children.forEach(function (kid, i) {
          visit(kid, paths.step(path, i), { list: node.children, index: i, parent: node, slot: "step" });
        });
      }
      if (node.kind === "chord") {
        node.header.forEach(function (kid, i) {
          visit(kid, paths.header(path, i), { list: node.header, index: i, parent: node, slot: "header" });
        });
        visit(node.body, paths.body(path), { list: null, index: 0, parent: node, slot: "body" });
      }
    }
    visit(this.tree, paths.ROOT, { list: null, index: 0, parent: null, slot: "root" });
    this.places = places;
    this.byPath = byPath;
  };

  /* Calls fn on every node, in pre-order, until it returns true. */
  Composer.prototype.each = function (fn) {
    var stopped = false;
    function visit(node) {
      if (!node || stopped) { return; }
      if (fn(node)) { stopped = true; return; }
      (node.children || []).forEach(visit);
      if (node.kind === "chord") { node.header.forEach(visit); visit(node.body); }
    }
    visit(this.tree);
  };

  Composer.prototype.find = function (id) {
    var found = null;
    this.each(function (node) { if (node.uid === id) { found = node; return true; } });
    return found;
  };

  Composer.prototype.detach = function (node) {
    var place = this.places[node.uid];
    if (place.slot === "root") { this.tree = null; }
    else if (place.slot === "body") { place.parent.body = null; }
    else { place.list.splice(place.index, 1); }
  };

  // -- edits ---------------------------------------------------------------------------------

  Composer.prototype.add = function (parentId, slot, kind) {
    var node = makeNode(kind);
    if (parentId === "") {
      this.tree = node;
    } else {
      var parent = this.find(Number(parentId));
      if (slot === "body") { parent.body = node; }
      else if (slot === "header") { parent.header.push(node); }
      else { parent.children.push(node); }
    }
    this.changed({ uid: node.uid, control: node.kind === "task" ? "task" : (node.kind === "workflow" ? "target" : "label") });
  };

  Composer.prototype.move = function (node, how) {
    this.index();
    var place = this.places[node.uid], target, list;
    if (how === "up" || how === "down") {
      if (!place.list) { return false; }
      var to = place.index + (how === "up" ? -1 : 1);
      if (to < 0 || to >= place.list.length) { return false; }
      place.list.splice(place.index, 1);
      place.list.splice(to, 0, node);
    } else if (how === "in") {
      // Into the container just above it (a chord: its header).
      if (!place.list || place.index === 0) { return false; }
      target = place.list[place.index - 1];
      if (!(target.kind in CONTAINERS)) { return false; }
      place.list.splice(place.index, 1);
      (target.kind === "chord" ? target.header : target.children).push(node);
    } else if (how === "out") {
      // Out of its container, just after it.
      var parent = place.parent;
      if (!parent) { return false; }
      var outer = this.places[parent.uid];
      if (!outer.list) { return false; }
      this.detach(node);
      list = outer.list;
      list.splice(list.indexOf(parent) + 1, 0, node);
    } else if (how === "to-body") {
      if (place.slot !== "header" || place.parent.body) { return false; }
      place.list.splice(place.index, 1);
      place.parent.body = node;
    } else if (how === "to-header") {
      if (place.slot !== "body") { return false; }
      place.parent.body = null;
      place.parent.header.push(node);
    }
    return true;
  };

  Composer.prototype.remove = function (node) {
    this.index();
    var place = this.places[node.uid], next = null;
    if (place.list) { next = place.list[place.index + 1] || place.list[place.index - 1] || place.parent; }
    else { next = place.parent; }
    this.detach(node);
    this.changed(next ? { uid: next.uid, control: "handle" } : { control: "start" });
  };

  Composer.prototype.onClick = function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button || !this.root.contains(button)) { return; }
    event.preventDefault();
    var action = button.getAttribute("data-action");
    if (action === "add") {
      this.add(button.getAttribute("data-parent"), button.getAttribute("data-slot"),
               button.getAttribute("data-kind"));
      return;
    }
    var node = this.find(Number(button.closest("[data-uid]").getAttribute("data-uid")));
    if (!node) { return; }
    if (action === "delete") { this.remove(node); return; }
    if (action === "as-json" || action === "as-fields") {
      node.rawArgs = action === "as-json";
      this.changed({ uid: node.uid, control: action === "as-json" ? "as-fields" : "as-json" });
      return;
    }
    if (this.move(node, action)) { this.changed({ uid: node.uid, control: action }); }
  };

  /* The page carries only the invocations its tree names; every invocation, to pick by name,
     comes from the server once the page is open (kept by the browser: an unchanged list is
     answered with 304). A name typed before it arrived is looked up again then. The root
     element says "loaded" or "failed" in data-invocations. */
  Composer.prototype.loadInvocations = function () {
    var self = this, url = this.data.invocationsUrl;
    if (!url || !window.fetch || !this.editable) { return; }  // read-only: nothing to pick
    window.fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(response.status); }
        return response.json();
      })
      .then(function (body) { self.addInvocations(body.invocations || []); })
      .catch(function () { self.root.setAttribute("data-invocations", "failed"); });
  };

  Composer.prototype.addInvocations = function (invocations) {
    var self = this, list = document.getElementById("ta-invocations");
    var options = document.createDocumentFragment();
    invocations.forEach(function (inv) {
      self.data.invocations[String(inv.id)] = inv;
      self.invocationByName[inv.name] = inv.id;
      options.appendChild(el("option", { value: inv.name, text: inv.call }));
    });
    if (list) { list.textContent = ""; list.appendChild(options); }
    var found = false;
    this.each(function (node) {
      if (node.kind === "task" && node.source === "invocation" && node.invocation == null &&
          node.pendingName && node.pendingName in self.invocationByName) {
        node.invocation = self.invocationByName[node.pendingName];
        node.pendingName = "";
        found = true;
      }
    });
    this.root.setAttribute("data-invocations", "loaded");
    // Not redrawn: the field keeps its focus and its text; the document and preview follow.
    if (found) { this.write(); this.schedulePreview(0); }
  };

  Composer.prototype.onChange = function (event) {
    var input = event.target, row = input.closest("[data-uid]");
    if (!row) { return; }
    var node = this.find(Number(row.getAttribute("data-uid")));
    if (!node) { return; }
    var name = input.getAttribute("data-field");
    if (!name) { this.onArguments(event); return; }
    if (name === "label") { node.label = input.value; }
    else if (name === "source") {
      var picked = node.invocation != null ? this.data.invocations[String(node.invocation)] : null;
      setTask(node);
      if (input.value === "invocation") { node.source = "invocation"; }
      else if (picked) {
        // The saved invocation's call, to change here (its options stay on the invocation).
        node.task = picked.task; node.args = picked.args; node.kwargs = picked.kwargs;
        node.immutable = picked.immutable;
      }
    } else if (name === "task") {
      var typed = input.value.trim();
      var full = typed in this.tasks ? typed : (this.taskByShortName[typed] || null);
      if (full !== node.task) { node.args = []; node.kwargs = {}; }
      node.task = full || (typed ? typed : null);  // an unknown name: the server says so here
      if (full && full !== typed) { input.value = full; }
    } else if (name === "immutable") { node.immutable = input.checked; }
    else if (name === "kind") {
      var dropped = changeKind(node, input.value);
      if (dropped.length) {
        this.index();
        var place = this.places[node.uid];
        if (place.list) { Array.prototype.splice.apply(place.list, [place.index + 1, 0].concat(dropped)); }
      }
    } else if (name === "target") {
      var value = input.value.trim();
      // A name that matches nothing is kept on screen and sent as "none chosen": the server
      // then says what is missing, next to this node.
      var ids = node.kind === "task" ? this.invocationByName : this.workflowByName;
      var id = value in ids ? ids[value] : null;
      if (node.kind === "task") { node.invocation = id; } else { node.reuse = id; }
      node.pendingName = id === null ? value : "";
    } else { return; }
    this.changed({ uid: node.uid, control: name });
  };

  /* A typed argument changed: the call's args and kwargs follow, without redrawing the tree
     (focus and caret stay in the field). */
  Composer.prototype.onArguments = function (event) {
    var input = event.target, panel = input.closest(".ta-call-fields");
    if (!panel || input.getAttribute("data-field")) { return; }
    var node = this.find(Number(input.closest("[data-uid]").getAttribute("data-uid")));
    if (!node) { return; }
    var json = input.getAttribute("data-json");
    if (json) {
      var value;
      try { value = JSON.parse(input.value || (json === "args" ? "[]" : "{}")); } catch (e) { return; }
      var fits = json === "args" ? Array.isArray(value) : (value !== null && typeof value === "object" && !Array.isArray(value));
      if (!fits) { return; }
      node[json] = value;
    } else if (node.fields) {
      var result = node.fields.collect();
      if (result.errors) { return; }
      node.args = result.args; node.kwargs = result.kwargs;
    } else { return; }
    this.write();
    this.schedulePreview(350);
  };

  // -- drag and drop: the same moves as the buttons, by pointer -------------------------------

  function inside(node, uidWanted) {
    // Whether uidWanted is node itself or somewhere under it.
    if (!node) { return false; }
    if (node.uid === uidWanted) { return true; }
    var kids = (node.children || []).concat(node.kind === "chord" ? node.header.concat(node.body ? [node.body] : []) : []);
    return kids.some(function (kid) { return inside(kid, uidWanted); });
  }

  Composer.prototype.onDragStart = function (event) {
    var handle = event.target.closest && event.target.closest(".ta-handle");
    if (!handle || !this.editable) { return; }
    this.dragged = this.find(Number(handle.closest("[data-uid]").getAttribute("data-uid")));
    if (!this.dragged) { return; }
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", this.dragged.path);
    handle.closest("[data-uid]").classList.add("ta-dragging");
  };

  /* Where a drop at this event would put the dragged node: {before|after: node} or
     {into: parent node or null for the top, slot}; null where it cannot go. */
  Composer.prototype.dropTarget = function (event) {
    var dragged = this.dragged;
    if (!dragged || !event.target.closest) { return null; }
    var bar = event.target.closest(".ta-add");
    if (bar && this.root.contains(bar)) {
      var first = bar.querySelector("button[data-action=add]");
      var parentId = first.getAttribute("data-parent"), slot = first.getAttribute("data-slot");
      var parent = parentId === "" ? null : this.find(Number(parentId));
      if (parent && inside(dragged, parent.uid)) { return null; }  // not into itself
      return { into: parent, slot: slot, element: bar };
    }
    var row = event.target.closest(".ta-crow");
    if (!row || !this.root.contains(row)) { return null; }
    var target = this.find(Number(row.closest("[data-uid]").getAttribute("data-uid")));
    this.index();
    var place = target && this.places[target.uid];
    if (!target || !place.list || inside(dragged, target.uid)) { return null; }
    var box = row.getBoundingClientRect();
    var after = event.clientY > box.top + box.height / 2;
    return after ? { after: target, element: row } : { before: target, element: row };
  };

  Composer.prototype.clearDrop = function () {
    this.root.querySelectorAll(".ta-drop-before, .ta-drop-after, .ta-drop-into").forEach(function (e) {
      e.classList.remove("ta-drop-before", "ta-drop-after", "ta-drop-into");
    });
  };

  Composer.prototype.onDragOver = function (event) {
    var where = this.dropTarget(event);
    this.clearDrop();
    if (!where) { return; }
    event.preventDefault();  // a drop is allowed here
    event.dataTransfer.dropEffect = "move";
    where.element.classList.add(where.before ? "ta-drop-before" : (where.after ? "ta-drop-after" : "ta-drop-into"));
  };

  Composer.prototype.onDrop = function (event) {
    var where = this.dropTarget(event), node = this.dragged;
    this.endDrag();
    if (!where || !node) { return; }
    event.preventDefault();
    this.index();
    this.detach(node);
    if (where.before || where.after) {
      var target = where.before || where.after;
      this.index();
      var list = this.places[target.uid].list;
      list.splice(list.indexOf(target) + (where.after ? 1 : 0), 0, node);
    } else if (!where.into) {
      this.tree = node;
    } else if (where.slot === "body") {
      where.into.body = node;
    } else if (where.slot === "header") {
      where.into.header.push(node);
    } else {
      where.into.children.push(node);
    }
    this.changed({ uid: node.uid, control: "handle" });
  };

  Composer.prototype.endDrag = function () {
    this.clearDrop();
    this.root.querySelectorAll(".ta-dragging").forEach(function (e) { e.classList.remove("ta-dragging"); });
    this.dragged = null;
  };

  /* Whether Celery hands this node a result (Celery's rule, as the server's check reads it):
     a chain step after the first gets the previous result, a chord body the header's list, and
     a container hands what it gets to its first step, its members or its header nodes. */
  Composer.prototype.receives = function (node) {
    var place = this.places[node.uid];
    if (!place || place.slot === "root") { return false; }
    if (place.slot === "body") { return true; }
    if (place.parent.kind === "chain" && place.index > 0) { return true; }
    return this.receives(place.parent);
  };

  Composer.prototype.onKey = function (event) {
    var row = event.target.closest("[data-uid]");
    if (!row || !this.editable) { return; }
    var node = this.find(Number(row.getAttribute("data-uid")));
    if (!node) { return; }
    var how = null;
    if (event.altKey && !event.ctrlKey && !event.metaKey) {
      how = { ArrowUp: "up", ArrowDown: "down", ArrowRight: "in", ArrowLeft: "out" }[event.key] || null;
    }
    if (how) {
      event.preventDefault();
      if (this.move(node, how)) { this.changed({ uid: node.uid, control: "handle" }); }
      return;
    }
    if (event.key === "Delete" && event.target.classList.contains("ta-handle")) {
      event.preventDefault();
      this.remove(node);
    }
  };

  // -- rendering -----------------------------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attrs[key]; }
      else if (attrs[key] !== null && attrs[key] !== undefined && attrs[key] !== false) {
        node.setAttribute(key, attrs[key] === true ? "" : attrs[key]);
      }
    });
    (children || []).forEach(function (child) { if (child) { node.appendChild(child); } });
    return node;
  }

  function button(action, text, label, extra) {
    var attrs = { type: "button", "data-action": action, "class": "ta-btn ta-btn-" + action,
                  title: label, "aria-label": label, text: text };
    Object.keys(extra || {}).forEach(function (key) { attrs[key] = extra[key]; });
    return el("button", attrs);
  }

  Composer.prototype.addButtons = function (parent, slot, title) {
    var bar = el("div", { "class": "ta-add", role: "group", "aria-label": title });
    bar.appendChild(el("span", { "class": "ta-add-title", text: title }));
    KINDS.forEach(function (kind) {
      bar.appendChild(button("add", "+ " + KIND_LABELS[kind],
        interpolate(gettext("%(where)s: add a %(kind)s"), { where: title, kind: KIND_LABELS[kind] }, true),
        { "data-parent": parent ? String(parent.uid) : "", "data-slot": slot, "data-kind": kind }));
    });
    return bar;
  };

  Composer.prototype.renderNode = function (node, depth) {
    var place = this.places[node.uid], editable = this.editable;
    var item = el("li", { "class": "ta-cnode ta-kind-" + node.kind, "data-uid": String(node.uid),
                          "data-path": node.path, role: "treeitem", "aria-level": String(depth + 1) });
    var row = el("div", { "class": "ta-crow" });
    var slotName = { header: gettext("header"), body: gettext("body") }[place.slot];
    row.appendChild(el("button", {
      type: "button", "class": "ta-handle", "data-action": "focus", draggable: editable ? "true" : null,
      "aria-label": interpolate(gettext("%(path)s, %(kind)s %(label)s"),
                                { path: node.path, kind: KIND_LABELS[node.kind], label: node.label || "" }, true),
      text: node.path
    }));
    if (slotName) { row.appendChild(el("span", { "class": "ta-slot", text: slotName })); }
    var kind = el("select", { "data-field": "kind", "aria-label": gettext("Kind"), "class": "ta-kind-select",
                              disabled: !editable });
    KINDS.forEach(function (k) {
      kind.appendChild(el("option", { value: k, selected: k === node.kind, text: KIND_LABELS[k] }));
    });
    row.appendChild(kind);
    if (node.kind === "task") {
      var source = el("select", { "data-field": "source", "class": "ta-source-select", disabled: !editable,
                                  "aria-label": gettext("What this task node runs") });
      source.appendChild(el("option", { value: "call", selected: node.source === "call", text: gettext("task and arguments") }));
      source.appendChild(el("option", { value: "invocation", selected: node.source === "invocation", text: gettext("saved invocation") }));
      row.appendChild(source);
    }
    if (node.kind === "task" && node.source === "call") {
      row.appendChild(el("input", {
        type: "text", "data-field": "task", value: node.task || "", "class": "ta-target ta-task-name",
        list: "ta-tasks", placeholder: gettext("task…"), "aria-label": gettext("Task"),
        disabled: !editable, autocomplete: "off"
      }));
    } else if (node.kind === "task" || node.kind === "workflow") {
      var name = node.pendingName || "";
      if (node.kind === "task" && node.invocation != null) {
        var inv = this.data.invocations[String(node.invocation)];
        name = inv ? inv.name : (node.pendingName || "");
      }
      if (node.kind === "workflow" && node.reuse != null) {
        name = this.data.workflows[String(node.reuse)] || node.pendingName || "";
      }
      row.appendChild(el("input", {
        type: "text", "data-field": "target", value: name, "class": "ta-target",
        list: node.kind === "task" ? "ta-invocations" : "ta-workflows",
        placeholder: node.kind === "task" ? gettext("task invocation…") : gettext("workflow…"),
        "aria-label": node.kind === "task" ? gettext("Task invocation") : gettext("Reused workflow"),
        disabled: !editable, autocomplete: "off"
      }));
      if (node.kind === "task" && node.invocation != null && this.data.invocations[String(node.invocation)]) {
        row.appendChild(el("code", { "class": "ta-call", text: this.data.invocations[String(node.invocation)].call }));
      }
    }
    row.appendChild(el("input", { type: "text", "data-field": "label", value: node.label, "class": "ta-label-input",
                                  placeholder: gettext("label"), "aria-label": gettext("Label"),
                                  maxlength: "200", disabled: !editable }));
    if (editable) {
      var tools = el("span", { "class": "ta-tools" });
      if (place.list) {
        tools.appendChild(button("up", "↑", gettext("Move up (Alt+↑)")));
        tools.appendChild(button("down", "↓", gettext("Move down (Alt+↓)")));
        var above = place.list[place.index - 1];
        if (above && above.kind in CONTAINERS) {
          tools.appendChild(button("in", "→", gettext("Into the container above (Alt+→)")));
        }
      }
      if (place.parent && this.places[place.parent.uid].list) {
        tools.appendChild(button("out", "←", gettext("Out of its container (Alt+←)")));
      }
      if (place.slot === "header" && !place.parent.body) {
        tools.appendChild(button("to-body", gettext("to body"), gettext("Make it the chord's body")));
      }
      if (place.slot === "body") {
        tools.appendChild(button("to-header", gettext("to header"), gettext("Move it to the chord's header")));
      }
      tools.appendChild(button("delete", "✕", gettext("Delete this node and what is inside it")));
      row.appendChild(tools);
    }
    var problems = this.problems[node.path];
    if (problems && problems.length) {
      item.classList.add("ta-has-problem");
      var list = el("ul", { "class": "errorlist ta-node-problems" });
      problems.forEach(function (p) {
        list.appendChild(el("li", { "class": "ta-level-" + p.level, text: (p.path !== node.path ? p.path + ": " : "") + p.message }));
      });
      row.appendChild(list);
    }
    item.appendChild(row);
    if (node.kind === "task" && node.source === "call" && node.task) {
      item.appendChild(this.renderCall(node));
    }
    if (node.kind === "group" || node.kind === "chain") {
      item.appendChild(this.renderList(node.children, depth + 1));
      if (editable) {
        item.appendChild(this.addButtons(node, "step", interpolate(gettext("in %(path)s"), { path: node.path }, true)));
      }
    }
    if (node.kind === "chord") {
      var header = el("div", { "class": "ta-chord-part ta-chord-header" });
      header.appendChild(el("div", { "class": "ta-part-title", text: gettext("Header (run in parallel)") }));
      header.appendChild(this.renderList(node.header, depth + 1));
      if (editable) {
        header.appendChild(this.addButtons(node, "header", interpolate(gettext("%(path)s header"), { path: node.path }, true)));
      }
      item.appendChild(header);
      var body = el("div", { "class": "ta-chord-part ta-chord-body" });
      body.appendChild(el("div", { "class": "ta-part-title", text: gettext("Body (receives the list of header results)") }));
      if (node.body) { body.appendChild(this.renderList([node.body], depth + 1)); }
      else if (editable) {
        body.appendChild(this.addButtons(node, "body", interpolate(gettext("%(path)s body"), { path: node.path }, true)));
      }
      item.appendChild(body);
    }
    return item;
  };

  /* The call's fields under its row: arguments.js's typed fields, or JSON when they cannot
     show the arguments (or staff chose JSON). */
  Composer.prototype.renderCall = function (node) {
    var A = window.taArguments, info = this.tasks[node.task], editable = this.editable;
    var panel = el("div", { "class": "ta-call-fields ta-arguments" });
    var receives = this.receives(node);
    var head = el("div", { "class": "ta-arg-head" });
    if (info) { head.appendChild(el("code", { "class": "ta-arg-call", text: info.call })); }
    panel.appendChild(head);
    if (receives || node.immutable) {
      panel.appendChild(el("label", { "class": "ta-parent-label" }, [
        el("input", { type: "checkbox", "data-field": "immutable", checked: node.immutable, disabled: !editable }),
        document.createTextNode(" " + gettext("ignore the previous result (immutable, .si())"))
      ]));
    }
    if (!info) { node.fields = null; return panel; }  // not a task that may run: said by the server
    if (info.doc) { panel.appendChild(el("div", { "class": "help", text: info.doc })); }
    var parent = receives && !node.immutable;
    var state = info.known && A && !node.rawArgs ? A.spread(info, node.args, node.kwargs, parent) : null;
    if (state && !state.reason) {
      state.parent = parent;
      if (editable) { head.appendChild(button("as-json", gettext("Edit as JSON"), gettext("Edit this call's arguments as JSON"))); }
      node.fields = new A.Fields(panel, info, state, "ta-n" + node.uid + "-");
      if (!editable) { panel.querySelectorAll(".ta-arg-input").forEach(function (i) { i.disabled = true; }); }
      return panel;
    }
    node.fields = null;
    var reason = !info.known ? gettext("This task's parameters cannot be read: give its arguments as JSON.")
      : (state && state.reason) || "";
    if (reason) { panel.appendChild(el("div", { "class": "help", text: reason })); }
    if (info.known && editable) { head.appendChild(button("as-fields", gettext("Edit as fields"), gettext("Edit this call's arguments as fields"))); }
    [["args", gettext("Positional arguments (JSON list)")], ["kwargs", gettext("Keyword arguments (JSON object)")]].forEach(function (pair) {
      var id = "ta-n" + node.uid + "-json-" + pair[0];
      var area = el("textarea", { id: id, rows: "1", "class": "ta-arg-input ta-json", "data-json": pair[0], disabled: !editable });
      area.value = JSON.stringify(node[pair[0]]);
      panel.appendChild(el("div", { "class": "ta-arg-row" }, [el("label", { "for": id, text: pair[1] }), area]));
    });
    return panel;
  };

  Composer.prototype.renderList = function (nodes, depth) {
    var self = this;
    var list = el("ul", { "class": "ta-clist", role: "group" });
    nodes.forEach(function (kid) { list.appendChild(self.renderNode(kid, depth)); });
    return list;
  };

  Composer.prototype.render = function (focus) {
    this.index();
    var frag = document.createDocumentFragment();
    if (this.tree) {
      var top = el("ul", { "class": "ta-clist ta-ctop", role: "tree",
                           "aria-label": gettext("Workflow tree") });
      top.appendChild(this.renderNode(this.tree, 0));
      frag.appendChild(top);
    } else {
      frag.appendChild(el("p", { "class": "help", text: gettext("The workflow is empty: choose its top-level node. A chain runs its nodes one after another, a group runs them in parallel, a chord runs a header group then a body with all their results.") }));
      if (this.editable) { frag.appendChild(this.addButtons(null, "root", gettext("Start with"))); }
    }
    var orphans = Object.keys(this.problems).filter(function (p) { return !(p in this.byPath); }, this);
    this.root.textContent = "";
    this.root.appendChild(frag);
    this.restoreFocus(focus);
    return orphans;
  };

  Composer.prototype.restoreFocus = function (focus) {
    if (!focus) { return; }
    var target = null;
    if (focus.control === "start") {
      target = this.root.querySelector("button[data-action=add]");
    } else if (focus.uid) {
      var item = this.root.querySelector('[data-uid="' + focus.uid + '"]');
      if (!item) { return; }
      var row = item.querySelector(":scope > .ta-crow"), panel = item.querySelector(":scope > .ta-call-fields");
      var selectors = {
        label: "[data-field=label]", kind: "[data-field=kind]", target: "[data-field=target]",
        task: "[data-field=task]", source: "[data-field=source]", immutable: "[data-field=immutable]",
        handle: ".ta-handle"
      };
      var sel = selectors[focus.control] || "button[data-action=" + focus.control + "]";
      target = row.querySelector(sel) || (panel && panel.querySelector(sel)) || row.querySelector(".ta-handle");
    }
    if (target) { target.focus(); }
  };

  // -- problems and the server's preview -------------------------------------------------------

  Composer.prototype.setProblems = function (problems) {
    // A problem inside a reused workflow belongs to the node that reuses it: nearest known path.
    this.index();
    var byPath = this.byPath, out = {};
    problems.forEach(function (p) {
      var path = p.path;
      while (path && !(path in byPath)) { path = paths.parent(path); }
      var key = path || "root";
      (out[key] = out[key] || []).push(p);
    });
    this.problems = out;
    this.allProblems = problems;
  };

  Composer.prototype.schedulePreview = function (delay) {
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.preview(); }, delay);
  };

  Composer.prototype.preview = function () {
    var self = this, seq = ++this.seq;
    var form = this.field.form;
    var body = new FormData();
    body.append("tree", this.field.value);
    body.append("workflow", this.data.workflow == null ? "" : String(this.data.workflow));
    var name = form && form.elements.name;
    body.append("name", name ? name.value : "");
    var token = form && form.elements.csrfmiddlewaretoken;
    var state = document.getElementById("ta-preview-state");
    if (state) { state.textContent = gettext("checking…"); }
    fetch(this.data.previewUrl, {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": token ? token.value : "", "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Error(response.status + " " + response.statusText); }
      return response.json();
    }).then(function (result) {
      if (seq !== self.seq) { return; }  // an older answer: a newer edit is on its way
      self.showPreview(result);
    }).catch(function (error) {
      if (seq === self.seq && state) {
        state.textContent = interpolate(gettext("preview unavailable (%(error)s)"), { error: error.message }, true);
      }
    });
  };

  Composer.prototype.showPreview = function (result) {
    // Only the problems change: the tree is not redrawn, so focus and caret stay where they are.
    this.setProblems(result.problems);
    this.renderProblemsOnly();
    var state = document.getElementById("ta-preview-state");
    var errors = result.problems.filter(function (p) { return p.level !== "warning"; }).length;
    var warnings = result.problems.length - errors;
    if (state) {
      state.textContent = errors ? interpolate(ngettext("%(count)s problem: saved as a draft", "%(count)s problems: saved as a draft", errors), { count: errors }, true)
        : (warnings ? interpolate(ngettext("ready to run, %(count)s warning", "ready to run, %(count)s warnings", warnings), { count: warnings }, true)
        : gettext("ready to run"));
      state.className = "ta-preview-state " + (errors ? "ta-state-bad" : "ta-state-good");
    }
    var box = document.getElementById("ta-preview-problems");
    if (box) {
      box.textContent = "";
      if (result.problems.length) {
        var wrap = el("div", { "class": "ta-problems", role: "status" });
        wrap.appendChild(el("h3", { text: errors
          ? interpolate(ngettext("This workflow is a draft: %(count)s problem keeps it from running", "This workflow is a draft: %(count)s problems keep it from running", errors), { count: errors }, true)
          : gettext("Warnings") }));
        var list = el("ul", { "class": "errorlist" });
        var byPath = this.byPath;
        result.problems.forEach(function (p) {
          var li = el("li", { "class": "ta-level-" + p.level });
          var path = p.path;
          while (path && !(path in byPath)) { path = paths.parent(path); }
          var link = el("a", { href: "#", "data-goto": path ? String(byPath[path]) : "", text: p.path });
          li.appendChild(el("code", {}, [link]));
          li.appendChild(document.createTextNode(" " + p.message));
          list.appendChild(li);
        });
        wrap.appendChild(list);
        box.appendChild(wrap);
      }
    }
    var graph = document.getElementById("ta-canvas-graph");
    if (graph) {
      graph.hidden = !result.graph;
      // Server-rendered SVG: every label in it is escaped by task_admin/graph.py.
      graph.querySelector(".ta-graph-svg").innerHTML = result.graph;
    }
    var python = document.querySelector("#workflow-preview .ta-python");
    var none = document.querySelector("#workflow-preview .ta-no-canvas");
    if (python) { python.textContent = result.python; python.hidden = !result.python; }
    if (none) { none.hidden = !!result.python; }
  };

  Composer.prototype.renderProblemsOnly = function () {
    var self = this;
    this.root.querySelectorAll(".ta-node-problems").forEach(function (list) { list.remove(); });
    this.root.querySelectorAll(".ta-has-problem").forEach(function (item) { item.classList.remove("ta-has-problem"); });
    Object.keys(this.problems).forEach(function (path) {
      var item = self.root.querySelector('[data-path="' + path + '"]');
      if (!item) { return; }
      item.classList.add("ta-has-problem");
      var list = el("ul", { "class": "errorlist ta-node-problems" });
      self.problems[path].forEach(function (p) {
        list.appendChild(el("li", { "class": "ta-level-" + p.level, text: (p.path !== path ? p.path + ": " : "") + p.message }));
      });
      item.querySelector(".ta-crow").appendChild(list);
    });
  };

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("ta-composer-tree");
    var dataNode = document.getElementById("ta-composer-data");
    var field = document.getElementById("id_tree");
    if (!root || !dataNode || !field) { return; }
    var composer = new Composer(root, JSON.parse(dataNode.textContent), field);
    window.taComposer = composer;
    // The workflow's name is part of reuse-cycle messages: re-check when it changes.
    var name = field.form && field.form.elements.name;
    if (name) { name.addEventListener("change", function () { composer.schedulePreview(0); }); }
    if (field.form) { field.form.addEventListener("submit", function () { composer.write(); }); }
    document.addEventListener("click", function (event) {
      var link = event.target.closest("a[data-goto]");
      if (!link) { return; }
      event.preventDefault();
      var target = root.querySelector('[data-uid="' + link.getAttribute("data-goto") + '"] .ta-handle');
      if (target) { target.focus(); target.scrollIntoView({ block: "center" }); }
    });
  });
})();
