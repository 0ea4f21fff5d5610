/** The console's style sheet (served as /assets/style.css; no inline style anywhere). */
export const styleSheet = `
:root { --bg: #f6f7f9; --fg: #1d232b; --muted: #68737f; --line: #d9dee4; --accent: #2457c5;
  --ok: #1f8a4c; --warn: #c77700; --bad: #c0392b; --card: #fff; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; align-items: center; gap: 20px; padding: 10px 20px; background: #1d232b; color: #fff; }
header a { color: #cfd8e3; text-decoration: none; }
header a.brand { color: #fff; font-weight: 700; font-size: 16px; }
nav { display: flex; gap: 14px; }
nav a.current { color: #fff; border-bottom: 2px solid #6ea0ff; }
#who { margin-left: auto; color: #cfd8e3; }
#live { padding: 2px 8px; border-radius: 10px; background: #555; font-size: 12px; }
#live.on { background: var(--ok); }
#flash { min-height: 0; margin: 0 20px; }
#flash .msg { margin-top: 12px; padding: 8px 12px; border-radius: 4px; background: #e7f4ec; border: 1px solid #b7dfc6; }
#flash .msg.error { background: #fbeaea; border-color: #eab4b4; }
main { padding: 16px 20px 40px; }
h2 { margin: 6px 0 12px; font-size: 18px; }
h3 { margin: 18px 0 8px; font-size: 15px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin-bottom: 14px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase; }
td.num, th.num { text-align: right; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: 12px; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 1px 7px; border-radius: 9px; font-size: 12px; background: #e9edf2; margin: 1px 2px; }
.badge.leader, .badge.ok, .badge.ready, .badge.running, .badge.reachable { background: #d7f0e0; color: #145c33; }
.badge.bad, .badge.down, .badge.unreachable, .badge.failed, .badge.denied { background: #f7d9d6; color: #8d241a; }
.badge.warn, .badge.drain, .badge.pause { background: #fbe9c8; color: #7a4b00; }
.badge.newest { background: #d7e4ff; color: #163f94; }
tr.alert td { background: #fdf1ef; }
form.inline { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-end; }
form label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
input, textarea, select { font: inherit; padding: 5px 7px; border: 1px solid var(--line); border-radius: 4px; background: #fff; }
textarea { min-width: 260px; min-height: 34px; }
button { font: inherit; padding: 5px 12px; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: #fff; color: var(--bad); border-color: var(--bad); }
.timeline { display: flex; gap: 0; align-items: center; overflow-x: auto; padding: 8px 0; }
.timeline .v { border: 2px solid var(--line); border-radius: 6px; padding: 6px 10px; background: #fff; min-width: 110px; }
.timeline .v.newest { border-color: var(--accent); }
.timeline .arrow { width: 28px; height: 2px; background: var(--line); }
.cell-v { font-weight: 600; }
svg text { font: 12px system-ui, sans-serif; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
`;
