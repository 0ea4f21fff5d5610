/**
 * The console script's parts for who holds what now and for grants (part of assets/app.ts): a
 * secret's grants with the grant and ungrant forms, the node × version table, and what each node of
 * the graph holds. "Who holds what" is the leader's dispatcher's answer (GET
 * /secretd/secrets/{id}/holders: tasks and grants); a role that may not read it, or a cluster
 * without a leader, falls back to the tasks' own reports.
 */
export const holdingsViews = String.raw`  /** The grant form (built once, outside the refreshed part, so a refresh keeps what is typed). */
  function grantForm(ref) {
    if (!can('POST /secretd/secrets/:id/grants')) return null;
    var form = h('form', { class: 'inline', id: 'grant-form', autocomplete: 'off' },
      h('label', null, 'Node constraints (as --node-constraint; comma-separated, all must hold)',
        h('input', { name: 'constraints', size: '36', placeholder: 'node.labels.role==db, node.role==worker' })),
      h('label', null, 'Version (optional)', h('input', { name: 'version', size: '4', inputmode: 'numeric' })),
      h('button', { type: 'submit' }, 'Grant'));
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var constraints = form.elements.constraints.value.split(',').map(function (c) { return c.trim(); }).filter(function (c) { return c !== ''; });
      var version = form.elements.version.value.trim();
      var body = { Constraints: constraints };
      if (version !== '') body.Version = Number(version);
      change(api('POST', '/api/secrets/' + encodeURIComponent(ref) + '/grants', body), function (r) {
        form.reset();
        return r.Message;
      });
    });
    return h('section', null, h('h3', null, 'Grant to nodes'), form);
  }

  /** A secret's grants, an ungrant button each as the role allows; null when the role may not read them. */
  function grantsSection(ref, grants) {
    if (!grants) return null;
    var section = h('section', { id: 'grants' }, h('h3', null, 'Grants'));
    var list = grants.Grants || [];
    if (list.length === 0) section.appendChild(h('p', { class: 'muted' }, 'No grants: only the tasks of services that reference it hold this secret.'));
    else section.appendChild(h('table', null,
      h('tr', null, ['Nodes where', 'Version', 'Granted', ''].map(function (t) { return h('th', null, t); })),
      list.map(function (g) {
        var where = g.Constraints.join(' and ');
        return h('tr', { 'data-grant': where },
          h('td', null, h('code', null, where)),
          h('td', null, g.Version === null ? badge('newest', 'newest') : 'v' + g.Version),
          h('td', null, when(g.CreatedAt)),
          h('td', null, can('DELETE /secretd/secrets/:id/grants') ? h('button', { class: 'danger', 'data-ungrant': where, onclick: function () {
            change(api('DELETE', '/api/secrets/' + encodeURIComponent(ref) + '/grants', { Constraints: g.Constraints }),
              function (r) { return r.Message; });
          } }, 'Ungrant') : null));
      })));
    return section;
  }

  /** Who holds secret id now: [{NodeID, Hostname, Version, label}], from the dispatcher or else the tasks. */
  function holdersOf(d, id, holders) {
    if (holders) return holders.map(function (x) {
      var task = x.By === 'task' ? (d.tasks || []).filter(function (t) { return t.ID === x.TaskID; })[0] : null;
      var label = x.By === 'grant' ? 'grant' : task ? taskName(d.services, task) : 'task ' + short(x.TaskID);
      return { NodeID: x.NodeID, Hostname: x.Hostname, Version: x.Version, label: label };
    });
    return live(d.tasks).filter(function (t) { return t.Status.SecretVersions && t.Status.SecretVersions[id] !== undefined; })
      .map(function (t) {
        return { NodeID: t.NodeID, Hostname: nodeName(d.nodes, t.NodeID), Version: t.Status.SecretVersions[id], label: taskName(d.services, t) };
      });
  }

  /** The node × version table: each cell the tasks (by name) and grants holding that version there. */
  function holdersTable(d, id, versions, newest) {
    var held = holdersOf(d, id, d.holders);
    var rows = (d.nodes || []).map(function (n) { return { ID: n.ID, Hostname: n.Description.Hostname }; });
    held.forEach(function (x) {
      if (!rows.some(function (r) { return r.ID === x.NodeID; })) rows.push({ ID: x.NodeID, Hostname: x.Hostname });
    });
    var table = h('table', { id: 'node-version' },
      h('tr', null, h('th', null, 'Node'), versions.map(function (v) {
        return h('th', { 'data-version': v.Version }, 'v' + v.Version + (v.Version === newest ? ' (newest)' : ''));
      })),
      rows.map(function (n) {
        return h('tr', { 'data-node': n.Hostname },
          h('td', null, n.Hostname, ' ', h('span', { class: 'muted mono' }, short(n.ID))),
          versions.map(function (v) {
            var here = held.filter(function (x) { return x.NodeID === n.ID && x.Version === v.Version; });
            return h('td', { 'data-version': v.Version, class: here.length ? 'held' : '' },
              here.map(function (x) { return badge(x.label, v.Version === newest ? 'newest' : 'warn'); }));
          }));
      }));
    var note = d.holders
      ? 'What the leader sent each node now: its tasks (by service and slot) and its grants. Containers started through the OCI runtime use a node’s grant copy and are not listed.'
      : 'Tasks (desired running) and the version each holds, as its node reported it (this role may not read the leader’s holders, or there is no leader).';
    return [table, h('p', { class: 'muted' }, note)];
  }

  /** What a node holds, for the graph: 'id version' → {id, v}, over every secret. */
  function heldOnNode(w, nodeId) {
    var held = {};
    var holders = w.holders || {};
    var secretIds = Object.keys(holders);
    if (secretIds.length > 0) {
      secretIds.forEach(function (id) {
        holders[id].forEach(function (x) { if (x.NodeID === nodeId) held[id + ' ' + x.Version] = { id: id, v: x.Version }; });
      });
      return held;
    }
    live(w.tasks).filter(function (t) { return t.NodeID === nodeId; }).forEach(function (t) {
      var sv = t.Status.SecretVersions || {};
      Object.keys(sv).forEach(function (id) { held[id + ' ' + sv[id]] = { id: id, v: sv[id] }; });
    });
    return held;
  }

  /** A certificate's end as text, with the days left; empty when unknown. */
  function certificateEnd(iso) {
    if (!iso) return h('span', { class: 'muted' }, 'unknown');
    var days = Math.floor((new Date(iso).getTime() - new Date().getTime()) / 86400000);
    return [when(iso), ' ', badge(days + ' d', days < 7 ? 'bad' : days < 30 ? 'warn' : 'ok')];
  }

`;
