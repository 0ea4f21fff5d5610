/** The console script's Cluster, Services and Graph views (part of assets/app.ts). */
export const clusterViews = String.raw`  views.cluster = function (root) {
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
        // The leader's view of each node: its certificate's end, a manager's lock (null: no leader, or not readable).
        var states = {};
        (c.states || []).forEach(function (s) { states[s.NodeID] = s; });
        var known = !!c.states;
        function lockOf(n) {
          var s = states[n.ID];
          if (!known || !s) return h('span', { class: 'muted' }, '—');
          return s.Locked === true ? badge('locked', 'bad') : s.Locked === false ? badge('unlocked', 'ok') : h('span', { class: 'muted' }, 'no answer');
        }
        function certOf(n) {
          return h('td', { 'data-cert': n.Description.Hostname }, known ? certificateEnd(states[n.ID] && states[n.ID].CertificateNotAfter) : h('span', { class: 'muted' }, '—'));
        }
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
            h('tr', null, ['ID', 'Host', 'Raft role', 'Reachability', 'Lock', 'Certificate until', 'Address', 'Match', 'Lag'].map(function (t) { return h('th', null, t); })),
            managers.map(function (n) {
              var p = progress[n.ID];
              var reach = n.ManagerStatus.Reachability;
              var locked = states[n.ID] && states[n.ID].Locked === true;
              return h('tr', { class: reach === 'reachable' && !locked ? '' : 'alert', 'data-manager': n.Description.Hostname },
                h('td', { class: 'mono' }, short(n.ID)),
                h('td', null, n.Description.Hostname),
                h('td', null, n.ManagerStatus.Leader ? badge('Leader', 'leader') : badge('Follower', 'follower')),
                h('td', null, badge(reach)),
                h('td', { 'data-lock': n.Description.Hostname }, lockOf(n)),
                certOf(n),
                h('td', { class: 'mono' }, n.ManagerStatus.Addr),
                h('td', { class: 'num' }, p ? p.match : ''),
                h('td', { class: 'num' }, p ? Math.max(0, raft.lastIndex - p.match) : (raft.progress ? '' : '—')));
            }))));
        data.appendChild(h('section', { id: 'workers' },
          h('h3', null, 'Workers'),
          workers.length === 0 ? h('p', { class: 'muted' }, 'No workers.') :
            h('table', null,
              h('tr', null, ['ID', 'Host', 'Status', 'Availability', 'Certificate until', 'Address'].map(function (t) { return h('th', null, t); })),
              workers.map(function (n) {
                return h('tr', { class: n.Status.State === 'ready' ? '' : 'alert' },
                  h('td', { class: 'mono' }, short(n.ID)),
                  h('td', null, n.Description.Hostname),
                  h('td', null, badge(n.Status.State)),
                  h('td', null, badge(n.Spec.Availability)),
                  certOf(n),
                  h('td', { class: 'mono' }, n.Status.Addr));
              }))));
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
          var held = heldOnNode(w, p.n.ID);
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
        data.appendChild(h('p', { class: 'muted' }, 'Each node with the secret versions it holds now (its tasks’ and its grants’): green is a secret’s newest version, amber an older one — during a rotation the new version spreads from node to node.'));
      });
    };
  };

`;
