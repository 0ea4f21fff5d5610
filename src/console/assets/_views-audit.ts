/** The console script's audit table and Audit page (part of assets/app.ts). */
export const auditViews = String.raw`  function auditTable(records) {
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

`;
