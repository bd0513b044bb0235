// The repository list and a repository's builds, kept current from /ui/events.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  var builds = document.getElementById("builds");
  var repos = document.getElementById("repos");
  if (!builds && !repos) return;

  function buildRow(repo, number, status) {
    var row = document.createElement("tr");
    row.className = "build-row";
    row.setAttribute("data-number", String(number));
    row.setAttribute("data-status", status);
    var cells = [];
    for (var i = 0; i < 8; i++) cells.push(document.createElement("td"));
    var link = document.createElement("a");
    link.className = "build-link";
    link.href = "/" + repo + "/builds/" + number;
    link.textContent = "#" + number;
    cells[0].appendChild(link);
    var badge = document.createElement("span");
    badge.className = "status";
    Gantry.setStatus(badge, status);
    cells[1].appendChild(badge);
    [2, 4, 5, 6].forEach(function (i) { cells[i].className = "wide"; });
    cells.forEach(function (cell) { row.appendChild(cell); });
    return row;
  }

  function onBuildsPage(event) {
    var repo = builds.getAttribute("data-repo");
    if (event.kind !== "build" || event.repo !== repo) return;
    var row = builds.querySelector('tr.build-row[data-number="' + Number(event.build) + '"]');
    if (!row) {
      row = buildRow(repo, Number(event.build), event.status);
      builds.tBodies[0].insertBefore(row, builds.tBodies[0].firstChild);
      var empty = document.getElementById("no-builds");
      if (empty) empty.remove();
    }
    row.setAttribute("data-status", event.status);
    Gantry.setStatus(row.querySelector("span.status"), event.status);
  }

  function onReposPage(event) {
    if (event.kind !== "build") return;
    repos.querySelectorAll("tr.repo-row").forEach(function (row) {
      if (row.getAttribute("data-repo") !== event.repo) return;
      if (Number(event.build) < Number(row.getAttribute("data-build") || 0)) return;
      row.setAttribute("data-build", String(Number(event.build)));
      // The newest build's cell: its status, linking to it.
      var cell = row.cells[1];
      var link = document.createElement("a");
      link.href = "/" + event.repo + "/builds/" + Number(event.build);
      var badge = document.createElement("span");
      badge.className = "status";
      Gantry.setStatus(badge, event.status);
      link.appendChild(badge);
      link.appendChild(document.createTextNode(" #" + Number(event.build)));
      cell.replaceChildren(link);
    });
  }

  Gantry.followEvents(builds ? onBuildsPage : onReposPage);
});
