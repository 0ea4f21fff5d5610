/**
 * The console's script (served as /assets/app.js): plain JavaScript, no framework, no eval, no
 * innerHTML (every value goes in as text). Routes by the address's hash; re-reads the view on the
 * server's events. It never stores anything (no localStorage, no sessionStorage, no cookie: the
 * session cookie is HttpOnly) and a secret's value lives only in the form until it is posted.
 */
export const appScript = String.raw`'use strict';
(function () {
  var main = document.getElementById('main');
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

  views.cluster = function (root) {
    var data = h('div');
    root.appendChild(h('h2', null, 'Cluster'));
    root.appendChild(data);
    return function () {
      return api('GET', '/api/cluster').then(function (c) {
        clear(data);
        var nodes = c.nodes || [];
        var raft = c.raft || {};
        var progress = raft.progress || {};
        var managers = nodes.filter(function (n) { return n.ManagerStatus; });
        var workers = nodes.filter(function (n) { return !n.ManagerStatus; });
        var leader = managers.filter(function (n) { return n.ManagerStatus.Leader; })[0];
        data.appendChild(h('section', { id: 'raft' },
          h('h3', null, 'Raft'),
          h('p', null,
            'Leader: ', h('strong', null, leader ? leader.Description.Hostname + ' (' + short(leader.ID) + ')' : 'none'),
            raft.term !== undefined ? ' · term ' + raft.term + ' · commit ' + raft.commit + ' · applied ' + raft.applied : '',
            raft.id ? h('span', { class: 'muted' }, ' · as seen by ' + short(raft.id) + ' (' + raft.role + ')') : ''),
          c.rotation && c.rotation.InProgress ? h('p', null, badge('root CA rotation in progress', 'warn')) : null));
        data.appendChild(h('section', { id: 'managers' },
          h('h3', null, 'Managers'),
          h('table', null,
            h('tr', null, ['ID', 'Host', 'Raft role', 'Reachability', 'Address', 'Match', 'Lag'].map(function (t) { return h('th', null, t); })),
            managers.map(function (n) {
              var p = progress[n.ID];
              var reach = n.ManagerStatus.Reachability;
              return h('tr', { class: reach === 'reachable' ? '' : 'alert' },
                h('td', { class: 'mono' }, short(n.ID)),
                h('td', null, n.Description.Hostname),
                h('td', null, n.ManagerStatus.Leader ? badge('Leader', 'leader') : badge('Follower', 'follower')),
                h('td', null, badge(reach)),
                h('td', { class: 'mono' }, n.ManagerStatus.Addr),
                h('td', { class: 'num' }, p ? p.match : ''),
                h('td', { class: 'num' }, p ? Math.max(0, raft.lastIndex - p.match) : (raft.progress ? '' : '—')));
            }))));
        data.appendChild(h('section', { id: 'workers' },
          h('h3', null, 'Workers'),
          workers.length === 0 ? h('p', { class: 'muted' }, 'No workers.') :
            h('table', null,
              h('tr', null, ['ID', 'Host', 'Status', 'Availability', 'Address'].map(function (t) { return h('th', null, t); })),
              workers.map(function (n) {
                return h('tr', { class: n.Status.State === 'ready' ? '' : 'alert' },
                  h('td', { class: 'mono' }, short(n.ID)),
                  h('td', null, n.Description.Hostname),
                  h('td', null, badge(n.Status.State)),
                  h('td', null, badge(n.Spec.Availability)),
                  h('td', { class: 'mono' }, n.Status.Addr));
              }))));
      });
    };
  };

  views.secrets = function (root) {
    root.appendChild(h('h2', null, 'Secrets'));
    if (can('POST /secrets/create')) {
      var form = h('form', { class: 'inline', id: 'create-secret', autocomplete: 'off' },
        h('label', null, 'Name', h('input', { name: 'name', required: true })),
        h('label', null, 'Labels (K=V, comma-separated)', h('input', { name: 'labels' })),
        valueFields(),
        h('button', { type: 'submit' }, 'Create secret'));
      form.addEventListener('submit', function (event) {
        event.preventDefault();
        var name = form.elements.name.value.trim();
        var labels = {};
        form.elements.labels.value.split(',').forEach(function (pair) {
          pair = pair.trim();
          if (pair === '') return;
          var eq = pair.indexOf('=');
          labels[eq === -1 ? pair : pair.slice(0, eq)] = eq === -1 ? '' : pair.slice(eq + 1);
        });
        valueOf(form).then(function (data) {
          form.reset();
          return change(api('POST', '/api/secrets', { Name: name, Labels: labels, Data: data }),
            function (r) { return 'Created secret ' + name + ' (' + r.ID + ')'; });
        });
      });
      root.appendChild(h('section', null, h('h3', null, 'Create a secret'), form));
    }
    var data = h('section', { id: 'secret-list' });
    root.appendChild(data);
    return function () {
      return api('GET', '/api/workload').then(function (w) {
        clear(data);
        var secrets = (w.secrets || []).slice().sort(function (a, b) { return a.Spec.Name < b.Spec.Name ? -1 : 1; });
        data.appendChild(h('table', null,
          h('tr', null, ['Name', 'ID', 'Labels', 'Newest', 'Used by', 'Updated'].map(function (t) { return h('th', null, t); })),
          secrets.map(function (s) {
            var users = live(w.tasks).filter(function (t) { return t.Status.SecretVersions && t.Status.SecretVersions[s.ID] !== undefined; });
            return h('tr', { 'data-secret': s.Spec.Name },
              h('td', null, h('a', { href: '#/secrets/' + encodeURIComponent(s.Spec.Name) }, s.Spec.Name)),
              h('td', { class: 'mono' }, short(s.ID)),
              h('td', null, Object.keys(s.Spec.Labels || {}).map(function (k) { return badge(k + '=' + s.Spec.Labels[k], 'label'); })),
              h('td', { class: 'num' }, w.newest && w.newest[s.ID] ? 'v' + w.newest[s.ID] : ''),
              h('td', null, users.length + ' task' + (users.length === 1 ? '' : 's')),
              h('td', null, when(s.UpdatedAt)));
          })));
        if (secrets.length === 0) data.appendChild(h('p', { class: 'muted' }, 'No secrets.'));
      });
    };
  };

  views.secret = function (root, ref) {
    root.appendChild(h('h2', null, 'Secret ', h('code', null, ref)));
    var forms = h('div', { class: 'grid2' });
    if (can('POST /secretd/secrets/:id/versions')) {
      var add = h('form', { class: 'inline', id: 'add-version', autocomplete: 'off' },
        valueFields(),
        h('label', null, 'If the newest is (optional)', h('input', { name: 'ifVersion', size: '4', inputmode: 'numeric' })),
        h('button', { type: 'submit' }, 'Add version'));
      add.addEventListener('submit', function (event) {
        event.preventDefault();
        var ifVersion = add.elements.ifVersion.value.trim();
        valueOf(add).then(function (data) {
          add.reset();
          var body = { Data: data };
          if (ifVersion !== '') body.IfVersion = Number(ifVersion);
          return change(api('POST', '/api/secrets/' + encodeURIComponent(ref) + '/versions', body), function (r) {
            return r.Changed ? 'Added version ' + r.Version + ' of ' + ref : 'Unchanged: the value equals version ' + r.Version;
          });
        });
      });
      forms.appendChild(h('section', null, h('h3', null, 'Add a version'), add));
    }
    if (can('DELETE /secrets/:id')) {
      forms.appendChild(h('section', null, h('h3', null, 'Remove'),
        h('button', { class: 'danger', id: 'remove-secret', onclick: function () {
          if (!window.confirm('Remove secret ' + ref + '?')) return;
          change(api('DELETE', '/api/secrets/' + encodeURIComponent(ref)), function () {
            location.hash = '#/secrets';
            return 'Removed secret ' + ref;
          });
        } }, 'Remove secret ' + ref)));
    }
    root.appendChild(forms);
    var data = h('div');
    root.appendChild(data);
    return function () {
      return api('GET', '/api/secrets/' + encodeURIComponent(ref)).then(function (d) {
        clear(data);
        var versions = d.versions.Versions || [];
        var newest = versions.length ? versions[versions.length - 1].Version : 0;
        var id = d.secret.ID;
        data.appendChild(h('section', { id: 'timeline' }, h('h3', null, 'Versions'),
          h('div', { class: 'timeline' }, versions.map(function (v, i) {
            return [i > 0 ? h('span', { class: 'arrow' }) : null,
              h('div', { class: 'v' + (v.Version === newest ? ' newest' : '') },
                h('div', { class: 'cell-v' }, 'v' + v.Version, v.Version === newest ? badge('newest', 'newest') : null),
                h('div', { class: 'muted' }, when(v.CreatedAt)),
                h('div', null, (v.InUseBy.Tasks || []).length + ' task(s)'))];
          }))));
        // Who holds what now: nodes x versions, each cell the tasks there holding that version.
        var tasks = live(d.tasks).filter(function (t) { return t.Status.SecretVersions && t.Status.SecretVersions[id] !== undefined; });
        var nodes = d.nodes || [];
        var matrix = h('table', { id: 'node-version' },
          h('tr', null, h('th', null, 'Node'), versions.map(function (v) {
            return h('th', { 'data-version': v.Version }, 'v' + v.Version + (v.Version === newest ? ' (newest)' : ''));
          })),
          nodes.map(function (n) {
            return h('tr', { 'data-node': n.Description.Hostname },
              h('td', null, n.Description.Hostname, ' ', h('span', { class: 'muted mono' }, short(n.ID))),
              versions.map(function (v) {
                var here = tasks.filter(function (t) { return t.NodeID === n.ID && t.Status.SecretVersions[id] === v.Version; });
                return h('td', { 'data-version': v.Version, class: here.length ? 'held' : '' },
                  here.map(function (t) { return badge(taskName(d.services, t), v.Version === newest ? 'newest' : 'warn'); }));
              }));
          }));
        data.appendChild(h('section', null, h('h3', null, 'Who holds what now (node × version)'), matrix,
          h('p', { class: 'muted' }, 'Tasks (desired running) and the version each holds, as its node reported it.')));
        var rows = versions.slice().reverse().map(function (v) {
          return h('tr', null,
            h('td', null, 'v' + v.Version),
            h('td', null, when(v.CreatedAt)),
            h('td', null, (v.InUseBy.Services || []).map(function (s) { return badge(s.Name + (s.Pinned ? ' @' + v.Version : ''), 'label'); })),
            h('td', null,
              can('POST /secretd/secrets/:id/rollback') && v.Version !== newest ? h('button', { class: 'secondary', 'data-rollback': v.Version, onclick: function () {
                change(api('POST', '/api/secrets/' + encodeURIComponent(ref) + '/rollback', { To: v.Version, IfVersion: newest }),
                  function (r) { return 'Rolled back ' + ref + ' to v' + v.Version + ' as v' + r.Version; });
              } }, 'Roll back to v' + v.Version) : null,
              ' ',
              can('DELETE /secretd/secrets/:id/versions/:version') && v.Version !== newest ? h('button', { class: 'danger', 'data-remove-version': v.Version, onclick: function () {
                change(api('DELETE', '/api/secrets/' + encodeURIComponent(ref) + '/versions/' + v.Version),
                  function () { return 'Removed v' + v.Version + ' of ' + ref; });
              } }, 'Remove v' + v.Version) : null));
        });
        data.appendChild(h('section', null, h('h3', null, 'Version actions'), h('table', null,
          h('tr', null, ['Version', 'Created', 'Services', ''].map(function (t) { return h('th', null, t); })), rows)));
        if (d.audit) data.appendChild(h('section', { id: 'secret-audit' }, h('h3', null, 'History'), auditTable(d.audit.slice().reverse())));
      });
    };
  };

  views.services = function (root) {
    root.appendChild(h('h2', null, 'Services'));
    if (can('POST /services/:id/update')) {
      var form = h('form', { class: 'inline', id: 'service-change', autocomplete: 'off' },
        h('label', null, 'Service', h('input', { name: 'service', required: true })),
        h('label', null, 'Replicas', h('input', { name: 'replicas', size: '4' })),
        h('button', { type: 'button', 'data-act': 'scale' }, 'Scale'),
        h('label', null, 'Secret (as --secret-add)', h('input', { name: 'add', placeholder: 'source=db,target=db' })),
        h('button', { type: 'button', 'data-act': 'add' }, 'Add secret'),
        h('label', null, 'Secret name', h('input', { name: 'rm' })),
        h('button', { type: 'button', class: 'danger', 'data-act': 'rm' }, 'Remove secret'));
      form.addEventListener('click', function (event) {
        var act = event.target.getAttribute && event.target.getAttribute('data-act');
        if (!act) return;
        var ref = form.elements.service.value.trim();
        var body = act === 'scale' ? { Replicas: Number(form.elements.replicas.value) }
          : act === 'add' ? { SecretAdd: form.elements.add.value.trim() } : { SecretRm: form.elements.rm.value.trim() };
        change(api('POST', '/api/services/' + encodeURIComponent(ref) + '/update', body), function () { return 'Updated service ' + ref; });
      });
      root.appendChild(h('section', null, h('h3', null, 'Change a service'), form));
    }
    var data = h('div', { id: 'service-list' });
    root.appendChild(data);
    return function () {
      return api('GET', '/api/workload').then(function (w) {
        clear(data);
        var secretNames = {};
        (w.secrets || []).forEach(function (s) { secretNames[s.ID] = s.Spec.Name; });
        (w.services || []).forEach(function (s) {
          var tasks = live(w.tasks).filter(function (t) { return t.ServiceID === s.ID; });
          var mode = s.Spec.Mode.Global ? 'global' : (s.Spec.Mode.Replicated ? s.Spec.Mode.Replicated.Replicas : 1) + ' replicas';
          var refs = (s.Spec.TaskTemplate.ContainerSpec.Secrets || []).map(function (r) {
            return badge(r.SecretName + (r.Secretd && r.Secretd.Version ? '@' + r.Secretd.Version : '') + ' → ' + r.File.Name, 'label');
          });
          data.appendChild(h('section', { 'data-service': s.Spec.Name },
            h('h3', null, s.Spec.Name, ' ', h('span', { class: 'muted' }, mode)),
            h('p', null, 'Secrets: ', refs.length ? refs : h('span', { class: 'muted' }, 'none')),
            h('table', null,
              h('tr', null, ['Task', 'Node', 'State', 'Secret versions held'].map(function (t) { return h('th', null, t); })),
              tasks.map(function (t) {
                var held = t.Status.SecretVersions || {};
                return h('tr', null,
                  h('td', { class: 'mono' }, taskName(w.services, t)),
                  h('td', null, nodeName(w.nodes, t.NodeID)),
                  h('td', null, badge(t.Status.State)),
                  h('td', null, Object.keys(held).map(function (id) { return badge((secretNames[id] || short(id)) + ' v' + held[id], 'label'); })));
              }))));
        });
        if (!(w.services || []).length) data.appendChild(h('p', { class: 'muted' }, 'No services.'));
      });
    };
  };

  function auditTable(records) {
    return h('table', { class: 'audit' },
      h('tr', null, ['Seq', 'Time', 'Actor', 'Source', 'Action', 'Object', 'Version', 'Node', 'Result'].map(function (t) { return h('th', null, t); })),
      records.map(function (r) {
        var a = r.actor || {};
        var actor = a.kind === 'client' ? a.name + ' (' + a.role + ')' : a.kind === 'node' ? 'node ' + short(a.id) : a.kind === 'admin-socket' ? 'admin socket (uid ' + a.uid + ')' : a.kind;
        return h('tr', { 'data-action': r.action, class: r.result === 'ok' ? '' : 'alert' },
          h('td', { class: 'num' }, r.seq),
          h('td', null, when(r.at)),
          h('td', null, actor),
          h('td', { class: 'mono' }, r.source),
          h('td', null, r.action),
          h('td', null, r.object ? r.object.name || short(r.object.id) : ''),
          h('td', { class: 'num' }, r.version === undefined ? '' : 'v' + r.version),
          h('td', { class: 'mono' }, short(r.node)),
          h('td', null, badge(r.result, r.result === 'ok' ? 'ok' : 'bad')));
      }));
  }

  views.audit = function (root) {
    root.appendChild(h('h2', null, 'Audit trail'));
    if (!can('GET /secretd/audit')) {
      root.appendChild(h('p', { class: 'muted' }, 'This certificate’s role (' + state.who.Role + ') may not read the audit trail.'));
      return function () { return Promise.resolve(); };
    }
    var filters = h('form', { class: 'inline', id: 'audit-filters' },
      ['actor', 'secret', 'node', 'action', 'since'].map(function (f) { return h('label', null, f, h('input', { name: f, size: '14', placeholder: f === 'since' ? '1h, 2026-01-02T15:04:05Z' : '' })); }),
      h('button', { type: 'submit' }, 'Filter'),
      h('button', { type: 'button', class: 'secondary', id: 'verify', onclick: function () {
        api('GET', '/api/audit/verify').then(function (v) {
          clear(verdict);
          verdict.appendChild(v.Ok ? badge('chain verified: records ' + v.First + '–' + v.Last + ' (' + v.Count + ')', 'ok')
            : badge('fails verification at record ' + v.Seq + ': ' + v.Reason, 'bad'));
        }, function (e) { say(e.message, true); });
      } }, 'Verify the chain'));
    var verdict = h('span', { id: 'verdict' });
    filters.addEventListener('submit', function (event) { event.preventDefault(); refreshSoon(); });
    root.appendChild(h('section', null, filters, h('p', null, verdict)));
    var data = h('section', { id: 'audit-list' });
    root.appendChild(data);
    return function () {
      var q = new URLSearchParams();
      ['actor', 'secret', 'node', 'action', 'since'].forEach(function (f) {
        var v = filters.elements[f].value.trim();
        if (v) q.set(f, v);
      });
      return api('GET', '/api/audit?' + q.toString()).then(function (records) {
        clear(data);
        data.appendChild(h('p', { class: 'muted' }, 'Newest first; follows new records live.'));
        data.appendChild(auditTable(records.slice().reverse()));
      });
    };
  };

  views.graph = function (root) {
    root.appendChild(h('h2', null, 'Where secret versions are'));
    var data = h('section', { id: 'graph' });
    root.appendChild(data);
    var NS = 'http://www.w3.org/2000/svg';
    function s(tag, attrs, text) {
      var el = document.createElementNS(NS, tag);
      Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
      if (text !== undefined) el.textContent = text;
      return el;
    }
    return function () {
      return api('GET', '/api/workload').then(function (w) {
        clear(data);
        var nodes = w.nodes || [];
        var newest = {};
        var names = {};
        (w.secrets || []).forEach(function (x) { names[x.ID] = x.Spec.Name; newest[x.ID] = (w.newest || {})[x.ID]; });
        var width = 900, height = 520, cx = width / 2, cy = height / 2, radius = nodes.length > 1 ? 170 : 0;
        var svg = s('svg', { viewBox: '0 0 ' + width + ' ' + height, width: '100%', role: 'img' });
        var points = nodes.map(function (n, i) {
          var angle = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, nodes.length);
          return { n: n, x: cx + radius * Math.cos(angle), y: cy + radius * Math.sin(angle) };
        });
        var leader = points.filter(function (p) { return p.n.ManagerStatus && p.n.ManagerStatus.Leader; })[0];
        points.forEach(function (p) {
          if (leader && p !== leader) svg.appendChild(s('line', { x1: leader.x, y1: leader.y, x2: p.x, y2: p.y, stroke: '#c9d1db', 'stroke-width': '2' }));
        });
        points.forEach(function (p) {
          var held = {};
          live(w.tasks).filter(function (t) { return t.NodeID === p.n.ID; }).forEach(function (t) {
            var sv = t.Status.SecretVersions || {};
            Object.keys(sv).forEach(function (id) { held[id + ' ' + sv[id]] = { id: id, v: sv[id] }; });
          });
          var manager = !!p.n.ManagerStatus;
          var down = p.n.Status.State !== 'ready';
          var g = s('g', { 'data-node': p.n.Description.Hostname });
          g.appendChild(s('circle', { cx: p.x, cy: p.y, r: '34', fill: down ? '#f7d9d6' : manager ? '#dfe8fb' : '#eef1f4', stroke: p === leader ? '#2457c5' : '#8996a5', 'stroke-width': p === leader ? '4' : '2' }));
          g.appendChild(s('text', { x: p.x, y: p.y - 2, 'text-anchor': 'middle', 'font-weight': '700' }, p.n.Description.Hostname));
          g.appendChild(s('text', { x: p.x, y: p.y + 13, 'text-anchor': 'middle', fill: '#68737f' }, p === leader ? 'leader' : manager ? 'manager' : 'worker'));
          Object.keys(held).sort().forEach(function (key, i) {
            var item = held[key];
            var current = newest[item.id] === item.v;
            var label = (names[item.id] || short(item.id)) + ' v' + item.v;
            var y = p.y + 52 + i * 20;
            g.appendChild(s('rect', { x: p.x - 60, y: y - 13, width: '120', height: '18', rx: '9', fill: current ? '#d7f0e0' : '#fbe9c8' }));
            g.appendChild(s('text', { x: p.x, y: y, 'text-anchor': 'middle', 'data-held': label }, label));
          });
          svg.appendChild(g);
        });
        data.appendChild(svg);
        data.appendChild(h('p', { class: 'muted' }, 'Each node with the secret versions its running tasks hold: green is a secret’s newest version, amber an older one — during a rotation the new version spreads from node to node.'));
      });
    };
  };

  // ---- routing and live updates ------------------------------------------------------------
  function route() {
    var parts = (location.hash || '#/cluster').slice(2).split('/');
    var name = parts[0] || 'cluster';
    var arg = parts[1] ? decodeURIComponent(parts[1]) : undefined;
    if (name === 'secrets' && arg !== undefined) name = 'secret';
    if (!views[name]) name = 'cluster';
    state.view = name;
    document.querySelectorAll('nav a').forEach(function (a) {
      a.classList.toggle('current', a.getAttribute('data-view') === (name === 'secret' ? 'secrets' : name));
    });
    clear(main);
    clear(flash);
    document.body.removeAttribute('data-refreshed');
    var root = h('div', { id: 'view-' + name });
    main.appendChild(root);
    state.refresh = views[name](root, arg);
    refresh();
  }
  function refresh() {
    var current = state.refresh;
    if (!current) return;
    current().then(function () {
      document.body.setAttribute('data-refreshed', String(Number(document.body.getAttribute('data-refreshed') || 0) + 1));
    }, function (error) { say(error.message, true); });
  }
  var timer = null;
  function refreshSoon() {
    if (timer) return;
    timer = setTimeout(function () { timer = null; refresh(); }, 150);
  }
  function listen() {
    var events = new EventSource('/api/events');
    var badgeEl = document.getElementById('live');
    events.onopen = function () { badgeEl.textContent = 'live'; badgeEl.className = 'on'; };
    events.onerror = function () { badgeEl.textContent = 'reconnecting'; badgeEl.className = ''; };
    events.addEventListener('change', refreshSoon);
    events.addEventListener('audit', refreshSoon);
  }

  api('GET', '/api/whoami').then(function (who) {
    state.who = who;
    state.csrf = who.Csrf;
    document.getElementById('who').textContent = 'role ' + who.Role + ' · ' + who.Name + (who.Scope.length ? ' · scope ' + who.Scope.join(', ') : '');
    document.body.setAttribute('data-role', who.Role);
    window.addEventListener('hashchange', route);
    route();
    listen();
  }, function (error) { say(error.message, true); });
})();
`;
