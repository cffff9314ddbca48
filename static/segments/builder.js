/* Segment builder: edits the rule tree kept as JSON in a hidden input, shows the live
   count and the rule in words from the preview endpoint. No framework. */
(function () {
  "use strict";
  const root = document.getElementById("segment-builder");
  if (!root) return;
  const catalog = JSON.parse(document.getElementById(root.dataset.catalogId).textContent);
  const t = JSON.parse(document.getElementById("builder-i18n").textContent);
  const input = document.getElementById(root.dataset.input);
  const editable = root.dataset.editable === "1";
  const byKey = Object.fromEntries(catalog.map((m) => [m.key, m]));
  let rule;
  try { rule = JSON.parse(input.value || "{}"); } catch (e) { rule = {}; }
  if (!rule || !rule.items) rule = { op: "and", not: false, items: rule && rule.metric ? [rule] : [] };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "on") Object.entries(v).forEach(([ev, fn]) => node.addEventListener(ev, fn));
      else if (k === "class") node.className = v;
      else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
    });
    children.flat().forEach((c) => node.append(c instanceof Node ? c : document.createTextNode(c)));
    if (!editable && ["INPUT", "SELECT", "BUTTON"].includes(node.tagName)) node.disabled = true;
    return node;
  }

  function select(options, value, onChange, attrs) {
    const s = el("select", Object.assign({ on: { change: () => onChange(s) } }, attrs || {}));
    options.forEach(([v, label]) => {
      const o = el("option", { value: v }, label);
      if (Array.isArray(value) ? value.map(String).includes(String(v)) : String(v) === String(value)) o.selected = true;
      s.append(o);
    });
    return s;
  }

  function defaultValue(metric, op) {
    if (op === "between") return [metric.value_type === "date" ? "" : 0, metric.value_type === "date" ? "" : 0];
    if (op === "in" || op === "not_in") return [];
    if (metric.value_type === "boolean") return true;
    if (metric.value_type === "number") return 0;
    return "";
  }

  function valueWidget(cond, metric, changed) {
    const op = cond.operator;
    const type = metric.value_type === "date" ? "date" : metric.value_type === "number" ? "number" : "text";
    const scalar = (v, set) => el("input", {
      type, value: v === undefined || v === null ? "" : v, step: type === "number" ? "any" : undefined,
      "aria-label": metric.label,
      on: { input: (e) => { set(type === "number" && e.target.value !== "" ? Number(e.target.value) : e.target.value); changed(); } },
    });
    if (metric.value_type === "boolean") {
      return select([["true", t.yes], ["false", t.no]], String(cond.value), (s) => { cond.value = s.value === "true"; changed(); });
    }
    if (op === "between") {
      if (!Array.isArray(cond.value)) cond.value = defaultValue(metric, op);
      return el("span", {}, scalar(cond.value[0], (v) => (cond.value[0] = v)), " – ", scalar(cond.value[1], (v) => (cond.value[1] = v)));
    }
    if (op === "in" || op === "not_in") {
      if (!Array.isArray(cond.value)) cond.value = [];
      if (metric.choices.length) {
        return select(metric.choices, cond.value, (s) => {
          cond.value = Array.from(s.selectedOptions).map((o) => o.value); changed();
        }, { multiple: true, "aria-label": metric.label });
      }
      return el("input", {
        type: "text", value: cond.value.join(", "), placeholder: t.commaSeparated, "aria-label": metric.label,
        on: { input: (e) => { cond.value = e.target.value.split(",").map((x) => x.trim()).filter(Boolean); changed(); } },
      });
    }
    if (metric.choices.length) {
      return select([["", "—"], ...metric.choices], cond.value, (s) => { cond.value = s.value; changed(); });
    }
    return scalar(cond.value, (v) => (cond.value = v));
  }

  function periodWidget(params, name, changed) {
    const p = params[name] || null;
    const mode = !p ? "" : p.last_days !== undefined ? "last" : "range";
    const box = el("span", { class: "segment-period" });
    const redraw = () => { box.replaceWith(periodWidget(params, name, changed)); };
    box.append(select([["", t.anyTime], ["last", t.lastDays], ["range", t.range]], mode, (s) => {
      params[name] = s.value === "last" ? { last_days: 30 } : s.value === "range" ? { from: "", to: "" } : undefined;
      if (!params[name]) delete params[name];
      changed(); redraw();
    }));
    if (mode === "last") {
      box.append(el("input", { type: "number", min: 1, value: p.last_days, "aria-label": t.days,
        on: { input: (e) => { p.last_days = Number(e.target.value); changed(); } } }), " " + t.days);
    } else if (mode === "range") {
      ["from", "to"].forEach((end) => box.append(el("input", { type: "date", value: p[end] || "", "aria-label": t[end],
        on: { input: (e) => { p[end] = e.target.value; changed(); } } })));
    }
    return box;
  }

  function paramWidgets(cond, metric, changed) {
    cond.params = cond.params || {};
    return metric.params.map((param) => {
      if (param.kind === "period") return periodWidget(cond.params, param.name, changed);
      if (cond.params[param.name] === undefined && param.default !== null) cond.params[param.name] = param.default;
      const label = el("span", {}, param.label + ": ");
      if (param.choices.length) {
        return el("span", {}, label, select([["", "—"], ...param.choices], cond.params[param.name] || "", (s) => {
          if (s.value) cond.params[param.name] = s.value; else delete cond.params[param.name];
          changed();
        }));
      }
      return el("span", {}, label, el("input", {
        type: param.kind === "number" ? "number" : "text", value: cond.params[param.name] || "",
        on: { input: (e) => { cond.params[param.name] = param.kind === "number" ? Number(e.target.value) : e.target.value; changed(); } },
      }));
    });
  }

  function metricOptions() {
    const groups = {};
    catalog.forEach((m) => { (groups[m.group] = groups[m.group] || []).push(m); });
    return groups;
  }

  function conditionNode(cond, parent, changed) {
    const row = el("div", { class: "segment-condition" });
    const metricSelect = el("select", { class: "metric-picker", "aria-label": t.chooseMetric, on: { change: (e) => {
      const m = byKey[e.target.value];
      cond.metric = m.key; cond.operator = m.operators[0].key; cond.value = defaultValue(m, cond.operator); cond.params = {};
      changed(); render();
    } } });
    metricSelect.append(el("option", { value: "" }, t.chooseMetric));
    Object.entries(metricOptions()).forEach(([group, list]) => {
      const og = el("optgroup", { label: group });
      list.forEach((m) => { const o = el("option", { value: m.key, title: m.help }, m.label); if (m.key === cond.metric) o.selected = true; og.append(o); });
      metricSelect.append(og);
    });
    row.append(metricSelect);
    const metric = byKey[cond.metric];
    if (metric) {
      row.append(select(metric.operators.map((o) => [o.key, o.label]), cond.operator, (s) => {
        const wasSet = ["in", "not_in"].includes(cond.operator), isSet = ["in", "not_in"].includes(s.value);
        if (wasSet !== isSet || s.value === "between" || cond.operator === "between") cond.value = defaultValue(metric, s.value);
        cond.operator = s.value; changed(); render();
      }, { class: "operator-picker", "aria-label": t.comparison }));
      row.append(valueWidget(cond, metric, changed));
      paramWidgets(cond, metric, changed).forEach((w) => row.append(w));
    }
    row.append(el("button", { type: "button", class: "remove", on: { click: () => {
      parent.items.splice(parent.items.indexOf(cond), 1); changed(); render(); } } }, t.remove));
    return row;
  }

  function groupNode(group, parent, changed) {
    const box = el("div", { class: "segment-group" });
    const head = el("div", { class: "segment-group-head" },
      select([["and", t.and], ["or", t.or]], group.op, (s) => { group.op = s.value; changed(); }, { "aria-label": t.andOr }),
      el("label", {}, el("input", { type: "checkbox", checked: group.not ? true : undefined,
        on: { change: (e) => { group.not = e.target.checked; changed(); } } }), " " + t.not));
    if (parent) head.append(el("button", { type: "button", on: { click: () => {
      parent.items.splice(parent.items.indexOf(group), 1); changed(); render(); } } }, t.remove));
    box.append(head);
    group.items.forEach((item) => box.append(item.items ? groupNode(item, group, changed) : conditionNode(item, group, changed)));
    if (editable) {
      box.append(el("div", { class: "segment-buttons" },
        el("button", { type: "button", class: "add-condition", on: { click: () => {
          group.items.push({ metric: "", operator: "", value: "", params: {} }); changed(); render(); } } }, t.addCondition),
        el("button", { type: "button", class: "add-group", on: { click: () => {
          group.items.push({ op: "and", not: false, items: [] }); changed(); render(); } } }, t.addGroup)));
    }
    return box;
  }

  // Conditions without a chosen metric are left out of what is saved and counted.
  function complete(node) {
    if (node.items) return { op: node.op, not: !!node.not, items: node.items.filter((i) => i.items || i.metric).map(complete) };
    return node;
  }

  let timer = null, seq = 0;
  const countEl = document.getElementById("segment-count");
  const wordsEl = document.getElementById("segment-words");
  const errorEl = document.getElementById("segment-error");
  const csrf = (document.querySelector("[name=csrfmiddlewaretoken]") || {}).value;

  function preview() {
    const mine = ++seq;
    countEl.textContent = t.counting;
    fetch(root.dataset.preview, {
      method: "POST", headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ rule: complete(rule) }), credentials: "same-origin",
    }).then((r) => r.json()).then((data) => {
      if (mine !== seq) return;
      if (data.error) { errorEl.hidden = false; errorEl.textContent = data.error; countEl.textContent = "—"; return; }
      errorEl.hidden = true;
      countEl.textContent = Number(data.count).toLocaleString();
      wordsEl.textContent = data.words;
    }).catch(() => { countEl.textContent = "—"; });
  }

  function changed() {
    input.value = JSON.stringify(complete(rule));
    clearTimeout(timer);
    timer = setTimeout(preview, 350);
  }

  function render() {
    root.replaceChildren(groupNode(rule, null, changed));
  }

  render();
  input.value = JSON.stringify(complete(rule));
  preview();
})();
