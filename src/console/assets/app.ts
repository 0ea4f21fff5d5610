/**
 * The console's script (served as /assets/app.js): plain JavaScript, no framework, no eval, no
 * innerHTML (every value goes in as text). One function, written in parts: the helpers (_core.ts),
 * the views (_views-*.ts), and here the routing by the address's hash and the live updates (the
 * view is read again on each of the server's events). It never stores anything (no localStorage,
 * no sessionStorage, no cookie: the session cookie is HttpOnly), and a secret's value lives only in
 * its form until it is posted.
 */
import { core } from './_core.ts';
import { auditViews } from './_views-audit.ts';
import { clusterViews } from './_views-cluster.ts';
import { holdingsViews } from './_views-holdings.ts';
import { secretViews } from './_views-secrets.ts';

const boot = String.raw`  // ---- routing and live updates ------------------------------------------------------------
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
`;

export const appScript = `'use strict';
(function () {
${core}${holdingsViews}${clusterViews}${secretViews}${auditViews}${boot}})();
`;
