/* task_admin: one field per task parameter, typed from its annotation and default.
 *
 * The JSON textareas stay the form's real fields (what the server checks and saves): this script
 * renders typed fields from the parameters the server describes (task_admin/arguments.py, in
 * the "ta-task-parameters" json_script) and writes the JSON back on every change. "Edit as
 * JSON" shows the textareas again, for tasks whose arguments fields cannot express.
 *
 * Three uses: the invocation form (#id_task, #id_args, #id_kwargs), the run-now overrides
 * (textareas marked data-ta-override, one JSON object of extra keyword arguments per task), and
 * the composer's task nodes (composer.js renders window.taArguments.Fields in each node).
 */
(function () {
  "use strict";

  var gettext = window.gettext || function (s) { return s; };
  var ngettext = window.ngettext || function (one, many, n) { return n === 1 ? one : many; };
  var interpolate = window.interpolate || function (fmt, obj) {
    return fmt.replace(/%\((\w+)\)s/g, function (_m, key) { return String(obj[key]); });
  };

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (key === "text") { node.textContent = value; }
      else if (value !== null && value !== undefined && value !== false) {
        node.setAttribute(key, value === true ? "" : value);
      }
    });
    (children || []).forEach(function (child) { if (child) { node.appendChild(child); } });
    return node;
  }

  function show(value) { return typeof value === "string" ? value : JSON.stringify(value); }

  var TYPE_LABELS = {
    "int": gettext("integer"), "float": gettext("number"), "bool": gettext("true / false"),
    "str": gettext("text"), "date": gettext("date"), "datetime": gettext("date and time"),
    "list": gettext("list (JSON)"), "dict": gettext("object (JSON)"), "choice": gettext("choice"),
    "json": gettext("any JSON value, or text")
  };

  /* One typed input; read() gives {set, value} or {error}. */
  function makeInput(param, id, value, hasValue) {
    var input, type = param.type;
    var placeholder = !param.has_default ? "" : interpolate(
      param.stored ? gettext("as stored: %(value)s") : gettext("default: %(value)s"), { value: show(param["default"]) }, true);
    if (type === "bool" || type === "choice") {
      input = el("select", { id: id, "class": "ta-arg-input" });
      input.appendChild(el("option", { value: "", text: param.has_default ? placeholder : "---------" }));
      var choices = type === "bool" ? [true, false] : (param.choices || []);
      choices.forEach(function (choice) {
        input.appendChild(el("option", { value: JSON.stringify(choice), text: show(choice),
                                         selected: hasValue && JSON.stringify(value) === JSON.stringify(choice) }));
      });
    } else if (type === "list" || type === "dict") {
      input = el("textarea", { id: id, rows: "1", "class": "ta-arg-input ta-json", placeholder: placeholder || (type === "list" ? "[...]" : "{...}") });
      input.value = hasValue ? JSON.stringify(value) : "";
    } else {
      var html = { "int": "number", "float": "number", "date": "date", "datetime": "datetime-local" }[type] || "text";
      input = el("input", { id: id, type: html, "class": "ta-arg-input", placeholder: placeholder,
                            step: type === "int" ? "1" : (type === "float" ? "any" : null) });
      if (hasValue) {
        if (type === "datetime" && typeof value === "string") { input.value = value.slice(0, 19); }
        else { input.value = type === "json" && typeof value !== "string" ? JSON.stringify(value) : String(value); }
      }
    }
    input.readValue = function () {
      var raw = input.value;
      if (raw === "") { return { set: false }; }
      try {
        switch (type) {
          case "int":
            if (!/^-?\d+$/.test(raw.trim())) { throw new Error(gettext("enter a whole number")); }
            return { set: true, value: parseInt(raw, 10) };
          case "float":
            if (isNaN(Number(raw))) { throw new Error(gettext("enter a number")); }
            return { set: true, value: Number(raw) };
          case "bool": case "choice":
            return { set: true, value: JSON.parse(raw) };
          case "list": case "dict":
            var parsed = JSON.parse(raw);
            if (type === "list" ? !Array.isArray(parsed) : (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))) {
              throw new Error(type === "list" ? gettext("enter a JSON list, e.g. [1, 2]") : gettext("enter a JSON object, e.g. {\"a\": 1}"));
            }
            return { set: true, value: parsed };
          case "datetime":
            return { set: true, value: raw.length === 16 ? raw + ":00" : raw };
          case "json":
            try { return { set: true, value: JSON.parse(raw) }; } catch (e) { return { set: true, value: raw }; }
          default:
            return { set: true, value: raw };
        }
      } catch (error) {
        return { error: error.message || String(error) };
      }
    };
    return input;
  }

  function fieldRow(param, input, note) {
    var label = el("label", { "for": input.id, text: param.name + (param.required ? " *" : "") });
    var help = [TYPE_LABELS[param.type] + (param.nullable ? gettext(", optional") : "")];
    if (param.has_default) {
      help.push(interpolate(param.stored ? gettext("stored %(value)s") : gettext("default %(value)s"), { value: show(param["default"]) }, true));
    }
    if (param.doc) { help.push(param.doc); }
    var row = el("div", { "class": "ta-arg-row" + (note ? " ta-arg-given" : "") }, [
      label, note ? el("span", { "class": "ta-arg-note", text: note }) : input,
      el("div", { "class": "help ta-arg-help", text: help.join(" — ") }),
      el("div", { "class": "ta-arg-error errorlist" })
    ]);
    return row;
  }

  function parameterData() {
    var node = document.getElementById("ta-task-parameters");
    return node ? JSON.parse(node.textContent) : {};
  }

  // -- the invocation form -----------------------------------------------------------------

  function InvocationArguments(data, task, args, kwargs, immutable) {
    this.data = data; this.task = task; this.args = args; this.kwargs = kwargs;
    this.immutable = immutable;
    this.box = el("div", { "class": "ta-arguments form-row", id: "ta-arguments" });
    var anchor = args.closest(".form-row");
    anchor.parentNode.insertBefore(this.box, anchor);
    this.rawRows = [args.closest(".form-row"), kwargs.closest(".form-row")];
    this.raw = false;
    var self = this;
    task.addEventListener("change", function () { self.build(true); });
    this.box.addEventListener("input", function () { self.write(); });
    this.box.addEventListener("change", function (event) {
      if (event.target.classList.contains("ta-parent-toggle")) { self.build(false, true); } else { self.write(); }
    });
    this.build(false);
  }

  InvocationArguments.prototype.setRaw = function (raw, reason) {
    this.raw = raw;
    this.rawRows.forEach(function (row) { row.hidden = !raw; });
    if (raw) {
      this.box.textContent = "";
      var self = this;
      this.box.appendChild(el("div", { "class": "help", text: reason || gettext("Arguments as JSON.") }));
      var info = this.data[this.task.value];
      if (info && info.known) {
        var back = el("button", { type: "button", "class": "button ta-arg-mode", text: gettext("Edit as fields") });
        back.addEventListener("click", function () { self.build(false); });
        this.box.appendChild(back);
      }
    }
  };

  // -- one call's fields, shared by the invocation form and the composer's task nodes ------

  /* How a call's stored args and kwargs sit on the parameters: {values, byKeyword, extraArgs,
     extraKwargs}, or {reason} when fields cannot show them (the caller falls back to JSON).
     With `parent`, the first positional parameter is the previous result: args start after it. */
  function spread(info, args, kwargs, parent) {
    var params = info.params, positional = params.filter(function (p) { return p.positional; });
    var offset = parent ? 1 : 0;
    var out = { values: {}, byKeyword: {}, extraArgs: [], extraKwargs: {} };
    args.forEach(function (value, i) {
      var param = positional[i + offset];
      if (param) { out.values[param.name] = value; } else { out.extraArgs.push(value); }
    });
    Object.keys(kwargs).forEach(function (name) {
      var param = params.filter(function (p) { return p.name === name && p.keyword; })[0];
      if (param && !(name in out.values)) { out.values[name] = kwargs[name]; out.byKeyword[name] = true; }
      else { out.extraKwargs[name] = kwargs[name]; }
    });
    if ((out.extraArgs.length && !info.extra_args) || (Object.keys(out.extraKwargs).length && !info.extra_kwargs)) {
      var unknown = Object.keys(out.extraKwargs);
      return { reason: unknown.length
        ? interpolate(ngettext("Unknown keyword argument for this task: %(names)s. Fix it as JSON.",
                              "Unknown keyword arguments for this task: %(names)s. Fix them as JSON.",
                              unknown.length), { names: unknown.join(", ") }, true)
        : gettext("More positional arguments than this task takes: fix them as JSON.") };
    }
    return out;
  }

  /* Whether stored arguments only fit with the previous result first (a chain step or chord
     body): the same reading as the server's check, for a call whose place is not known. */
  function guessParent(info, args, kwargs) {
    var positional = info.params.filter(function (p) { return p.positional; });
    var missing = positional.filter(function (p, i) { return p.required && i >= args.length && !(p.name in kwargs); });
    return missing.length === 1 && missing[0] === positional[args.length];
  }

  /* The typed rows of one call, appended to `box`: one per parameter (the first one a note
     when `state.parent`), then *args / **kwargs when the task takes them. `prefix` makes the
     inputs' ids unique on a page with several calls. collect() reads them back. */
  function Fields(box, info, state, prefix) {
    this.info = info; this.params = info.params; this.parent = !!state.parent;
    this.byKeyword = state.byKeyword || {};
    this.inputs = {};
    var self = this, positional = this.params.filter(function (p) { return p.positional; });
    this.params.forEach(function (param) {
      var id = prefix + param.name;
      if (self.parent && param === positional[0]) {
        box.appendChild(fieldRow(param, el("span", { id: id }), gettext("← the previous result")));
        return;
      }
      var input = makeInput(param, id, state.values[param.name], param.name in state.values);
      self.inputs[param.name] = input;
      box.appendChild(fieldRow(param, input));
    });
    var extraArgs = state.extraArgs || [], extraKwargs = state.extraKwargs || {};
    if (info.extra_args) {
      this.extraArgs = makeInput({ name: "*args", type: "list", has_default: false }, prefix + "extra-args", extraArgs, extraArgs.length > 0);
      box.appendChild(fieldRow({ name: gettext("more positional arguments"), type: "list", doc: "" }, this.extraArgs));
    }
    if (info.extra_kwargs) {
      this.extraKwargs = makeInput({ name: "**kwargs", type: "dict", has_default: false }, prefix + "extra-kwargs", extraKwargs, Object.keys(extraKwargs).length > 0);
      box.appendChild(fieldRow({ name: gettext("more keyword arguments"), type: "dict", doc: "" }, this.extraKwargs));
    }
  }

  /* What is typed, by parameter name (to rebuild the rows with another first parameter). */
  Fields.prototype.typed = function () {
    var inputs = this.inputs, values = {};
    Object.keys(inputs).forEach(function (name) {
      var read = inputs[name].readValue();
      if (read.set) { values[name] = read.value; }
    });
    return values;
  };

  /* {args, kwargs, errors}: each input's problem is written next to it. */
  Fields.prototype.collect = function () {
    var self = this, args = [], kwargs = {}, errors = false, gap = false;
    var positional = this.params.filter(function (p) { return p.positional; });
    if (this.parent) { positional = positional.slice(1); }
    this.params.forEach(function (param) {
      var input = self.inputs[param.name];
      if (!input) { return; }
      var read = input.readValue();
      var box = input.closest(".ta-arg-row").querySelector(".ta-arg-error");
      box.textContent = read.error || "";
      if (read.error) { errors = true; return; }
      if (!read.set) { if (positional.indexOf(param) >= 0) { gap = true; } return; }
      if (positional.indexOf(param) >= 0 && !gap && !self.byKeyword[param.name]) { args.push(read.value); }
      else if (param.keyword) { kwargs[param.name] = read.value; if (positional.indexOf(param) >= 0) { gap = true; } }
      else { box.textContent = gettext("positional only: fill the parameters before it"); errors = true; }
    });
    [["extraArgs", "list"], ["extraKwargs", "dict"]].forEach(function (pair) {
      var input = self[pair[0]];
      if (!input) { return; }
      var read = input.readValue();
      if (read.error) { errors = true; return; }
      if (read.set) {
        if (pair[1] === "list") { if (!gap) { args = args.concat(read.value); } }
        else { Object.keys(read.value).forEach(function (k) { kwargs[k] = read.value[k]; }); }
      }
    });
    return { args: args, kwargs: kwargs, errors: errors };
  };

  InvocationArguments.prototype.build = function (taskChanged, keepParent) {
    var info = this.data[this.task.value];
    if (!this.task.value) { this.box.textContent = ""; this.setRaw(false); this.rawRows.forEach(function (r) { r.hidden = true; }); return; }
    if (!info || !info.known) {
      this.setRaw(true, gettext("This task's parameters cannot be read: give its arguments as JSON."));
      return;
    }
    var args, kwargs;
    try {
      args = taskChanged ? [] : JSON.parse(this.args.value || "[]");
      kwargs = taskChanged ? {} : JSON.parse(this.kwargs.value || "{}");
      if (!Array.isArray(args) || kwargs === null || typeof kwargs !== "object" || Array.isArray(kwargs)) { throw new Error(); }
    } catch (e) {
      this.setRaw(true, gettext("The arguments are not valid JSON: fix them here."));
      return;
    }
    var positional = info.params.filter(function (p) { return p.positional; });
    var toggle = this.box.querySelector(".ta-parent-toggle");
    var parent, state;
    if (keepParent && toggle) { parent = toggle.checked; }
    else {
      // A chain step or chord body gets the previous result first: its own arguments then
      // leave the first parameter out (the same reading as the server's check).
      parent = !taskChanged && !this.immutable.checked && guessParent(info, args, kwargs);
    }
    if (keepParent && this.fields) {
      // The toggle changed: keep what was typed, by parameter name.
      state = { values: this.fields.typed(), byKeyword: this.fields.byKeyword };
      if (parent) { delete state.values[positional[0].name]; }
    } else {
      state = spread(info, args, kwargs, parent);
      if (state.reason) { this.setRaw(true, state.reason); return; }
    }
    state.parent = parent;
    this.raw = false;
    this.rawRows.forEach(function (row) { row.hidden = true; });
    this.box.textContent = "";
    var self = this;
    var head = el("div", { "class": "ta-arg-head" }, [
      el("strong", { text: gettext("Arguments") }),
      el("code", { "class": "ta-arg-call", text: info.call })
    ]);
    var rawButton = el("button", { type: "button", "class": "button ta-arg-mode", text: gettext("Edit as JSON") });
    rawButton.addEventListener("click", function () { self.write(); self.setRaw(true); });
    head.appendChild(rawButton);
    this.box.appendChild(head);
    if (info.doc) { this.box.appendChild(el("div", { "class": "help", text: info.doc })); }
    if (positional.length) {
      var label = el("label", { "class": "ta-parent-label" }, [
        el("input", { type: "checkbox", "class": "ta-parent-toggle", checked: parent }),
        document.createTextNode(" " + interpolate(gettext("“%(name)s” receives the previous task's result (a chain step or chord body)"), { name: positional[0].name }, true))
      ]);
      this.box.appendChild(label);
    }
    this.fields = new Fields(this.box, info, state, "ta-arg-");
    this.write();
  };

  InvocationArguments.prototype.write = function () {
    if (this.raw || !this.fields) { return; }
    var result = this.fields.collect();
    if (result.errors) { return; }
    this.args.value = JSON.stringify(result.args);
    this.kwargs.value = JSON.stringify(result.kwargs);
  };

  // -- run-now overrides: extra keyword arguments per task ------------------------------------

  function OverrideArguments(data, area) {
    var info = data[area.getAttribute("data-ta-task")];
    if (!info || !info.known) { return; }
    var given = JSON.parse(area.getAttribute("data-ta-given") || "[]");
    var stored = JSON.parse(area.getAttribute("data-ta-stored") || "{}");
    var current;
    try { current = JSON.parse(area.value || "{}"); } catch (e) { return; }
    if (current === null || typeof current !== "object" || Array.isArray(current)) { return; }
    var box = el("div", { "class": "ta-arguments ta-override-fields" });
    var inputs = {};
    info.params.forEach(function (param) {
      var id = area.id + "-" + param.name;
      if (given.indexOf(param.name) >= 0 && !(param.name in stored)) {
        box.appendChild(fieldRow(param, el("span", { id: id }), gettext("given positionally by the invocation")));
        return;
      }
      if (!param.keyword) { return; }
      var shown = Object.assign({}, param);
      if (param.name in stored) { shown.has_default = true; shown.stored = true; shown["default"] = stored[param.name]; }
      var input = makeInput(shown, id, current[param.name], param.name in current);
      inputs[param.name] = input;
      box.appendChild(fieldRow(shown, input));
    });
    area.hidden = true;
    var after = area.closest(".flex-container") || area;
    after.parentNode.insertBefore(box, after.nextSibling);
    var toggle = el("button", { type: "button", "class": "button ta-arg-mode", text: gettext("Edit as JSON") });
    toggle.addEventListener("click", function () {
      area.hidden = !area.hidden;
      box.hidden = !area.hidden;
      toggle.textContent = area.hidden ? gettext("Edit as JSON") : gettext("Edit as fields");
    });
    box.parentNode.insertBefore(toggle, box.nextSibling);
    function write() {
      var out = {}, errors = false;
      Object.keys(inputs).forEach(function (name) {
        var read = inputs[name].readValue();
        inputs[name].closest(".ta-arg-row").querySelector(".ta-arg-error").textContent = read.error || "";
        if (read.error) { errors = true; } else if (read.set) { out[name] = read.value; }
      });
      Object.keys(current).forEach(function (name) { if (!(name in inputs)) { out[name] = current[name]; } });
      if (!errors) { area.value = JSON.stringify(out); }
    }
    box.addEventListener("input", write);
    box.addEventListener("change", write);
  }

  // For the composer's task nodes (static/task_admin/composer.js): the same fields.
  window.taArguments = { spread: spread, Fields: Fields, el: el };

  document.addEventListener("DOMContentLoaded", function () {
    var data = parameterData();
    var task = document.getElementById("id_task");
    var args = document.getElementById("id_args");
    var kwargs = document.getElementById("id_kwargs");
    var immutable = document.getElementById("id_immutable");
    if (task && args && kwargs && immutable) {
      var widget = new InvocationArguments(data, task, args, kwargs, immutable);
      immutable.addEventListener("change", function () { if (!widget.raw) { widget.build(false); } });
    }
    document.querySelectorAll("textarea[data-ta-override]").forEach(function (area) {
      OverrideArguments(data, area);
    });
  });
})();
