/**
 * The console's one page: a shell the script fills (no inline script or style, so the
 * Content-Security-Policy can forbid both). Built into the executable like every asset here.
 */
export const pageHtml = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>secretd console</title>
<link rel="stylesheet" href="/assets/style.css">
<script src="/assets/app.js" defer></script>
</head>
<body>
<header>
<a class="brand" href="#/cluster">secretd</a>
<nav>
<a href="#/cluster" data-view="cluster">Cluster</a>
<a href="#/secrets" data-view="secrets">Secrets</a>
<a href="#/services" data-view="services">Services</a>
<a href="#/audit" data-view="audit">Audit</a>
<a href="#/graph" data-view="graph">Graph</a>
</nav>
<span id="who"></span>
<span id="live" title="live updates">offline</span>
</header>
<div id="flash" role="status"></div>
<main id="main"></main>
</body>
</html>
`;
