/** The console script's state and helpers (part of assets/app.ts's one function: no globals). */
export const core = String.raw`  var main = document.getElementById('main');
  var flash = document.getElementById('flash');
  var state = { who: null, csrf: '', refresh: null, pending: false, view: '' };

  // ---- helpers ------------------------------------------------------------------------------
  /** An element; strings become text (never HTML), functions under on* become listeners. */
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === undefined || value === null || value === false) return;
        if (key.slice(0, 2) === 'on') el.addEventListener(key.slice(2), value);
        else if (key === 'text') el.textContent = String(value);
        else el.setAttribute(key, value === true ? '' : String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) add(el, arguments[i]);
    return el;
  }
  function add(el, child) {
    if (child === undefined || child === null || child === false) return;
    if (Array.isArray(child)) return child.forEach(function (c) { add(el, c); });
    el.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }
  function can(key) { return !!state.who && state.who.Allowed.indexOf(key) !== -1; }
  function badge(text, kind) { return h('span', { class: 'badge ' + (kind || String(text).toLowerCase()) }, text); }
  function short(id) { return String(id || '').slice(0, 12); }
  function when(iso) { return iso ? new Date(iso).toLocaleString() : ''; }
  function say(message, error) {
    clear(flash);
    flash.appendChild(h('div', { class: 'msg' + (error ? ' error' : '') }, message));
  }

  /** Calls the console's API; a refusal throws with the cluster's own message. */
  function api(method, path, body) {
    var init = { method: method, credentials: 'same-origin', cache: 'no-store', headers: {} };
    if (method !== 'GET') init.headers['x-csrf-token'] = state.csrf;
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (json) {
        if (!res.ok) throw new Error(json.message || 'HTTP ' + res.status);
        return json;
      });
    });
  }

  /** Runs a change, says how it went, and re-reads the view. */
  function change(promise, done) {
    return promise.then(function (result) {
      say(done(result));
      refreshSoon();
    }, function (error) { say(error.message, true); });
  }

  /** Bytes as base64, in pieces (no string of the whole value is built twice). */
  function base64(bytes) {
    var out = '';
    for (var i = 0; i < bytes.length; i += 0x8000)
      out += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    var encoded = btoa(out);
    bytes.fill(0);
    return encoded;
  }
  /** The value of a form: the chosen file's bytes, else the typed text. */
  function valueOf(form) {
    var file = form.querySelector('input[type=file]').files[0];
    if (file) return file.arrayBuffer().then(function (buf) { return base64(new Uint8Array(buf)); });
    var text = form.querySelector('textarea[name=value]').value;
    return Promise.resolve(text === '' ? '' : base64(new TextEncoder().encode(text)));
  }
  function valueFields() {
    return [
      h('label', null, 'Value (sent once, never shown again)',
        h('textarea', { name: 'value', autocomplete: 'off', spellcheck: 'false', rows: '1' })),
      h('label', null, 'or a file', h('input', { type: 'file', name: 'file' })),
    ];
  }

  function nodeName(nodes, id) {
    var node = (nodes || []).filter(function (n) { return n.ID === id; })[0];
    return node ? node.Description.Hostname || short(id) : short(id);
  }
  function serviceName(services, id) {
    var s = (services || []).filter(function (x) { return x.ID === id; })[0];
    return s ? s.Spec.Name : short(id);
  }
  function taskName(services, task) {
    return serviceName(services, task.ServiceID) + (task.Slot ? '.' + task.Slot : '.' + short(task.NodeID));
  }
  function live(tasks) {
    return (tasks || []).filter(function (t) { return t.DesiredState === 'running' && t.Status.State !== 'shutdown'; });
  }

  // ---- views --------------------------------------------------------------------------------
  var views = {};

`;
