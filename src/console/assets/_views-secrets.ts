/** The console script's Secrets list and one secret's page (part of assets/app.ts). */
export const secretViews = String.raw`  views.secrets = function (root) {
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
    var granting = grantForm(ref);
    if (granting) forms.appendChild(granting);
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
        // Who holds what now: nodes x versions, each cell the tasks and grants holding that version there.
        data.appendChild(h('section', null, h('h3', null, 'Who holds what now (node × version)'), holdersTable(d, id, versions, newest)));
        data.appendChild(grantsSection(ref, d.grants));
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

`;
