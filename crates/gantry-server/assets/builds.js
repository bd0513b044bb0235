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
    cells[4].className = "wide message";
    cells[7].className = "duration";
    cells.forEach(function (cell) { row.appendChild(cell); });
    return row;
  }

  // Fills a row's other columns from the server's formatting of the build (a new row
  // starts with only its number and status; a finished build gets its duration).
  function fillRow(repo, number, row) {
    fetch("/" + repo + "/builds/" + number + "/row", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (build) {
        if (!build) return;
        var texts = { 2: build.event, 3: build.branch, 4: build.message, 5: build.author,
                      6: build.created, 7: build.duration };
        Object.keys(texts).forEach(function (i) {
          row.cells[i].textContent = texts[i] == null ? "" : String(texts[i]);
        });
      })
      .catch(function () { /* the row keeps what it has; a reload shows the rest */ });
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
    fillRow(repo, Number(event.build), row);
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
